"""Inference: lines in, one prediction per line out, in order, in batches.

`predict_stream` is a generator: it reads a chunk of lines, runs one batched model call,
yields the chunk's predictions, and only then reads on. A chunk ends at `batch_size`
lines, or earlier when the input pauses (a pipe or terminal with no further line ready),
so each line is answered as soon as it can be while a fast producer still fills whole
batches. Memory stays flat for any input length.

Inside a chunk, each distinct line is computed once, and a bounded cache (`--cache`,
least recently used lines dropped first) keeps results across chunks: the words of
running text or the names of a table repeat a lot. A masked seq2seq or edit model's lines
are sorted by length and run in groups of GROUP, each padded to its own longest line only;
results go back in input order. Masks make a line's result independent of its group, so
neither the grouping nor the cache changes any output or confidence.
"""

from __future__ import annotations

import codecs
import dataclasses
import itertools
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import BinaryIO, Iterable, Iterator

import numpy as np

from transducer.core import normalization
from transducer.core.artifacts import ModelInfo, output_length, read_info
from transducer.core.config import OnLong, PredictOptions, TransducerError
from transducer.core.data import LongLine, decode_line, iter_bounded_lines, line_reader
from transducer.inference import combine, decode, edit_decode, forced
from transducer.inference.ensemble import EnsembleEngine, load_engine
from transducer.inference.probs import row_slices
from transducer.core.vocab import END_ID, PAD_ID, UNK_ID


PIECE_CHARS = 1 << 18  # characters per piece when a spooled line is read back
GROUP = 256  # lines of similar length run together in one masked seq2seq or edit model call


class ResultCache:
    """A bounded map line -> result, dropping the least recently used line first."""

    def __init__(self, size: int):
        self.size = size  # most lines kept; 0 turns caching (and merging repeats) off
        self.entries: OrderedDict[str, tuple] = OrderedDict()

    def get(self, line: str):
        hit = self.entries.get(line)
        if hit is not None:
            self.entries.move_to_end(line)
        return hit

    def put(self, line: str, result: tuple) -> None:
        self.entries[line] = result
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)


class SpooledLine:
    """An input line too long to hold in memory (far over max_len), decoded into a
    temporary file and read back in pieces, so `--on-long copy` streams it through and
    `--format tsv/jsonl` can echo it. `head` holds its first max_len characters."""

    def __init__(self, long: LongLine, name: str, line_no: int, errors: str, max_len: int):
        """max_len: characters of the line's beginning kept in `head`."""
        self.file = tempfile.TemporaryFile("w+", encoding="utf-8", newline="")
        self.head = ""
        decoder = codecs.getincrementaldecoder("utf-8")(errors)
        offset = 0  # bytes of the line handed to the decoder so far
        try:
            for piece in itertools.chain(long.pieces(), [b""]):  # b"": flushes the decoder
                pending = len(decoder.getstate()[0])
                try:
                    text = decoder.decode(piece, final=piece == b"")
                except UnicodeDecodeError as e:
                    raise TransducerError(
                        f"{name}:{line_no}: not valid UTF-8 (byte {offset - pending + e.start + 1}"
                        " of the line)",
                        exit_code=1,
                    ) from None
                offset += len(piece)
                if len(self.head) < max_len:
                    self.head += text[: max_len - len(self.head)]
                self.file.write(text)
        except BaseException:
            self.file.close()
            raise

    def pieces(self) -> Iterator[str]:
        """The whole line, in pieces of at most PIECE_CHARS characters; re-readable."""
        self.file.seek(0)
        while piece := self.file.read(PIECE_CHARS):
            yield piece

    def close(self) -> None:
        self.file.close()


@dataclass
class Prediction:
    line_no: int  # 1-based input line number
    input: str | SpooledLine  # the input line, line ending removed (spooled when huge)
    output: str | SpooledLine  # the predicted string (the spooled input, copied, when huge)
    confidence: float | None  # probability of `output` under the model; None when not modelled
    nbest: list[tuple[str, float, float]] | None = None  # (candidate, score, probability),
    #   best first, with --nbest > 1; score as in decode.py (seq2seq: log P per symbol)


MAX_UNSEEN_KINDS = 1000  # distinct unseen characters counted one by one (the rest only in total)


