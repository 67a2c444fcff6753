"""`train --teacher DIR [--extra-inputs FILE]`: one model trained to match another (usually
an ensemble, `train --ensemble N`), so that it predicts at one model's cost.

Token level (`--teacher-mode token`, the default; Sun et al. 2019, "Token-level ensemble
distillation for grapheme-to-phoneme conversion"): at every output step of a training
target, teacher-forced on the reference, the student fits the teacher ensemble's
distribution as well as the reference:

    loss = α · CE(teacher distribution, student) + (1 − α) · NLL(reference)    α = --teacher-weight

per counted position (the characters and the first </s>, as for any loss here), the
reference term label-smoothed as in a run without a teacher, so α = 0 is exactly that
run's loss. The teacher's distribution is its members' renormalised geometric mean, as
inference/ensemble.py combines them for prediction. Lines of --extra-inputs (unlabeled
strings) get the teacher's beam output as their target, and its distributions along it.

With --teacher-temperature T (Hinton et al. 2015, "Distilling the knowledge in a neural
network") the fitted term compares both distributions softened, softmax(log p / T), and is
scaled by T² so that its gradients keep their size as T grows; T = 1 is the term above.
The aim: a teacher that has learnt its training words puts nearly all its mass on the
reference there, and softened, the relative weights it gives the other symbols are fitted
too. Measured at T = 2 on edit students it was worse on dev on four of five languages
(docs/benchmarks/sigmorphon.md), so T is 1 unless given.

An edit student (`--arch edit`) fits its teacher's distributions over edit actions, at
every step of the expert's action sequence (networks/edit.py): the teacher's members take
the same characters, pointers and previous actions, so teacher and student must share
the action vocabulary and the expert that makes the sequence. The student takes both from
the teacher (its actions and its fitted aligner, aligner.json), as --init-from does; the
reference term is the edit loss on the expert's action, and the counted positions are
the real steps.

Where the distributions come from: the teacher runs inside the training graph. Its member
networks, rebuilt from their model directories and frozen, take the student's own batch
(the same one-hot inputs: the student uses the teacher's vocabularies, as --init-from
does), and the loss combines their outputs there (`Distiller`). Nothing is stored, so
memory is one batch's distributions whatever the data size (a CMUdict run holds 113k
words x 33 steps x V floats nowhere), the data pipeline (shuffling, length buckets) is the
ordinary one, and the teacher's distributions are exact. The cost is the teacher's forward
pass in every step: an N-member teacher adds about N/3 of a student step each (a forward
pass is about a third of forward plus backward). The alternative, the top k entries per
step precomputed into a memory-mapped file, pays the teacher once, but needs k·(id,
probability) per step on disk (113k x 33 x 8 x 8 bytes ≈ 240 MB), row ids carried through
the shuffled, length-bucketed tf.data pipeline, and truncated, renormalised targets; a
frozen forward pass is simpler and was cheap enough (docs/guides/small-data.md).

Only the student is a tracked part of the training model (`Distiller`): the teacher's
networks sit in a plain closure, so the training model's variables are the student's,
and the checkpoints, the best weights early stopping keeps, --resume and the published
model directory are exactly those of a run without a teacher. Validation stays on the
references and its loss is the student's ordinary loss (the teacher does not run there),
so early stopping judges the student as it judges any model.

Sequence level (`--teacher-mode sequence`; Kim & Rush 2016): the student is an ordinary
run on every training input with the teacher's beam output in place of its reference.
It measured no better than a single model (an ensemble reproduces its own training
pairs), and is kept for teachers token level cannot use: a label model, another
architecture, other vocabularies or Unicode normalization.

Validation, both modes: the --val-file as given, or, without one, the pairs --val-split
holds out of PAIRS (the same split as a run without --teacher, and as the teacher's own
run with the same seed); their inputs are never relabelled. config.json gets a "distill"
record (mode, weight, which teacher, the extra inputs) and "data" names the user's files,
not the temporary ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from transducer.core import artifacts, normalization
from transducer.core.config import ModelConfig, PredictOptions, TrainConfig, TransducerError
from transducer.core.data import decode_line, display_name, iter_raw_lines, open_binary
from transducer.inference.ensemble import LOG_FLOOR
from transducer.inference.predict import Predictor
from transducer.networks.build import build_model, sequence_loss, sequence_mean
from transducer.networks.edit import ActionKinds, edit_loss, real_step_mean
from transducer.networks.saved import load_keras_model
from transducer.networks.tf import keras, ops
from transducer.training import stream
from transducer.training.ensemble import train_members
from transducer.training.loop import copy_weights, scan_data
from transducer.training.preflight import check_teaching

# The teacher's beam width: its beam outputs, not greedy ones, are the targets it writes
# (aligned teachers search exactly with any width above 1; label teachers ignore it).
TEACHER_BEAM = 5
TEACHER_BATCH = 512  # inputs per teacher call
# --teacher-weight's default, α: the share of the loss that fits the teacher's distribution
# (docs/guides/small-data.md has the measurements it was chosen by).
DEFAULT_WEIGHT = 0.5
# An edit student's (docs/benchmarks/sigmorphon.md): 0.8 measured better on dev than 0.5 on
# three of five languages (by 0.4-1.4) and equal on the other two, and better on test on average.
DEFAULT_WEIGHTS = {"edit": 0.8}
TOKEN_ARCHS = ("seq2seq", "aligned", "edit")  # architectures with a distribution per output step


@dataclass(frozen=True)
class Distilled:
    """The student's training data, written by `distilled_data`."""

    train_path: str  # training pairs (references, or the teacher's outputs), then labelled extra inputs
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


