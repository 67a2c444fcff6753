"""`train --teacher DIR [--extra-inputs FILE]`: sequence-level distillation.

The student is an ordinary training run on pairs the teacher wrote: every training input
with the teacher's beam output in place of its reference (sequence-level knowledge
distillation, Kim & Rush 2016), plus every line of --extra-inputs (unlabeled strings, one
a line) with the teacher's output. A teacher is usually an ensemble (`train --ensemble N`):
the student is one model, so it predicts at one model's cost.

Validation stays on references, never on the teacher's outputs: the --val-file as given,
or, without one, the pairs --val-split holds out of PAIRS (same split as a run without
--teacher, and as the teacher's own run with the same seed); those are passed to the
student as its validation file, and their inputs are not relabelled.

config.json gets a "distill" record (which teacher, how many pairs relabelled, how many
extra inputs) and "data" names the user's files, not the temporary ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from transducer.core import artifacts, normalization
from transducer.core.config import ModelConfig, PredictOptions, TrainConfig, TransducerError
from transducer.core.data import decode_line, display_name, iter_raw_lines, open_binary
from transducer.inference.predict import Predictor
from transducer.training import stream
from transducer.training.ensemble import train_members
from transducer.training.loop import scan_data

# The teacher's beam width: its beam outputs, not greedy ones, are what the student learns
# (aligned teachers search exactly with any width above 1; label teachers ignore it).
TEACHER_BEAM = 5
TEACHER_BATCH = 512  # inputs per teacher call


@dataclass(frozen=True)
class Distilled:
    """The student's training data, written by `distilled_data`."""

    train_path: str  # teacher-labelled pairs: training inputs, then extra inputs
    val_path: str | None  # references to validate on (the --val-file, or PAIRS' held-out pairs)
    record: dict  # config.json's "distill" entry


def teacher_info(teacher: str | Path) -> artifacts.ModelInfo:
    """The teacher's config, or the CLI's one-line error naming --teacher."""
    try:
        return artifacts.read_info(teacher)
    except TransducerError as e:
        raise TransducerError(f"--teacher {e}") from None


def read_extra_inputs(path: str, limits: list[tuple[str, int, str]], skip_invalid: bool) -> tuple[list[str], int]:
    """(strings, lines skipped) of an --extra-inputs file: one string a line, blank lines
    ignored. `limits`: (normalization form, max_len, who) pairs every string must fit
    (the student's and the teacher's). A line that does not fit, holds a tab or is not
    UTF-8 stops with its file and line, unless skip_invalid."""
    name = display_name(path)
    source = open_binary(path)
    strings, skipped = [], 0
    try:
        for line_no, raw in iter_raw_lines(source):
            try:
                text = decode_line(raw, name, line_no)
                if text.strip() == "":
                    continue
                _check_extra(text, name, line_no, limits)
            except TransducerError:
                if not skip_invalid:
                    raise
                skipped += 1
                continue
            strings.append(text)
    finally:
        source.close()
    if not strings:
        raise TransducerError(f"{name}: no inputs; expected one string per line")
    return strings, skipped


def _check_extra(text: str, name: str, line_no: int, limits: list[tuple[str, int, str]]) -> None:
    if "\t" in text:
        raise TransducerError(f"{name}:{line_no}: a tab; --extra-inputs takes one unlabeled string per line")
    for form, max_len, who in limits:
        n = len(normalization.normalize(form, text))
        if n > max_len:
            raise TransducerError(
                f"{name}:{line_no}: {n} characters, longer than {who} {max_len} (fix it or pass --skip-invalid)"
            )


def teacher_outputs(predictor: Predictor, strings: list[str]) -> list[str]:
    """The teacher's best output for each string, in order."""
    out: list[str] = []
    for i in range(0, len(strings), TEACHER_BATCH):
        out.extend(o for o, _ in predictor.predict_batch(strings[i : i + TEACHER_BATCH]))
    return out


def teacher_record(info: artifacts.ModelInfo) -> dict:
    """Which teacher: its path, member count and the sha256 of its config.json (which
    names its vocabularies, architecture and training options)."""
    config = (info.path / artifacts.CONFIG).read_bytes()
    return {
        "path": str(info.path.resolve()),
        "members": artifacts.member_count(info),
        "arch": info.model.arch,
        "config_sha256": hashlib.sha256(config).hexdigest(),
    }