@dataclass
class PredictStats:
    lines: int = 0  # lines read
    unknown_chars: int = 0  # input characters not in the training vocabulary
    unknown_lines: int = 0  # lines holding at least one of them
    first_unknown_line: int = 0  # line number of the first of them
    unknown_counts: dict = field(default_factory=dict)  # unseen character -> occurrences
    long_lines: int = 0  # lines longer than max_len (handled by --on-long)
    first_long_line: int = 0  # line number of the first of them

    def count_unknown(self, line_no: int, chars: list[str]) -> None:
        """Record one line's unseen characters."""
        if not chars:
            return
        self.unknown_chars += len(chars)
        self.unknown_lines += 1
        self.first_unknown_line = self.first_unknown_line or line_no
        for c in chars:
            if c in self.unknown_counts or len(self.unknown_counts) < MAX_UNSEEN_KINDS:
                self.unknown_counts[c] = self.unknown_counts.get(c, 0) + 1

    def most_unknown(self, n: int = 5) -> list[tuple[str, int]]:
        """The n most frequent unseen characters with their counts, most frequent first."""
        return sorted(self.unknown_counts.items(), key=lambda kv: -kv[1])[:n]


class Predictor:
    """A loaded model: batches of strings -> outputs with confidences.

    beam: seq2seq and edit beam width (1 = greedy). nbest: candidates per line (<= beam;
    an edit model's are distinct strings, see edit_decode.py). For the aligned model
    either above 1 switches from per-position argmax to the exact search for the most
    probable strings (decode.aligned_kbest). A label model scores every label, so beam
    changes nothing; nbest gives its most probable labels.
    unk: "copy" (aligned models): a character never seen in training is copied through
    unchanged at its position, and the string goes on after it; "model": the model reads
    it as <unk> and decides (it may end the string there). seq2seq models always read <unk>;
    edit models read <unk> too, and their COPY action writes the input's own character.
    """

    def __init__(self, model_dir, options: PredictOptions | None = None, *, engine=None, **overrides):
        """options: how to run (PredictOptions; `overrides` replace some of its fields, e.g.
        Predictor(dir, beam=5)). engine: "numpy" | "keras", or an engine object already
        built (then its model is used and model_dir only names it), e.g.
        KerasEngine(info, model=just_trained)."""
        if isinstance(engine, str):
            overrides["engine"], engine = engine, None
        self.options = dataclasses.replace(options or PredictOptions(), **overrides)  # checks them
        self.cache = ResultCache(self.options.cache)
        if engine is None:
            self.info: ModelInfo = read_info(model_dir)
            self.engine = load_engine(self.info, self.options.engine)
        else:
            self.info, self.engine = engine.info, engine
        self.max_len = self.info.model.max_len  # characters of the normalized input
        self.output_length = output_length(self.info)  # None: outputs run to max_len
        self.normalize = self.info.model.normalize  # the Unicode form the model works in
        self.beam, self.nbest = self.options.beam, self.options.nbest
        self.copy_unk = self.options.unk == "copy" and self.info.model.arch == "aligned"
        self.members = self._members()  # --combine vote/rescore: each member's own Predictor
        if self.members is None:
            self._check_fit()

    def _members(self) -> list["Predictor"] | None:
        """An ensemble with --combine vote or rescore: one Predictor per member, searching
        as the rule needs (combine.py), sharing this one's loaded engines. None when the
        engine itself runs: one model, or the members' per-step mean."""
        rule = self.options.combine
        if not isinstance(self.engine, EnsembleEngine):
            return None
        if rule == "auto":  # what measured best for each kind (docs/guides/ensembles.md)
            rule = "rescore" if self.engine.conflict else "mean"
        if rule == "mean":
            self.engine.check_mean()
            return None
        k = combine.rescore_k(self.beam, self.nbest) if rule == "rescore" else self.beam
        opts = dataclasses.replace(self.options, combine="mean", beam=k, nbest=k if rule == "rescore" else 1, cache=0)
        return [Predictor(e.info.path, opts, engine=e) for e in self.engine.engines]

    def with_options(self, **changes) -> "Predictor":
        """A predictor with some options changed, sharing this one's loaded engine."""
        return Predictor(self.info.path, dataclasses.replace(self.options, **changes), engine=self.engine)

    def _check_fit(self) -> None:
        """Weights that disagree with config.json's vocabularies fail here, with one clear
        message, instead of a shape error (or silently wrong symbols) on the first batch."""
        vin, vout = len(self.info.input_vocab), len(self.info.output_vocab)
        probe = self.info.input_vocab.symbols[-1] * self.max_len  # uses the highest input id
        try:
            if self.info.model.arch in ("aligned", "label"):
                ids = np.full((1, self.max_len), vin - 1, dtype=np.int32)  # (1, T)
                if self.info.model.arch == "label":
                    width, want = self.engine.label_probs(ids).shape, (1, vout)  # (1, n_labels)
                else:
                    width, want = self.engine.aligned_probs(ids).shape, (1, self.max_len, vout)  # (1, T, V)
                if tuple(width) != want:
                    raise ValueError(f"output shape {tuple(width)}")
            else:
                self._compute([probe])
        except TransducerError:
            raise
        except Exception as e:  # IndexError, ValueError from numpy or Keras: a mismatch
            raise TransducerError(
                f"{self.info.path}: the weights do not fit the vocabularies and sizes in config.json"
                f" ({vin} input, {vout} output symbols, hidden {self.info.model.hidden}): {type(e).__name__};"
                f" if model.keras is right, re-export with `transducer export {self.info.path}`"
            ) from None

    def output_limits(self, ids: np.ndarray) -> np.ndarray:
        """(B,) the longest output a seq2seq model may write for each row of (B, T)
        right-padded input ids: the learned bound (config.OutputLength), or max_len for a
        model directory written before it."""
        return decode.learned_limits(self.output_length, ids, self.max_len)

    def predict_batch(self, strings: list[str]) -> list[tuple[str, float]]:
        """[(output, confidence)] for strings of at most max_len chars."""
        return [(out, conf) for out, conf, _ in self.predict_candidates(strings)]

    def model_input(self, text: str) -> str:
        """What the model sees of `text` (or of a long line's beginning): its first max_len
        characters in the model's normalization form."""
        return normalization.head(self.normalize, text, self.max_len)

    def input_length(self, text: str) -> int:
        """Characters of `text` as max_len counts them: in the model's normalization form."""
        return len(normalization.normalize(self.normalize, text))

    def for_output(self, text: str) -> str:
        """A model-form string as the user sees it (composed when the model decomposes)."""
        return normalization.for_output(self.normalize, text)

    def predict_candidates(self, strings: list[str]) -> list[tuple[str, float, list | None]]:
        """[(output, confidence, n-best list or None)] for strings of at most max_len
        characters once normalized: each distinct string computed once, unless the cache
        already holds it."""
        strings = [self.model_input(s) for s in strings]
        if not self.cache.size:
            return self._compute(strings)
        results = {}
        todo = []
        for s in dict.fromkeys(strings):
            hit = self.cache.get(s)
            if hit is None:
                todo.append(s)
            else:
                results[s] = hit
        for s, result in zip(todo, self._compute(todo)):
            results[s] = result
            self.cache.put(s, result)
        return [results[s] for s in strings]

    def _compute(self, strings: list[str]) -> list[tuple[str, float, list | None]]:
        """Run the model. A masked seq2seq or edit model runs groups of similar length, each
        to its own longest string. An aligned model runs to max_len (it may write past the end
        of the input; a unidirectional one stops once every line has ended), as does a
        model written before masks (it was trained on max_len-long rows)."""
        if self.members is not None:
            return self._combined(strings)

        def run(ids, rows):
            return self.candidates_for_ids(ids, [strings[i] for i in rows])

        if self.info.model.arch == "aligned" and self.beam == 1 and self.nbest == 1 and strings:
            # The engine's aligned_decode takes the whole chunk: it sorts the lines by length
            # and shares them out to its threads (numpy_engine), holding little at once.
            return run(self.info.input_vocab.encode_batch(strings, self.max_len, fill=PAD_ID)[0], range(len(strings)))
        return self._grouped(strings, run)

    def _grouped(self, strings: list[str], run) -> list:
        """run(ids, rows) -> one result per row, for (B, T) right-padded input ids of
        strings[rows]: in input order, probs.CALL_ROWS at a time, or in groups of similar
        length (see _compute); the results in the order of `strings`."""
        if not strings:
            return []
        encode = self.info.input_vocab.encode_batch
        if not (self.info.model.arch in ("seq2seq", "edit") and self.info.model.masked):
            # max_len wide, in input order, CALL_ROWS lines at a time: what a call holds
            # ((B, T, V) probabilities, an unmasked encoder's outputs) grows with its lines.
            ids = encode(strings, self.max_len, fill=PAD_ID)[0]  # (B, max_len)
            return [result for rows in row_slices(len(strings)) for result in run(ids[rows.start : rows.stop], rows)]
        order = sorted(range(len(strings)), key=lambda i: len(strings[i]))
        out: list = [None] * len(strings)
        for g in range(0, len(order), GROUP):
            rows = order[g : g + GROUP]
            ids, _ = encode([strings[i] for i in rows], max(1, len(strings[rows[-1]])), fill=PAD_ID)  # (G, longest)
            for i, result in zip(rows, run(ids, rows)):
                out[i] = result
        return out

    def search(self, strings: list[str]) -> list[list[tuple[str, float, float]]]:
        """Per line (model-form strings of at most max_len characters), this model's
        candidates as (model-form output, score, log P), best first: what combine.py reads."""
        return self._grouped(strings, lambda ids, rows: self.found_for_ids(ids, [strings[i] for i in rows]))

    def forced(self, strings: list[str], cands: list[list[str]]) -> list[np.ndarray]:
        """Per line, log P of each of its candidate outputs (model form) under this model:
        forced decoding (forced.py), for combine.py's rescoring."""
        return self._grouped(strings, lambda ids, rows: forced.logp(
            self.engine, ids, [strings[i] for i in rows], [cands[i] for i in rows], self.copy_unk))

    def _combined(self, strings: list[str]) -> list[tuple[str, float, list | None]]:
        """The members' outputs combined by --combine vote or rescore (combine.py)."""
        if self.options.combine == "vote":
            ranked = combine.vote(self.members, strings)
        else:
            ranked = combine.rescore(self.members, strings, self.members[0].nbest)
        results = []
        for cands in ranked:
            nbest = [(self.for_output(c.output), c.score, c.probability) for c in cands[: self.nbest]]
            results.append((nbest[0][0], nbest[0][2], nbest if self.nbest > 1 else None))
        return results

    def candidates_for_ids(self, ids: np.ndarray, strings: list[str]) -> list[tuple[str, float, list | None]]:
        """Candidates for (B, T) right-padded input ids of `strings` (T = max_len, or
        shorter for a masked seq2seq model); --unk copy copies from `strings`."""
        if self.info.model.arch == "label":
            return decode.label_candidates(self.engine.label_probs(ids), self.info.output_vocab, self.nbest)
        if self.info.model.arch == "aligned" and self.beam == 1 and self.nbest == 1:
            return [(self.for_output(o), p, None) for o, p in self._aligned_greedy(ids, strings)]
        return self._results(self.found_for_ids(ids, strings))

    def found_for_ids(self, ids: np.ndarray, strings: list[str]) -> list[list[tuple[str, float, float]]]:
        """Per line, the search's candidates as (model-form output, score, log P), best first."""
        if self.info.model.arch == "label":
            found = decode.label_candidates(self.engine.label_probs(ids), self.info.output_vocab, self.nbest)
            return [[(c, sc, _log(p)) for c, sc, p in nb or [(out, conf, conf)]] for out, conf, nb in found]
        if self.info.model.arch == "edit":
            return self._edit_candidates(ids, strings)
        copied = ids == UNK_ID if self.copy_unk else np.zeros(ids.shape, bool)  # (B, T)
        if self.info.model.arch == "seq2seq":
            limits = self.output_limits(ids)
            if self.beam == 1:
                found = [[c] for c in decode.greedy(self.engine, ids, limits)]
            else:
                found = decode.beam_search(self.engine, ids, limits, self.beam, self.nbest)
        elif self.beam == 1 and self.nbest == 1:
            return [[(o, _log(p), _log(p))] for o, p in self._aligned_greedy(ids, strings)]
        else:
            probs = self.engine.aligned_probs(ids)  # (B, T, V)
            # A copied position has one choice, certain, never the end: a placeholder
            # character (id 4) that copy_through replaces with the input's.
            probs[copied] = 0.0
            probs[copied, 4] = 1.0
            found = decode.aligned_kbest(probs, self.nbest)
        return [
            [(copy_through(c.ids, strings[b], copied[b], self.info.output_vocab), float(c.score), float(c.logp)) for c in cands]
            for b, cands in enumerate(found)
        ]

    def _aligned_greedy(self, ids: np.ndarray, strings: list[str]) -> list[tuple[str, float]]:
        """An aligned model's per-position argmax: (model-form output, its probability) per line."""
        best, conf = self.engine.aligned_decode(ids, copy_unk=self.copy_unk)  # (B, T), (B,)
        outputs = self.info.output_vocab.decode_batch(best)
        if self.copy_unk:
            copied = ids == UNK_ID  # (B, T)
            for b in np.flatnonzero(copied.any(axis=1)):
                outputs[b] = copy_through(best[b], strings[b], copied[b], self.info.output_vocab)
        return list(zip(outputs, conf.tolist()))

    def _edit_candidates(self, ids: np.ndarray, strings: list[str]) -> list[list[tuple[str, float, float]]]:
        """An edit model's candidates (inference/edit_decode.py): greedy, or a beam search
        over action paths whose n-best are distinct strings. COPY writes the input's own
        character, so characters never seen in training are copied through."""
        actions, limits = self.info.output_vocab, self.output_limits(ids)
        if self.beam == 1:
            found = [[c] for c in edit_decode.greedy(self.engine, ids, strings, actions, limits)]
        else:
            found = edit_decode.beam_search(self.engine, ids, strings, actions, limits, self.beam, self.nbest)
        return [[(c.output, c.score, c.logp) for c in cands] for cands in found]

    def _results(self, found: list[list[tuple[str, float, float]]]) -> list[tuple[str, float, list | None]]:
        """(output, confidence, n-best list or None) per line from its candidates, best
        first, each (model-form string, score, log P)."""
        results = []
        for cands in found:
            nbest = [(self.for_output(out), float(sc), float(np.exp(logp))) for out, sc, logp in cands]
            results.append((nbest[0][0], nbest[0][2], nbest if self.nbest > 1 else None))
        return results