# --- token level: the loss and the training model ----------------------------------------


def ensemble_probs(members, inputs, temperature: float = 1.0):
    """The frozen members' per-step distributions on `inputs`, combined as
    inference/ensemble.combine does: exp(mean_k log p_k), renormalised, then softened by
    `temperature` (softmax of the mean log-probabilities over it). (B, T, V)"""
    logp = [ops.log(ops.clip(m(inputs, training=False), LOG_FLOOR, 1.0)) for m in members]  # each (B, T, V)
    mean = ops.mean(ops.stack(logp), axis=0)  # (B, T, V)
    return ops.stop_gradient(ops.softmax(mean / temperature, axis=-1))  # (B, T, V)


def token_loss(weight: float, masked: bool = True, label_smoothing: float = 0.0, arch: str = "seq2seq",
               temperature: float = 1.0):
    """loss(y_true, student (B, T, V), teacher (B, T, V)) -> (B,): per sequence,
    weight · CE(teacher, student) + (1 − weight) · the student's ordinary loss on y_true,
    over the same counted positions. With temperature T ≠ 1 the CE term is
    T² · CE(teacher, softmax(log student / T)), the teacher already softened by
    ensemble_probs(..., T). y_true: (B, T) ids for seq2seq and aligned
    (networks/build.sequence_loss), (B, S, A) the expert's action one-hot for edit
    (networks/edit.edit_loss; T is then S steps and V the A actions)."""
    if arch == "edit":
        reference, mean = edit_loss(label_smoothing), real_step_mean
    else:
        reference, mean = sequence_loss(masked, label_smoothing), lambda v, y: sequence_mean(v, y, masked)

    def loss(y_true, student, teacher):
        logp = ops.log(ops.clip(student, keras.config.epsilon(), 1.0))  # (B, T, V)
        if temperature != 1.0:
            logp = temperature**2 * ops.log_softmax(logp / temperature, axis=-1)  # softened, scaled by T² (B, T, V)
        ce = -ops.sum(teacher * logp, axis=-1)  # (B, T)
        return weight * mean(ce, y_true) + (1.0 - weight) * reference(y_true, student)  # (B,)

    return loss


class Distiller(keras.Model):
    """The model a token-level student trains as: calling it is calling the student, and
    its training loss adds the teacher's distributions on the same batch (`token_loss`).
    Validation's loss is the student's compiled one, on the references alone.

    The teacher is held in a closure, untracked: this model's variables, and so its
    checkpoints and weights, are the student's."""

    def __init__(self, student, teacher, loss):
        super().__init__(name="distiller")
        self.student = student
        self._teacher = teacher  # inputs -> (B, T, V) teacher distribution; a function, not tracked
        self._loss = loss  # token_loss(...)

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not training:
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        return ops.mean(self._loss(y, y_pred, self._teacher(x)))  # the batch's mean, as Keras's own


def frozen_members(info: artifacts.ModelInfo) -> list:
    """The teacher's member networks, frozen, rebuilt with the training time axes (None
    where batches are length-bucketed) and their weights loaded by layer name."""
    members = []
    for member in artifacts.read_members(info):
        kinds = ActionKinds.of(member.output_vocab) if member.model.arch == "edit" else None
        net = build_model(member.model, member.model.variable_length, kinds)
        copy_weights(load_keras_model(member), net)
        net.trainable = False
        members.append(net)
    return members


