"""Checks of a training run that need no TensorFlow, made before it is imported.

Importing TensorFlow takes seconds; a mistake found after it (a missing file, an existing
model directory, a data error on line 3) or after a whole epoch (a model directory that
cannot be written) costs a user that time for a one-line answer. `check_run` answers
those in a fraction of a second, with the messages training itself would give:

- options that contradict each other or do not apply to this run (--lr-patience without
  the plateau schedule, --attention on a model without attention, ...);
- the model directories the run reads: --init-from (and that its architecture is this
  run's), --teacher (and that it can teach this architecture);
- the model directory it writes: not a file, not replaced without --force, an interrupted
  run in DIR.partial neither lost (no --resume or --force) nor missing (--resume), the
  checkpoint's options those of this run, its parent a directory one can create
  directories in (tried, not guessed from permission bits: root passes those everywhere);
- the files it reads: PAIRS, --val-file and --extra-inputs exist and are files, and the
  pairs files' rows are valid, as the training scan (training/stream.py) checks them.

Reading the pairs twice would cost what it saves on a large file, so only the first
DATA_BYTES of each pairs file are checked here; the scan checks every row (the split it
makes hashes rows with TensorFlow, so it cannot happen here). A problem in those bytes
is reported as the scan reports it: the whole file is then read, for the same counts.
stdin and pipes are read once, by training: their rows are checked there.

Plain Python on `core`: importing this module imports no TensorFlow (and training/
__init__.py imports nothing), which tests/test_preflight.py checks.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path

from transducer.core import artifacts, normalization
from transducer.core.config import ARCHITECTURE, ModelConfig, TeacherMode, TrainConfig, TransducerError
from transducer.core.data import (
    MAX_REPORTED, TOO_LONG, InvalidRow, _row_problem, check_usable, display_name, fix_for_long_rows, iter_raw_lines,
    open_binary, row_length,
)

DATA_BYTES = 1 << 20  # of each pairs file, checked before TensorFlow (a whole file below this)
CHECKPOINT_LATEST = ("checkpoint", "latest.json")  # DIR.partial/checkpoint/latest.json (training.checkpoint)
MEMBERS_STAGING = "members"  # DIR.partial/members/: an ensemble's members (training.ensemble)


@dataclass(frozen=True)
class Request:
    """What `train` was asked for, beside the resolved configs."""

    pairs: str  # the pairs file; "-": stdin
    model_dir: Path  # where the model goes
    val_file: str | None = None  # --val-file
    teacher: str | None = None  # --teacher: the model directory that labels the inputs
    extra_inputs: str | None = None  # --extra-inputs: unlabeled strings for the teacher
    teacher_mode: str = "token"  # --teacher-mode: token or sequence
    teacher_weight: float | None = None  # --teacher-weight: α, token level (None: the arch's default)
    teacher_temperature: float | None = None  # --teacher-temperature: T, token level (None: 1)
    force: bool = False  # --force: replace DIR (and an interrupted run in DIR.partial)
    resume: bool = False  # --resume: continue the interrupted run in DIR.partial
    given: frozenset = field(default_factory=frozenset)  # options set explicitly, by field name


def check_run(request: Request, model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
    """Every check above, cheapest first; raises the first problem as TransducerError."""
    check_options(request, model_cfg, train_cfg)
    check_sources(request, model_cfg, train_cfg)
    if train_cfg.distribute != "multi-worker":  # there only the chief writes DIR; it checks
        check_model_dir(request, model_cfg, train_cfg)
    check_files(request, model_cfg, train_cfg)


# --- options -----------------------------------------------------------------------------


def check_options(request: Request, model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
    """Options that contradict each other, or that were given for a run they do not apply to."""
    given, arch = request.given, model_cfg.arch
    if request.extra_inputs is not None and request.teacher is None:
        raise TransducerError("--extra-inputs needs --teacher (the model that labels them)")
    for name in ("teacher_mode", "teacher_weight", "teacher_temperature"):
        if name in given and request.teacher is None:
            raise TransducerError(f"--{name.replace('_', '-')} needs --teacher (the model to learn from)")
    if request.teacher is not None:
        check_teaching(request.teacher_mode, request.teacher_weight, request.teacher_temperature)
    if "attention" in given and arch != "seq2seq":
        raise TransducerError(f"--attention applies to --arch seq2seq only; this run's --arch is {arch}")
    if "label_smoothing" in given and arch == "label":
        raise TransducerError("--label-smoothing does not apply to --arch label (its loss is plain cross-entropy)")
    if train_cfg.rollin and arch != "edit":
        raise TransducerError(f"--rollin applies to --arch edit only; this run's --arch is {arch}")
    if train_cfg.rollin and train_cfg.distribute != "none":
        raise TransducerError("--rollin cannot be combined with --distribute: the walk runs on this process's CPU")
    if "lr_patience" in given and train_cfg.lr_schedule != "plateau":
        raise TransducerError(
            f"--lr-patience applies to --lr-schedule plateau only; this run's schedule is {train_cfg.lr_schedule}"
        )
    if "val_split" in given and request.val_file is not None:
        raise TransducerError("--val-split does not apply with --val-file: the file is the validation data")
    if train_cfg.ensemble > 1 and train_cfg.distribute == "multi-worker":
        raise TransducerError("--ensemble cannot be combined with --distribute multi-worker; use one machine")
    stdin = [name for name, path in (("PAIRS", request.pairs), ("--val-file", request.val_file),
                                     ("--extra-inputs", request.extra_inputs)) if path == "-"]
    if len(stdin) > 1:
        raise TransducerError(f"{' and '.join(stdin)} cannot both read stdin (-); give one of them a file")


def check_teaching(mode: str, weight: float | None, temperature: float | None) -> str:
    """--teacher-mode as a plain string, after one-line errors for --teacher-weight or
    --teacher-temperature out of range or given with --teacher-mode sequence."""
    mode = TeacherMode.check(mode, "--teacher-mode")
    for name, value in (("--teacher-weight", weight), ("--teacher-temperature", temperature)):
        if value is not None and mode != "token":
            raise TransducerError(f"{name} applies to --teacher-mode token only")
    if weight is not None and not 0.0 <= weight <= 1.0:
        raise TransducerError(f"--teacher-weight must be in [0, 1], got {weight}")
    if temperature is not None and not (math.isfinite(temperature) and temperature > 0):
        raise TransducerError(f"--teacher-temperature must be a number above 0, got {temperature}")
    return mode


# --- the model directories the run reads ---------------------------------------------------


def check_sources(request: Request, model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
    """--init-from and --teacher: model directories, fit for this run."""
    if train_cfg.init_from is not None:
        source = artifacts.read_info(train_cfg.init_from)
        artifacts.read_members(source)  # members that disagree fail here, not in member k's run
        diffs = [f"{key} {getattr(source.model, key)!r} there, {getattr(model_cfg, key)!r} here"
                 for key in ARCHITECTURE if getattr(source.model, key) != getattr(model_cfg, key)]
        if diffs:
            raise TransducerError(
                f"--init-from {train_cfg.init_from}: its architecture differs from this run's ({'; '.join(diffs)})"
            )
    if request.teacher is not None:
        try:
            teacher = artifacts.read_info(request.teacher)
            artifacts.read_members(teacher)
        except TransducerError as e:
            raise TransducerError(f"--teacher {e}") from None
        if (teacher.model.arch == "label") != (model_cfg.arch == "label"):
            raise TransducerError(
                f"--teacher {request.teacher} is an --arch {teacher.model.arch} model, which cannot teach an"
                f" --arch {model_cfg.arch} model (label models teach label models only)"
            )


# --- the model directory the run writes ----------------------------------------------------


def check_model_dir(request: Request, model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
    """DIR can be written, and an interrupted run in DIR.partial is neither lost nor missing."""
    model_dir, force, resume = request.model_dir, request.force, request.resume
    staging = artifacts.staging_dir(model_dir)
    for path in (model_dir, staging):
        if path.exists() and not path.is_dir():
            raise TransducerError(f"{path}: exists and is not a directory")
    interrupted = has_progress(staging)
    if interrupted and not (resume or force):
        raise TransducerError(f"{staging} holds an interrupted run; pass --resume to continue it, or --force to start over")
    if resume:
        check_resumable(staging, model_cfg, train_cfg)
    artifacts.check_writable(model_dir, force or resume)
    check_creatable(model_dir)


def has_progress(staging: Path) -> bool:
    """Whether DIR.partial holds work a new run must not silently discard: a checkpoint, a
    finished ensemble member, or a member's checkpoint (training.ensemble._has_progress)."""
    root = staging / MEMBERS_STAGING
    if has_checkpoint(staging):
        return True
    return root.is_dir() and any((p / artifacts.CONFIG).is_file() or has_checkpoint(p) for p in root.iterdir())