def _log(p: float) -> float:
    """A probability's log, finite (an underflowed 0 stays the most negative float's order)."""
    return float(np.log(max(p, 1e-300)))


def copy_through(out_ids, string: str, copied: np.ndarray, vocab) -> str:
    """An output's string: the symbols up to the first </s> or <pad>, as Vocab.decode,
    except that each copied position (chosen as <unk> or a placeholder, see
    probs.decode_probs) holds the input's character from `string` (--unk copy)."""
    symbols = vocab.symbols
    chars = []
    for t, i in enumerate(out_ids):
        i = int(i)
        if t < len(string) and copied[t]:
            chars.append(string[t])
        elif i in (END_ID, PAD_ID):
            break
        elif i >= 4:
            chars.append(symbols[i])
    return "".join(chars)


def predict_stream(
    predictor: Predictor, stream: BinaryIO, name: str = "<stdin>", stats: PredictStats | None = None
) -> Iterator[list[Prediction]]:
    """Yield batches of Predictions, one per input line, in order; write each as it comes.
    on_long, encoding_errors and batch_size are the predictor's options.

    A line longer than max_len with on_long="error" raises TransducerError naming it,
    after every earlier line has been yielded, so outputs already written stay valid.
    """
    opts = predictor.options
    stats = stats if stats is not None else PredictStats()
    # A line of max_len characters is at most 4 * max_len bytes of UTF-8 (+ "\r\n"), more
    # when normalization composes characters; a longer one is over max_len whatever it
    # holds, and is never read whole into memory.
    limit = normalization.byte_limit(predictor.normalize, predictor.max_len)
    chunk: list[tuple[int, str | SpooledLine]] = []
    reader = line_reader(stream)
    for line_no, raw in iter_bounded_lines(reader, limit):
        stats.lines += 1
        if isinstance(raw, LongLine):
            length = None
        else:
            try:
                text = decode_line(raw, name, line_no, opts.encoding_errors)
            except TransducerError:
                yield _run_chunk(predictor, chunk, stats)  # every earlier line first
                raise
            length = predictor.input_length(text)
        if length is None or length > predictor.max_len:
            if opts.on_long == OnLong.ERROR:
                yield _run_chunk(predictor, chunk, stats)
                length = raw.count_chars() if length is None else length  # reads the line through
            _long_line(predictor, stats, name, line_no, length)
        if length is None:
            # Everything before it goes out first, so a decoding error here still leaves
            # every earlier line written; then the huge line goes out on its own.
            if chunk:
                yield _run_chunk(predictor, chunk, stats)
                chunk = []
            head_chars = normalization.head_chars(predictor.normalize, predictor.max_len)
            spooled = SpooledLine(raw, name, line_no, opts.encoding_errors, head_chars)
            try:
                yield _run_chunk(predictor, [(line_no, spooled)], stats)
            finally:
                spooled.close()
            continue
        chunk.append((line_no, text))
        if len(chunk) >= opts.batch_size or not reader.ready():  # full, or the input pauses
            yield _run_chunk(predictor, chunk, stats)
            chunk = []
    if chunk:
        yield _run_chunk(predictor, chunk, stats)