@dataclass(frozen=True)
class TokenTeacher:
    """A token-level --teacher, as training/loop.train takes it (loop.Teaching)."""

    info: artifacts.ModelInfo  # the teacher's model directory: its vocabularies are the student's
    weight: float  # α, --teacher-weight
    masked: bool  # the student's loss counts its targets' positions only (ModelConfig.masked)
    label_smoothing: float  # the reference term's, as the student's run has it
    identity: dict = field(default_factory=dict)  # what --resume must match: teacher, weight (and temperature)
    temperature: float = 1.0  # T, --teacher-temperature: both distributions softened in the fitted term

    @property
    def aligner_dir(self) -> Path | None:
        """Where an edit student's aligner comes from: the teacher's (an assembled or
        trained ensemble keeps member 1's at its top level); None for other archs."""
        return self.info.path if self.info.model.arch == "edit" else None

    def trainer(self, student) -> Distiller:
        members = frozen_members(self.info)
        loss = token_loss(self.weight, self.masked, self.label_smoothing, self.info.model.arch, self.temperature)
        return Distiller(student, lambda inputs: ensemble_probs(members, inputs, self.temperature), loss)


def check_token_teacher(info: artifacts.ModelInfo, cfg: ModelConfig, train_cfg: TrainConfig) -> None:
    """A one-line error unless this teacher's distributions can be fitted step by step:
    same architecture kind and Unicode form, masks, one device; the student takes the
    teacher's vocabularies (an --init-from model must have the same)."""
    t, where = info.model, f"--teacher {info.path}"
    fallback = "; pass --teacher-mode sequence to learn its outputs instead"
    if t.arch not in TOKEN_ARCHS:
        raise TransducerError(f"{where}: a {t.arch} model has no per-step distributions to fit{fallback}")
    if cfg.arch != t.arch:
        raise TransducerError(f"{where}: its --arch is {t.arch}, the student's {cfg.arch}{fallback}")
    if t.normalize != cfg.normalize:
        raise TransducerError(f"{where}: it reads {t.normalize} text, the student --normalize {cfg.normalize}{fallback}")
    if not (t.masked and cfg.masked):
        raise TransducerError(f"{where}: a model written before masks can neither teach nor learn token by token{fallback}")
    conflict = artifacts.mean_conflict(artifacts.read_members(info))
    if conflict:
        raise TransducerError(f"{where}: {conflict}, so it has no one distribution per step{fallback}")
    if not (t.variable_length and cfg.variable_length) and (t.max_len, t.bidirectional) != (cfg.max_len, cfg.bidirectional):
        raise TransducerError(
            f"{where}: an aligned bidirectional teacher and its student must agree on --max-len ({t.max_len})"
            f" and --bidirectional ({t.bidirectional})"
        )
    if train_cfg.distribute != "none":
        raise TransducerError("--teacher (token level) trains on one device; drop --distribute")
    if train_cfg.init_from:
        source = artifacts.read_info(train_cfg.init_from)
        if (source.input_vocab.symbols, source.output_vocab.symbols) != (info.input_vocab.symbols, info.output_vocab.symbols):
            raise TransducerError(f"--init-from {train_cfg.init_from}: its vocabularies differ from --teacher {info.path}'s")


# --- the student's data and the run ------------------------------------------------------


@contextlib.contextmanager
def distilled_data(
    pairs_path: str, teacher: str | Path, extra_inputs: str | None, model_cfg: ModelConfig, train_cfg: TrainConfig,
    val_path: str | None, mode: str = "token",
) -> Iterator[Distilled]:
    """The student's training file and the reference validation file, in a temporary
    directory that lives as long as the context. Training pairs keep their references
    (token) or get the teacher's outputs (sequence); extra inputs get the teacher's outputs."""
    info = teacher_info(teacher)
    if (info.model.arch == "label") != (model_cfg.arch == "label"):
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
            relabel = [src for src, _ in gold] if mode == "sequence" else []
            labels = teacher_outputs(predictor, relabel + extra)
            rows = list(zip(relabel + extra, labels))
            if mode == "token":
                rows = gold + rows  # references stay; only the extra inputs are the teacher's
            rows, dropped = _fitting(rows, model_cfg)
            train_path = _write_pairs(Path(tmp) / "distilled.tsv", rows)
            student_val = _write_pairs(Path(tmp) / "held-out.tsv", held_out) if held_out else val_path
            record = {
                "mode": mode,
                "teacher": {**teacher_record(info), "beam": TEACHER_BEAM},
                "pairs": len(gold),
                "relabelled": _relabelled(gold, labels, model_cfg.normalize) if mode == "sequence" else None,
                "extra_inputs": {"file": display_name(extra_inputs), "n": len(extra), "skipped": extra_skipped}
                if extra_inputs else None,
                "dropped": dropped,
                "validation": "val_file" if val_path else ("held out of the pairs" if held_out else "none"),
            }
            yield Distilled(train_path, student_val, record)
    finally:
        if spooled != pairs_path:
            Path(spooled).unlink(missing_ok=True)