def has_checkpoint(staging: Path) -> bool:
    """training.checkpoint.exists, which imports TensorFlow."""
    return staging.joinpath(*CHECKPOINT_LATEST).is_file()


def check_resumable(staging: Path, model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
    """--resume: an interrupted run of this kind is there, with this run's options."""
    if train_cfg.ensemble > 1:
        if not ((staging / MEMBERS_STAGING).is_dir() and has_progress(staging)):
            raise TransducerError(f"cannot --resume: no interrupted ensemble run in {staging}; train without --resume")
        return  # each member's options are checked as it is reached (training.ensemble._finished)
    latest = staging.joinpath(*CHECKPOINT_LATEST)
    if not latest.is_file():
        raise TransducerError(
            f"cannot --resume: no checkpoint in {latest.parent} (the run finished, or stopped before its"
            " first epoch); train without --resume"
        )
    try:
        where = latest.parent / json.loads(latest.read_text(encoding="utf-8"))["dir"]
        saved = json.loads((where / "state.json").read_text(encoding="utf-8")).get("identity", {})
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise TransducerError(f"{latest.parent}: unreadable checkpoint ({e}); delete it to start over") from None
    # Compared later, once known: the vocabulary sizes (after the data scan) and the
    # teacher's record (once its directory is read; loop._checkpoint_to_resume).
    later = {"input_vocab_size", "output_vocab_size", "teacher"}
    now = {"model": model_cfg.to_dict(), "train": {k: v for k, v in train_cfg.to_dict().items() if k != "epochs"}}
    diffs = run_differences(saved, now, ignore=later)
    if diffs:
        raise TransducerError("cannot --resume: the checkpoint is from a different run (" + "; ".join(diffs) + ")")


# A training option a checkpoint does not record did not exist when it was written: that
# run trained as the option's default does (e.g. --bootstrap off), so it may be resumed.
TRAIN_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}