def predict_texts(
    predictor: Predictor, texts: Iterable[str], name: str = "strings", stats: PredictStats | None = None
) -> Iterator[list[Prediction]]:
    """predict_stream for strings already in memory (the Python API): the same rules
    (on_long, normalization, unseen characters), the same results, item N named as
    `name`:N in errors. A string must be one line: no \n or \r in it."""
    stats = stats if stats is not None else PredictStats()
    chunk: list[tuple[int, str]] = []
    for line_no, text in enumerate(texts, 1):
        stats.lines += 1
        if not isinstance(text, str) or "\n" in text or "\r" in text:
            yield _run_chunk(predictor, chunk, stats)
            raise TransducerError(f"{name}:{line_no}: expected a one-line string, got {text!r}"[:300])
        length = predictor.input_length(text)
        if length > predictor.max_len:
            if predictor.options.on_long == OnLong.ERROR:
                yield _run_chunk(predictor, chunk, stats)
            _long_line(predictor, stats, name, line_no, length)
        chunk.append((line_no, text))
        if len(chunk) >= predictor.options.batch_size:
            yield _run_chunk(predictor, chunk, stats)
            chunk = []
    if chunk:
        yield _run_chunk(predictor, chunk, stats)


def _long_line(predictor: Predictor, stats: PredictStats, name: str, line_no: int, length: int | None) -> None:
    """Count a line over max_len; with on_long "error", stop with its one-line message."""
    stats.long_lines += 1
    stats.first_long_line = stats.first_long_line or line_no
    if predictor.options.on_long == OnLong.ERROR:
        raise TransducerError(
            f"{name}:{line_no}: input is {length} characters, longer than the model's"
            f" max_len {predictor.max_len}; use --on-long truncate or --on-long copy",
            exit_code=1,
        )


