"""Inference: lines in, one prediction per line out, in order, in batches.

`predict_lines` is a generator: it reads a chunk of lines, runs one batched model call,
yields the chunk's predictions, and only then reads on. Memory stays flat for any input
length and a pipe's first results appear before its end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, Iterable, Iterator

import numpy as np

from .artifacts import ModelInfo, read_info
from .config import TransducerError
from .data import decode_line, iter_raw_lines
from .engine import aligned_confidence, load_engine  # noqa: F401  (aligned_confidence: re-exported)
from .vocab import END_ID, PAD_ID, UNK_ID

ON_LONG = ("error", "truncate", "copy")


@dataclass
class Prediction:
    line_no: int  # 1-based input line number
    input: str  # the input line, line ending removed
    output: str  # the predicted string
    confidence: float | None  # probability of `output` under the model; None when not modelled
    nbest: list[tuple[str, float]] | None = None  # (candidate, score) best first, with --nbest


@dataclass
class PredictStats:
    lines: int = 0  # lines read
    unknown_chars: int = 0  # input characters not in the training vocabulary
    unknown_lines: int = 0  # lines holding at least one of them
    long_lines: int = 0  # lines longer than max_len (handled by --on-long)
    first_long_line: int = 0  # line number of the first of them


class Predictor:
    """A loaded model: batches of strings -> outputs with confidences."""

    def __init__(self, model_dir, engine: str = "numpy"):
        self.info: ModelInfo = read_info(model_dir)
        self.engine = load_engine(self.info, engine)
        self.max_len = self.info.model.max_len

    def predict_batch(self, strings: list[str]) -> list[tuple[str, float]]:
        """[(output, confidence)] for strings of at most max_len chars."""
        if not strings:
            return []
        ids, _ = self.info.input_vocab.encode_batch(strings, self.max_len, fill=PAD_ID)
        return self.predict_ids(ids)

    def predict_ids(self, ids: np.ndarray) -> list[tuple[str, float]]:
        """[(output, confidence)] for (B, max_len) input ids."""
        best, conf = self.engine.aligned_decode(ids)  # (B, T), (B,)
        outputs = self.info.output_vocab.decode_batch(best)
        return list(zip(outputs, conf.tolist()))


def predict_stream(
    predictor: Predictor,
    stream: BinaryIO,
    name: str = "<stdin>",
    on_long: str = "error",
    encoding_errors: str = "strict",
    batch_size: int = 1024,
    stats: PredictStats | None = None,
) -> Iterator[list[Prediction]]:
    """Yield batches of Predictions, one per input line, in order; write each as it comes.

    A line longer than max_len with on_long="error" raises TransducerError naming it,
    after every earlier line has been yielded, so outputs already written stay valid.
    """
    if on_long not in ON_LONG:
        raise TransducerError(f"--on-long must be one of {', '.join(ON_LONG)}, got {on_long!r}")
    stats = stats if stats is not None else PredictStats()
    chunk: list[tuple[int, str]] = []
    for line_no, raw in iter_raw_lines(stream):
        text = decode_line(raw, name, line_no, encoding_errors)
        stats.lines += 1
        if len(text) > predictor.max_len:
            stats.long_lines += 1
            stats.first_long_line = stats.first_long_line or line_no
            if on_long == "error":
                yield _run_chunk(predictor, chunk, stats)
                raise TransducerError(
                    f"{name}:{line_no}: input is {len(text)} characters, longer than the model's"
                    f" max_len {predictor.max_len}; use --on-long truncate or --on-long copy",
                    exit_code=1,
                )
        chunk.append((line_no, text))
        if len(chunk) >= batch_size:
            yield _run_chunk(predictor, chunk, stats, on_long)
            chunk = []
    if chunk:
        yield _run_chunk(predictor, chunk, stats, on_long)


def _run_chunk(predictor: Predictor, chunk, stats: PredictStats, on_long: str = "error") -> list[Prediction]:
    """Predictions for one chunk, in order; empty and copied lines skip the model."""
    n = predictor.max_len
    copy = [bool(text) and on_long == "copy" and len(text) > n for _, text in chunk]
    todo = [i for i, (_, text) in enumerate(chunk) if text and not copy[i]]
    vocab = predictor.info.input_vocab
    ids, _ = vocab.encode_batch([chunk[i][1] for i in todo], n, fill=PAD_ID)  # (B, T)
    unknown = np.count_nonzero(ids == UNK_ID, axis=1).tolist()  # (B,) per line
    for i in np.flatnonzero(copy):  # not encoded above, but their unknown characters count too
        unknown.append(sum(vocab.id_of(c) == UNK_ID for c in chunk[i][1][:n]))
    stats.unknown_chars += sum(unknown)
    stats.unknown_lines += sum(u > 0 for u in unknown)
    by_pos = dict(zip(todo, predictor.predict_ids(ids) if todo else []))
    out = []
    for i, (line_no, text) in enumerate(chunk):
        if i in by_pos:
            out.append(Prediction(line_no, text, *by_pos[i]))
        elif text:  # copied unchanged: the model did not produce it
            out.append(Prediction(line_no, text, text, None))
        else:
            out.append(Prediction(line_no, text, "", None))
    return out


def predict_strings(predictor: Predictor, strings: Iterable[str]) -> list[str]:
    """Convenience for library users: outputs for strings (each at most max_len chars)."""
    strings = list(strings)
    results = predictor.predict_batch([s for s in strings if s])
    it = iter(results)
    return [next(it)[0] if s else "" for s in strings]