def run_differences(saved: dict, now: dict, ignore=frozenset()) -> list[str]:
    """What differs between a checkpoint's run identity and this run's, section by section
    (model, train): ["hidden was 8, now 4", ...], keys in `ignore` left out."""
    diffs = []
    for section in ("model", "train"):
        before, current = saved.get(section, {}), now.get(section, {})
        if section == "train" and before:
            before = {**{k: TRAIN_DEFAULTS[k] for k in current if k in TRAIN_DEFAULTS}, **before}
        for key in sorted((set(before) | set(current)) - set(ignore)):
            if before.get(key) != current.get(key):
                diffs.append(f"{key} was {before.get(key)!r}, now {current.get(key)!r}")
    return diffs


def check_creatable(model_dir: Path) -> None:
    """Create (and remove) a directory beside DIR, as training will (DIR.partial): the one
    test that holds on read-only mounts, /proc and for root alike."""
    parent = model_dir.resolve().parent
    try:
        os.rmdir(tempfile.mkdtemp(prefix=f".{model_dir.name}.check-", dir=parent))
    except OSError as e:
        raise TransducerError(f"{model_dir}: cannot create the model directory in {parent} ({e.strerror})") from None


# --- the files the run reads ---------------------------------------------------------------


def check_files(request: Request, model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
    """PAIRS and --val-file: readable files whose first DATA_BYTES hold valid rows;
    --extra-inputs: a readable, non-empty file."""
    check_pairs(request.pairs, model_cfg, train_cfg.skip_invalid)
    try:
        if request.val_file is not None:
            option = "--val-file"
            check_pairs(request.val_file, model_cfg, train_cfg.skip_invalid)
        if request.extra_inputs is not None and request.extra_inputs != "-":
            option = "--extra-inputs"
            open_binary(request.extra_inputs).close()
            if os.stat(request.extra_inputs).st_size == 0:
                raise TransducerError(f"{request.extra_inputs}: no inputs; expected one string per line")
    except TransducerError as e:
        raise TransducerError(f"{option} {e}", e.exit_code) from None


@dataclass
class RowCount:
    """What the scan counts of a pairs file's rows, for its messages (stream.ScannedPairs)."""

    n_rows: int = 0  # valid pairs
    n_invalid: int = 0  # invalid rows
    invalid: list[InvalidRow] = field(default_factory=list)  # the first MAX_REPORTED of them
    longest_invalid: int = 0  # characters of the longest row over max_len (0: none was)

    def add_invalid(self, line_no: int, text: str | None, problem: tuple[str, str], labels: bool) -> None:
        self.n_invalid += 1
        if len(self.invalid) < MAX_REPORTED:
            self.invalid.append(InvalidRow(line_no, *problem))
        if problem[1] in TOO_LONG:
            self.longest_invalid = max(self.longest_invalid, row_length(text, labels))

    def describe_invalid(self) -> str:
        shown = "; ".join(f"line {r.line_no}: {r.reason}" for r in self.invalid)
        more = self.n_invalid - len(self.invalid)
        return shown + (f"; and {more} more" if more > 0 else "")


def check_pairs(path: str, cfg: ModelConfig, skip_invalid: bool, budget: int = DATA_BYTES) -> None:
    """The rows of the pairs file `path` as the scan validates them (in cfg.normalize's
    form, against cfg.max_len; a label model's outputs are labels), up to `budget` bytes
    when they are all valid; the scan's error when they are not. stdin and pipes: not read."""
    if path == "-":
        return
    stream = open_binary(path)  # no such file, a directory, unreadable: the scan's messages
    with stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return  # a pipe (<(...)) or a device: it can be read once, by training
        count, labels = RowCount(), cfg.arch == "label"
        for line_no, raw in iter_raw_lines(stream):
            if stream.tell() > budget and count.n_rows and (skip_invalid or not count.n_invalid):
                return  # usable so far: the scan checks (and reports skipped rows in) the rest
            try:
                text = normalization.normalize(cfg.normalize, raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                count.add_invalid(line_no, None, (f"not valid UTF-8 (byte {e.start + 1} of the line)", "not valid UTF-8"), labels)
                continue
            if text.strip() == "" and "\t" not in text:
                continue  # blank lines are not pairs
            problem = _row_problem(text, cfg.max_len, labels=labels)
            if problem:
                count.add_invalid(line_no, text, problem, labels)
            else:
                count.n_rows += 1
    fix = fix_for_long_rows(count.longest_invalid)
    check_usable(display_name(path), count.n_rows, count.n_invalid, count.describe_invalid(), skip_invalid, fix)