def _run_chunk(predictor: Predictor, chunk, stats: PredictStats) -> list[Prediction]:
    """Predictions for one chunk, in order; empty and copied lines skip the model."""
    on_long = predictor.options.on_long
    max_len = predictor.max_len
    vocab = predictor.info.input_vocab
    heads = [predictor.model_input(x.head if isinstance(x, SpooledLine) else x) for _, x in chunk]  # what the model sees
    longs = [isinstance(x, SpooledLine) or predictor.input_length(x) > max_len for _, x in chunk]
    todo = [i for i, head in enumerate(heads) if head and not (on_long == "copy" and longs[i])]
    ids, _ = vocab.encode_batch([heads[i] for i in todo], max_len, fill=PAD_ID)  # (B, T)
    unknown = dict(zip(todo, np.count_nonzero(ids == UNK_ID, axis=1).tolist()))  # line -> count
    for i, head in enumerate(heads):  # copied lines were not encoded; their unseen characters count too
        if unknown.get(i, 1):
            stats.count_unknown(chunk[i][0], [c for c in head if vocab.id_of(c) == UNK_ID])
    by_pos = dict(zip(todo, predictor.predict_candidates([heads[i] for i in todo])))
    out = []
    for i, (line_no, text) in enumerate(chunk):
        if i in by_pos:
            out.append(Prediction(line_no, text, *by_pos[i]))
        elif heads[i]:  # copied unchanged: the model did not produce it
            out.append(Prediction(line_no, text, text, None))
        else:
            out.append(Prediction(line_no, text, "", None))
    return out