@contextlib.contextmanager
def distilled_data(
    pairs_path: str, teacher: str | Path, extra_inputs: str | None, model_cfg: ModelConfig, train_cfg: TrainConfig,
    val_path: str | None,
) -> Iterator[Distilled]:
    """The teacher-labelled training file and the reference validation file, in a
    temporary directory that lives as long as the context."""
    info = teacher_info(teacher)
    if info.model.arch == "label" and model_cfg.arch != "label" or model_cfg.arch == "label" and info.model.arch != "label":
        raise TransducerError(f"--teacher {teacher}: a {info.model.arch} model cannot teach a {model_cfg.arch} model")
    predictor = Predictor(info.path, PredictOptions(beam=TEACHER_BEAM, cache=0))
    limits = [(model_cfg.normalize, model_cfg.max_len, "--max-len"),
              (predictor.normalize, predictor.max_len, "the teacher's max_len")]
    extra, extra_skipped = read_extra_inputs(extra_inputs, limits, train_cfg.skip_invalid) if extra_inputs else ([], 0)
    spooled = stream.local_copy(pairs_path)  # stdin is read twice: the scan, then the pairs
    try:
        data, val = scan_data(spooled, model_cfg, train_cfg, val_path)
        gold = list(stream.iter_pairs(data, "train"))
        held_out = list(stream.iter_pairs(data, "val")) if val is None else []
        with tempfile.TemporaryDirectory(prefix="transducer-distill-") as tmp:
            inputs = [src for src, _ in gold] + extra
            labels = teacher_outputs(predictor, inputs)
            rows, dropped = _fitting(inputs, labels, model_cfg)
            train_path = _write_pairs(Path(tmp) / "distilled.tsv", rows)
            student_val = val_path
            if held_out:
                student_val = _write_pairs(Path(tmp) / "held-out.tsv", held_out)
            form = model_cfg.normalize
            relabelled = sum(
                normalization.normalize(form, out) != normalization.normalize(form, tgt)
                for (_, tgt), out in zip(gold, labels)
            )
            record = {
                "teacher": {**teacher_record(info), "beam": TEACHER_BEAM},
                "pairs": len(gold),
                "relabelled": relabelled,
                "extra_inputs": {"file": display_name(extra_inputs), "n": len(extra), "skipped": extra_skipped}
                if extra_inputs else None,
                "dropped": dropped,
                "validation": "val_file" if val_path else ("held out of the pairs" if held_out else "none"),
            }
            yield Distilled(train_path, student_val, record)
    finally:
        if spooled != pairs_path:
            Path(spooled).unlink(missing_ok=True)


def _fitting(inputs: list[str], labels: list[str], cfg: ModelConfig) -> tuple[list[tuple[str, str]], int]:
    """(input, teacher output) rows the student can learn, and how many were dropped: an
    output longer than the student's max_len (the teacher's may be longer) is left out."""
    rows, dropped = [], 0
    for src, out in zip(inputs, labels):
        n = len(normalization.normalize(cfg.normalize, out))
        if cfg.arch != "label" and n > cfg.max_len:
            dropped += 1
            continue
        rows.append((src, out))
    if not rows:
        raise TransducerError("--teacher: none of the teacher's outputs fit the student (--max-len, --arch)")
    return rows, dropped


def _write_pairs(path: Path, rows) -> str:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for src, tgt in rows:
            f.write(f"{src}\t{tgt}\n")
    return str(path)


def record_in_model(model_dir: str | Path, record: dict, pairs_path: str, val_path: str | None) -> None:
    """Add the "distill" record to the published model's config.json and put the user's
    file names back in "data" (training ran on temporary files)."""
    path = Path(model_dir) / artifacts.CONFIG
    config = json.loads(path.read_text(encoding="utf-8"))
    config["data"] = {**config.get("data", {}), "train_file": display_name(pairs_path), "val_file": val_path}
    config["distill"] = record
    artifacts.write_json(path, config)


def train_student(
    pairs_path: str, model_dir: str | Path, model_cfg: ModelConfig, train_cfg: TrainConfig, teacher: str | Path | None,
    extra_inputs: str | None = None, val_path: str | None = None, force: bool = False, reporter=None,
    resume: bool = False, on_member=None,
):
    """Train (one model, or an ensemble with train_cfg.ensemble > 1) on the teacher's
    outputs and publish it with its "distill" record; returns train's or train_ensemble's
    result. --resume works as for any run: the teacher labels the same inputs the same way,
    so the data matches the checkpoint's."""
    if teacher is None:
        raise TransducerError("--extra-inputs needs --teacher (the model that labels them)")
    artifacts.check_writable(Path(model_dir), force or resume)  # before the teacher's work
    with distilled_data(pairs_path, teacher, extra_inputs, model_cfg, train_cfg, val_path) as data:
        result = train_members(data.train_path, model_dir, model_cfg, train_cfg, on_member=on_member,
                               val_path=data.val_path, force=force, reporter=reporter, resume=resume)
    if not (result.interrupted and train_cfg.ensemble > 1):  # an interrupted ensemble publishes nothing
        record_in_model(model_dir, data.record, pairs_path, val_path)
    return result