def _relabelled(gold: list[tuple[str, str]], labels: list[str], form: str) -> int:
    """How many training pairs the teacher's output changes (sequence level)."""
    return sum(normalization.normalize(form, out) != normalization.normalize(form, tgt)
               for (_, tgt), out in zip(gold, labels))


def _fitting(rows: list[tuple[str, str]], cfg: ModelConfig) -> tuple[list[tuple[str, str]], int]:
    """The rows the student can learn, and how many were dropped: a teacher's output
    longer than the student's max_len (the teacher's may be longer) is left out."""
    kept = [(src, out) for src, out in rows
            if cfg.arch == "label" or len(normalization.normalize(cfg.normalize, out)) <= cfg.max_len]
    if not kept:
        raise TransducerError("--teacher: none of the teacher's outputs fit the student (--max-len, --arch)")
    return kept, len(rows) - len(kept)


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


def token_teacher(teacher: str | Path, weight: float, model_cfg: ModelConfig, train_cfg: TrainConfig,
                  temperature: float = 1.0) -> TokenTeacher:
    """The checked token-level teacher of this run."""
    info = teacher_info(teacher)
    check_token_teacher(info, model_cfg, train_cfg)
    identity = {**teacher_record(info), "weight": weight}
    if temperature != 1.0:  # absent at 1, so checkpoints written before the option resume
        identity["temperature"] = temperature
    return TokenTeacher(info, weight, model_cfg.masked, train_cfg.label_smoothing, identity, temperature)


def train_student(
    pairs_path: str, model_dir: str | Path, model_cfg: ModelConfig, train_cfg: TrainConfig, teacher: str | Path | None,
    extra_inputs: str | None = None, val_path: str | None = None, force: bool = False, reporter=None,
    resume: bool = False, on_member=None, mode: str = "token", weight: float | None = None,
    temperature: float | None = None,
):
    """Train (one model, or an ensemble with train_cfg.ensemble > 1) as the teacher's
    student and publish it with its "distill" record; returns train's or
    train_ensemble's result. mode: "token" or "sequence" (--teacher-mode); weight: α (token only;
    None: DEFAULT_WEIGHTS for the student's arch, else DEFAULT_WEIGHT); temperature: T (token
    only; None: 1). --resume works as for any run: the teacher labels the same inputs the
    same way, so the data matches the checkpoint's."""
    if teacher is None:
        raise TransducerError("--extra-inputs needs --teacher (the model that labels them)")
    mode = check_teaching(mode, weight, temperature)  # as preflight checked it, for callers that skip preflight
    weight = DEFAULT_WEIGHTS.get(model_cfg.arch, DEFAULT_WEIGHT) if weight is None else weight
    temperature = 1.0 if temperature is None else float(temperature)
    teaching = token_teacher(teacher, weight, model_cfg, train_cfg, temperature) if mode == "token" else None
    artifacts.check_writable(Path(model_dir), force or resume)  # before the teacher's work
    with distilled_data(pairs_path, teacher, extra_inputs, model_cfg, train_cfg, val_path, mode) as data:
        result = train_members(data.train_path, model_dir, model_cfg, train_cfg, on_member=on_member,
                               val_path=data.val_path, force=force, reporter=reporter, resume=resume,
                               teaching=teaching)
    if not (result.interrupted and train_cfg.ensemble > 1):  # an interrupted ensemble publishes nothing
        token = mode == "token"
        record = {**data.record, "weight": weight if token else None, "temperature": temperature if token else None}
        record_in_model(model_dir, record, pairs_path, val_path)
    return result
