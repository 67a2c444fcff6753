"""The Python API, which the command line stands on.

    >>> import transducer
    >>> model = transducer.load(model_dir)      # e.g. "models/translit", written by `train`
    >>> model.predict(["privet", "mir"])        # doctest: +SKIP
    ['привет', 'мир']
    >>> outputs = model.predict(["abc", "XYZ", ""])
    >>> len(outputs)                            # one output per input, in order, always
    3
    >>> [model.predict_one(s) for s in ["abc", "XYZ", ""]] == outputs
    True

(The examples in this module run as tests, on a small model in `model_dir`.)

`load` reads a model directory (any architecture, one model or an ensemble) with the
numpy engine: no TensorFlow. `train` trains one with exactly `transducer train`'s options
and defaults (the per-architecture recipe included); it imports TensorFlow. `export`
rewrites a directory's numpy weights, `summary` reads how a model was trained and
`network_summary` lists the layers of a network before training one.

Every error a user can fix is a `TransducerError` with the CLI's one-line message, naming
this API's arguments (`max_len=19`, `force=True`) where the CLI names its options
(`--max-len 19`, `--force`); an unknown option name is one too, with the closest valid
name. The command line (transducer/cli.py) reaches the library only through this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import inspect
import re
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

# Re-exported for the command line, which imports nothing below this module but these.
from transducer.core.blas import start_with_one_blas_thread  # noqa: F401
from transducer.core.config import (  # noqa: F401
    ARCHITECTURE, Arch, Attention, Combine, TeacherMode, Distribute, EncodingErrors, Engine, Format, Head, LogFormat, LrSchedule,
    ModelConfig, Normalize, OnLong, PredictOptions, TrainConfig, TransducerError, Unk, check_choices, help_of, option,
)

from transducer.training.recipe import EDIT_TRAIN  # plain Python: the edit recipe's batch size, for help

if TYPE_CHECKING:
    from transducer.core.artifacts import ModelInfo
    from transducer.core.history import TrainingSummary


@dataclass(frozen=True)
class Candidate:
    """One of a line's n-best outputs."""

    output: str  # the output string
    score: float  # the ranking score (seq2seq: log-probability per symbol; label: probability)
    probability: float  # the model's probability of `output`


@dataclass(frozen=True)
class Prediction:
    """A line's answer with its confidence (and its candidates when nbest > 1)."""

    input: str  # the input string as given
    output: str  # the predicted string ("" for an empty input)
    confidence: float | None  # probability of `output`; None when the model did not produce it
    candidates: tuple[Candidate, ...] = ()  # best first, with nbest > 1


# --- errors for Python callers -------------------------------------------------------------

# A flag as messages spell it, with the word after it (a value, maybe): `--max-len 19`.
FLAG = re.compile(r"(?<![\w-])--(no-)?([a-z][a-z0-9]*(?:-[a-z0-9]+)*)( [\w-]+(?:\.\d+)?)?")
NUMBER = re.compile(r"-?\d+(\.\d+)?(e-?\d+)?")
OTHER_ARGUMENTS = {"model_dir": "str", "errors": "int", "top": "int"}  # beside the options dataclasses


@functools.cache
def _argument_kinds() -> dict[str, tuple[str, type | None]]:
    """This API's argument name -> (its type: int, float, bool or str; its Choice or None)."""
    kinds = {name: (kind, None) for name, kind in OTHER_ARGUMENTS.items()}
    for cls in (TrainOptions, PredictOptions):
        for f in dataclasses.fields(cls):
            kinds[f.name] = (str(f.type).split(" |")[0], f.metadata.get("choices"))
    return kinds


def python_words(message: str) -> str:
    """`message` naming this API's arguments where it names the command line's options:
    `--force` -> `force=True`, `--no-reset-after` -> `reset_after=False`, `--max-len 19`
    -> `max_len=19`, `--arch label` -> `arch='label'`, `--beam (2)` -> `beam (2)`. Flags
    that are no argument here (--help) stay as written."""
    kinds = _argument_kinds()

    def word(m: re.Match) -> str:
        negated, name, after = m[1], m[2].replace("-", "_"), m[3] or ""
        if name not in kinds or (negated and kinds[name][0] != "bool"):
            return m[0]
        kind, choices = kinds[name]
        if kind == "bool":
            return f"{name}={not negated}{after}"
        value = after.strip()
        if kind in ("int", "float") and NUMBER.fullmatch(value):
            return f"{name}={value}"
        if choices is not None and value in choices.values():
            return f"{name}={value!r}"
        return name + after

    return FLAG.sub(word, message)


def _to_python(e: TransducerError) -> None:
    """Reword `e` for a Python caller (once), keeping the command line's words in cli_message."""
    if e.cli_message is None:
        said = str(e)
        e.cli_message, e.args = said, (python_words(said), *e.args[1:])


def speaks_python(fn):
    """The decorated API function's TransducerErrors name Python arguments (python_words)."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except TransducerError as e:
                _to_python(e)
                raise
        return generator

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TransducerError as e:
            _to_python(e)
            raise
    return call


def check_names(given: Iterable[str], valid: Iterable[str], caller: str) -> None:
    """Every option name in `given` is one of `valid`; else a TransducerError naming each
    unknown one with its closest valid name (or, with none close, the valid names)."""
    valid = sorted(valid)
    unknown = sorted(set(given) - set(valid))
    if not unknown:
        return
    said, lost = [], False
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=1)
        said.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
        lost = lost or not close
    more = f"; it takes {', '.join(valid)}" if lost else ""
    what = "an unknown option" if len(unknown) == 1 else "unknown options"
    raise TransducerError(f"{caller}() got {what} {', '.join(said)}{more}")


PREDICT_NAMES = frozenset(f.name for f in dataclasses.fields(PredictOptions))


@speaks_python
def predict_options(caller: str, **options) -> PredictOptions:
    """PredictOptions from keyword options, unknown names refused (check_names)."""
    check_names(options, PREDICT_NAMES, caller)
    return PredictOptions(**options)


# --- prediction ----------------------------------------------------------------------------


class Model:
    """A trained model directory, ready to predict. Create it with `transducer.load`.

    Safe to call from several threads (calls are serialised); pickles as its directory
    and options, and is reloaded on unpickling (multiprocessing, Spark and Ray workers).
    """

    def __init__(self, model_dir: str | Path, options: PredictOptions):
        self.path = Path(model_dir)
        self.options = options
        self._lock = threading.Lock()
        from transducer.inference.predict import Predictor

        self._predictor = Predictor(self.path, options)
        self.info: ModelInfo = self._predictor.info

    @property
    def config(self) -> ModelConfig:
        """The network's hyperparameters (config.json's `model`)."""
        return self.info.model

    @property
    def members(self) -> int:
        """1 for one model, N for an ensemble of N."""
        from transducer.core.artifacts import member_count

        return member_count(self.info)

    def __repr__(self) -> str:
        kind = f"ensemble of {self.members} " if self.members > 1 else ""
        return f"<transducer.Model {kind}{self.config.arch} {str(self.path)!r}>"

    def __getstate__(self) -> dict:
        return {"path": str(self.path), "options": dataclasses.asdict(self.options)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], PredictOptions(**state["options"]))

    def _with(self, overrides: dict, caller: str) -> "Model":
        """This model, or a twin with other prediction options (weights shared)."""
        if not overrides:
            return self
        check_names(overrides, PREDICT_NAMES, caller)
        twin = object.__new__(Model)
        twin.path, twin.info, twin._lock = self.path, self.info, threading.Lock()
        twin._predictor = self._predictor.with_options(**overrides)
        twin.options = twin._predictor.options
        return twin

    @speaks_python
    def predictions(self, strings: Iterable[str], **options) -> list[Prediction]:
        """One Prediction per string, in order: output, confidence and (nbest > 1) the
        candidates. `options`: any of load's, for this call only."""
        return self._predictions(strings, options, "predictions")

    def _predictions(self, strings: Iterable[str], options: dict, caller: str) -> list[Prediction]:
        from transducer.inference.predict import predict_texts

        model = self._with(options, caller)
        out: list[Prediction] = []
        with model._lock:
            for batch in predict_texts(model._predictor, strings):
                for p in batch:
                    cands = tuple(Candidate(c, s, pr) for c, s, pr in p.nbest or ())
                    out.append(Prediction(p.input, p.output, p.confidence, cands))
        return out

    @speaks_python
    def predict(self, strings: Iterable[str], **options) -> list[str]:
        """The output for each string, in order: what `transducer predict` writes for
        the same lines with the same options (nbest > 1: the candidates, best first,
        tab-separated, as its text format writes them).

        >>> len(model.predict(["abc", "XYZ"], beam=3))      # options for this call only
        2
        >>> model.predict(["abc"], nbest=2)[0].count("\\t")  # two candidates
        1
        >>> model.predict(["a" * 99])
        Traceback (most recent call last):
        ...
        transducer.core.config.TransducerError: strings:1: input is 99 characters, longer than the model's max_len ...
        >>> len(model.predict(["a" * 99], on_long="copy")[0])
        99
        """
        if isinstance(strings, str):
            raise TransducerError("predict takes a list of strings; for one string use predict_one")
        preds = self._predictions(strings, options, "predict")
        return ["\t".join(c.output for c in p.candidates) if p.candidates else p.output for p in preds]

    @speaks_python
    def predict_file(self, path: str = "-", stats=None) -> Iterator[list]:
        """Batches of predictions (inference.predict.Prediction) for the lines of a file
        ("-": stdin), in order, each batch as soon as it is done: what `transducer
        predict` writes. `stats`: a `predict_stats()` to count unseen characters and
        long lines in."""
        from transducer.core.data import display_name, open_binary
        from transducer.inference.predict import predict_stream

        stream = open_binary(path)
        try:
            with self._lock:
                yield from predict_stream(self._predictor, stream, display_name(path), stats)
        finally:
            if path != "-":
                stream.close()

    @property
    def copies_unseen(self) -> bool:
        """Whether characters never seen in training are copied through (aligned models
        with unk="copy") rather than read as `<unk>`."""
        return self._predictor.copy_unk

    def predict_one(self, text: str, **options) -> str:
        """The output for one string: `predict([text], **options)[0]`."""
        return self.predict([text], **options)[0]

    @speaks_python
    def predict_nbest(self, strings: Iterable[str], k: int = 5, **options) -> list[list[Candidate]]:
        """The k best candidates for each string, best first, with scores (beam defaults
        to k)."""
        options = {"beam": max(k, self.options.beam), **options, "nbest": k}
        preds = self._predictions(strings, options, "predict_nbest")
        return [list(p.candidates) or [Candidate(p.output, p.confidence or 0.0, p.confidence or 0.0)] for p in preds]

    @speaks_python
    def evaluate(self, pairs: str | Path | Iterable[tuple[str, str]], *, errors: int = 0, skip_invalid: bool = False,
                 **options):
        """Score on held-out pairs (a file of `input<TAB>reference` lines, or an iterable of
        (input, reference)): the report `transducer evaluate` prints (EvalReport, or a
        LabelReport for a label model). `errors`: how many of the worst mistakes to keep."""
        from transducer.inference.evaluate import evaluate

        check_names(options, PREDICT_NAMES, "evaluate")
        opts = dataclasses.replace(self.options, **options)
        with pairs_file(pairs) as path, self._lock:
            report = evaluate(self.path, path, opts, skip_invalid=skip_invalid, engine=self._predictor.engine)
        report.mistakes = report.mistakes[:errors] if errors else report.mistakes
        return report

    @speaks_python
    def explain(self, text: str, top: int = 3):
        """Why the model answers `text`: each step's most probable symbols and, for
        seq2seq, the attention rows; for a label model, the `top` most probable labels
        (an `Explanation`; `.to_dict()` for JSON)."""
        from transducer.inference.explain import explain

        with self._lock:
            return explain(self.path, text, engine=self._predictor.engine, top=top)


@speaks_python
def load(model_dir: str | Path, **options) -> Model:
    """Load a model directory written by `transducer train` (or `transducer.train`).

    options: predict's, in snake_case, with its defaults (PredictOptions): engine="numpy",
    beam=1, nbest=1, unk="copy", on_long="error", encoding_errors="strict",
    batch_size=8192, cache=20000, combine="auto" (an ensemble's rule: "mean" | "vote" |
    "rescore", inference/combine.py; "auto" is mean where the members share an
    architecture and a vocabulary, rescore where they do not). Errors (a missing or damaged directory, a bad or
    unknown option) raise TransducerError.
    """
    return Model(model_dir, predict_options("load", **options))


def predict_stats():
    """A fresh count of unseen characters and long lines for `Model.predict_file`."""
    from transducer.inference.predict import PredictStats

    return PredictStats()


def assemble(model_dirs: Iterable[str | Path], out: str | Path, *, force: bool = False) -> Path:
    """Copy existing model directories into one ensemble directory `out` and return its
    path: `transducer assemble DIR... -m OUT`. Members may be of different architectures
    (e.g. seq2seq and edit; combine="auto", the default, rescores them); an ensemble among
    `model_dirs` brings all of its members. Inputs that cannot be combined (another
    normalization form or max_len, labels mixed with strings) raise TransducerError
    before anything is written. No TensorFlow.

    >>> import tempfile, transducer
    >>> ens = transducer.assemble([model_dir, model_dir], tempfile.mkdtemp() + "/twice")
    >>> transducer.load(ens, combine="vote").predict(["abc", "XYZ"]) == model.predict(["abc", "XYZ"])
    True
    """
    from transducer.core import artifacts

    return artifacts.assemble(list(model_dirs), out, force=force)


@contextlib.contextmanager
def pairs_file(pairs) -> Iterator[str]:
    """A path to read pairs from: `pairs` itself when it is a path (or "-"), else the
    (input, output) rows written to a temporary TSV file (line N = row N)."""
    if isinstance(pairs, (str, Path)):
        yield str(pairs)
        return
    with tempfile.TemporaryDirectory(prefix="transducer-") as tmp:
        path = Path(tmp) / "pairs.tsv"
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for n, row in enumerate(pairs, 1):
                try:
                    src, tgt = row
                except (TypeError, ValueError):
                    raise TransducerError(f"pairs row {n}: expected (input, output), got {row!r}") from None
                for side in (src, tgt):
                    if not isinstance(side, str) or any(c in side for c in "\t\n\r"):
                        raise TransducerError(f"pairs row {n}: {side!r} is not a one-line string without tabs")
                f.write(f"{src}\t{tgt}\n")
        yield str(path)


# --- training ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainOptions:
    """`transducer train`'s options: each field's default, type and help (its metadata) is
    the one declaration the command line's options are built from; the defaults shared
    with the configs are theirs. None: chosen by the recipe for the architecture
    (training/recipe.py), or taken from init_from's model."""

    arch: str = option(ModelConfig.arch, "Architecture: aligned (an output symbol per input position), seq2seq"
                       " (encoder-decoder with attention) or label (the second column is one label per string).", Arch)
    head: str = option(ModelConfig.head, "Per-timestep output layer: dense or time-distributed (label models:"
                       " dense only).", Head)
    hidden: int = option(ModelConfig.hidden, "Units in each GRU layer.")
    layers: int = option(ModelConfig.layers, "Stacked GRU layers.")
    bidirectional: bool = option(ModelConfig.bidirectional, "Read the input both ways (each position sees all of"
                                 " it). --arch edit: on unless --no-bidirectional.")
    dropout: float | None = option(None, "Dropout after each GRU layer (seq2seq: and on attention weights)."
                                   " Default: aligned 0, seq2seq and edit 0.1.")
    reset_after: bool = option(ModelConfig.reset_after, "GRU reset gate after the matmul (Keras 3's default); off:"
                               " Keras 2's GRU and parameter counts.")
    attention: str = option(ModelConfig.attention, "seq2seq attention: luong (dot product), bahdanau (additive)"
                            " or none.", Attention)
    max_len: int = option(ModelConfig.max_len, "Longest input/output string in characters (after Unicode normalization).")
    normalize: str | None = option(None, "Unicode normalization of training pairs and, later, of inputs: none, nfc,"
                                   " nfd, nfkc or nfkd. Default: aligned none, seq2seq and"
                                   " edit nfd.", Normalize)
    epochs: int = option(TrainConfig.epochs, "Maximum epochs (early stopping usually ends sooner).")
    batch_size: int | None = option(None, "Sequences per training step (per replica with --distribute)."
                                    f" Default: edit {EDIT_TRAIN['batch_size']}, others {TrainConfig.batch_size}.")
    learning_rate: float = option(TrainConfig.learning_rate, "Adam learning rate.")
    val_split: float = option(TrainConfig.val_split, "Fraction of pairs held out for validation.")
    val_file: str | None = option(None, "Validation pairs file (instead of --val-split).")
    patience: int | None = option(None, "Epochs without improvement before stopping. Default: aligned 2, seq2seq and"
                                  " edit 4.")
    min_delta: float | None = option(None, "Smallest validation-loss drop that counts as improvement: aligned, absolute"
                                     " (default 1e-3); seq2seq and edit, a fraction of the best loss (default 1e-3 ="
                                     " 0.1%).")
    lr_schedule: str | None = option(None, "Learning-rate schedule: constant; plateau (halve after --lr-patience"
                                     " epochs without improvement); cosine (fall towards 0 over --epochs, for a fixed"
                                     " time budget). Default: aligned constant, seq2seq and edit plateau.", LrSchedule)
    lr_patience: int | None = option(None, "plateau: epochs without improvement before halving (default 2).")
    label_smoothing: float | None = option(None, "Spread this share of each target's probability over all symbols"
                                           " (default: aligned 0, seq2seq and edit 0.1); confidences then stay below"
                                           " 1 - this share.")
    rollin: float = option(TrainConfig.rollin, "--arch edit: K of roll-in, training also at the states the model's"
                           " own actions reach; the share of steps that follow the expert falls as"
                           " K / (K + exp(epoch / K)) (published: 12). 0: the expert's path only.")
    init_from: str | None = option(None, "Start from this trained model's weights and vocabularies (architecture"
                                   " options default to its own).")
    seed: int = option(TrainConfig.seed, "Random seed: same seed and data give the same model on CPU.")
    skip_invalid: bool = option(TrainConfig.skip_invalid, "Skip invalid rows (reported) instead of stopping.")
    distribute: str = option(TrainConfig.distribute, "tf.distribute strategy: none, mirrored, or multi-worker (reads"
                             " TF_CONFIG).", Distribute)
    force: bool = option(False, "Replace an existing model directory.")
    resume: bool = option(False, "Continue an interrupted run from its last epoch checkpoint (same command"
                          " otherwise; --epochs may change).")
    ensemble: int | None = option(None, "Train N members (seeds --seed, --seed+1, ...) into one model directory;"
                                  " predict and evaluate average them. Default 1, or with --init-from as many as"
                                  " that model has.")
    bootstrap: bool = option(TrainConfig.bootstrap, "Bagging: each member (or this one model) trains on its own"
                             " bootstrap resample of the training pairs, drawn with its seed (each pair 0, 1, 2..."
                             " times; about 63% of them at least once); validation unchanged. Members then"
                             " disagree more, which a vote or mean can use.")
    subsample: float = option(TrainConfig.subsample, "Each member (or this one model) trains on its own random"
                              " fraction of the training pairs, drawn with its seed, each pair at most once;"
                              " validation unchanged. As --bootstrap, keeping more of the data. 1: all.")
    teacher: str | None = option(None, "Distil this model (e.g. an ensemble) into one: at every step of each"
                                 " training target the student fits the teacher's distribution as well as the"
                                 " reference, and takes its vocabularies (an edit student its actions and aligner too)."
                                 " Token level needs a teacher of the same --arch (seq2seq, aligned or edit; size"
                                 " may differ) and --normalize; any other (label models included) is a one-line"
                                 " error: use --teacher-mode sequence for those."
                                 " Validation stays on references.")
    teacher_mode: str = option("token", "token: fit the teacher's per-step distributions; sequence: train on its"
                               " beam outputs instead of the references (any teacher; measured no better than a"
                               " single model).", TeacherMode)
    teacher_weight: float | None = option(None, "Token level: the loss's share that fits the teacher's distribution,"
                                          " the rest fits the reference (default 0.5; 0.8 for --arch edit).")
    teacher_temperature: float | None = option(None, "Token level: soften the teacher's and the student's"
                                               " distributions by this temperature T in the fitted term"
                                               " (scaled by T squared; Hinton et al. 2015). Default 1: as they are.")
    extra_inputs: str | None = option(None, "With --teacher: a file of unlabeled strings, one a line, that the"
                                      " teacher labels for training too.")

    def __post_init__(self):
        check_choices(self)


TRAIN_NAMES = frozenset(f.name for f in dataclasses.fields(TrainOptions))
ARCHITECTURE_OPTIONS = frozenset(ARCHITECTURE)


def train_configs(options: TrainOptions, given: frozenset[str]) -> tuple[ModelConfig, TrainConfig]:
    """The ModelConfig and TrainConfig `options` stand for, recipe defaults filled in.
    `given`: the options set explicitly (with init_from, architecture options not given
    follow that model's)."""
    from transducer.training.recipe import resolve

    o = options
    architecture = {k: getattr(o, k) for k in ARCHITECTURE}
    training = dict(
        patience=o.patience, min_delta=o.min_delta, lr_schedule=o.lr_schedule, lr_patience=o.lr_patience,
        label_smoothing=o.label_smoothing, epochs=o.epochs, batch_size=o.batch_size, learning_rate=o.learning_rate,
        val_split=o.val_split, seed=o.seed, skip_invalid=o.skip_invalid, distribute=o.distribute, ensemble=o.ensemble,
        rollin=o.rollin, bootstrap=o.bootstrap, subsample=o.subsample,
    )
    return resolve(architecture, o.dropout, training, given & ARCHITECTURE_OPTIONS, o.init_from)


@speaks_python
def run_training(pairs, model_dir: str | Path, options: TrainOptions, given: frozenset[str] = frozenset(),
                 reporter=None, on_member: Callable | None = None):
    """Train and publish; returns the training result (training.loop.TrainResult, or
    training.ensemble.EnsembleResult for an ensemble), interrupted runs included. The
    command line's `train` calls this; `train` below wraps it for library users.

    Options, files and directories are checked first (training.preflight), so a mistake
    is answered before TensorFlow is imported, which takes seconds."""
    mcfg, tcfg = train_configs(options, given)  # the recipe; reads --init-from's config.json
    common = dict(val_path=options.val_file, force=options.force, reporter=reporter, resume=options.resume)
    with pairs_file(pairs) as path, warnings.catch_warnings():
        _preflight(path, model_dir, options, given, mcfg, tcfg)
        from transducer.training.distill import train_student  # TensorFlow from here on
        from transducer.training.ensemble import train_members

        warnings.filterwarnings("ignore", module="keras")  # Keras's own noise never reaches users
        warnings.filterwarnings("ignore", module="tensorflow")
        if options.teacher is not None or options.extra_inputs is not None:
            return train_student(path, model_dir, mcfg, tcfg, options.teacher, options.extra_inputs,
                                 on_member=on_member, mode=options.teacher_mode, weight=options.teacher_weight,
                                 temperature=options.teacher_temperature, **common)
        return train_members(path, model_dir, mcfg, tcfg, on_member=on_member, **common)


def _preflight(path: str, model_dir, options: TrainOptions, given: frozenset, mcfg: ModelConfig, tcfg: TrainConfig) -> None:
    """training.preflight's checks of this run (no TensorFlow)."""
    from transducer.training.preflight import Request, check_run

    o = options
    request = Request(pairs=path, model_dir=Path(model_dir), val_file=o.val_file, teacher=o.teacher,
                      extra_inputs=o.extra_inputs, teacher_mode=o.teacher_mode, teacher_weight=o.teacher_weight,
                      teacher_temperature=o.teacher_temperature, force=o.force, resume=o.resume, given=given)
    check_run(request, mcfg, tcfg)


def train_reported(pairs, model_dir: str | Path, options: TrainOptions, given: frozenset[str], reporter):
    """run_training shown by a ui.progress reporter as the command line shows it: the
    start, each epoch, each ensemble member, and how the run ended."""
    from transducer.ui import progress

    try:
        on_member = lambda *event: progress.member_event(reporter, *event)  # noqa: E731
        result = run_training(pairs, model_dir, options, given, reporter=reporter, on_member=on_member)
    finally:
        reporter.close()
    if hasattr(result, "members"):
        progress.ensemble_end(reporter, result)
    else:
        reporter.end(result)
    return result


def exit_code(result) -> int:
    """The exit status of an interrupted training run, as shells give a signal's: 130
    (SIGINT), 143 (SIGTERM)."""
    from transducer.training.checkpoint import SIGNAL_EXIT

    return SIGNAL_EXIT.get(result.signal, 130)


@speaks_python
def train(pairs, model_dir: str | Path, *, progress=None, **options) -> Model:
    """Train a model on `pairs` (a path, "-" for stdin, or an iterable of (input, output))
    into `model_dir`, exactly as `transducer train` does with the same options, and
    return it loaded.

    options: `transducer train`'s, in snake_case, with its defaults (see TrainOptions):
    `train(pairs, "m", arch="seq2seq", epochs=5)` is `transducer train PAIRS -m m
    --arch seq2seq --epochs 5`. progress: None (silent); True (the command line's plain
    log on stderr: a line per epoch); an object with the Reporter methods
    (training.loop.Reporter); or a callable(event, data) called with ("start", counts),
    ("epoch", {"epoch", **metrics}). Raises TransducerError (exit_code 130/143 when a
    signal stopped training: the best model so far is saved, resumable with resume=True).
    """
    check_names(options, TRAIN_NAMES, "train")
    opts, given = TrainOptions(**options), frozenset(options)
    if progress is True:
        from transducer.ui.progress import make_reporter
        from transducer.ui.render import Output

        result = train_reported(pairs, model_dir, opts, given, make_reporter("plain", Output(stderr=True)))
    else:
        result = run_training(pairs, model_dir, opts, given, reporter=_as_reporter(progress))
    if result.interrupted:
        raise TransducerError(f"{result.signal}: training stopped; run again with --resume to continue",
                              exit_code(result))
    return load(model_dir)


class _CallbackReporter:
    """A Reporter that forwards start and epoch ends to callable(event, data)."""

    def __init__(self, fn):
        self.fn = fn

    def start(self, info):
        self.fn("start", dict(info))

    def epoch_begin(self, epoch, epochs, steps):
        pass

    def batch_end(self, step, logs):
        pass

    def epoch_end(self, epoch, logs):
        self.fn("epoch", {"epoch": epoch, **logs})


def _as_reporter(progress):
    if progress is None or progress is False or hasattr(progress, "epoch_end"):
        return progress or None
    if callable(progress):
        return _CallbackReporter(progress)
    raise TransducerError("progress must be True, a callable(event, data) or a Reporter")


# --- model directories and networks ----------------------------------------------------------


@speaks_python
def export(model_dir: str | Path) -> list[Path]:
    """(Re)write `model_dir`'s weights.npz, the numpy engine's weights, from model.keras
    (every member's, for an ensemble), atomically; their paths, member 1 first: what
    `transducer export` does. Imports TensorFlow."""
    from transducer.networks.export import export_model_dir

    return export_model_dir(model_dir)


@speaks_python
def summary(model_dir: str | Path) -> TrainingSummary:
    """How the model in `model_dir` was trained: its curves, final metrics and
    hyperparameters (`.to_dict()` is `transducer summarize DIR --json`). Reads files only."""
    from transducer.core.history import read_training_summary

    return read_training_summary(model_dir)


@dataclass(frozen=True)
class NetworkSummary:
    """The layers of a network, as `transducer summarize` lists them."""

    title: str  # e.g. "aligned model"
    layers: list[tuple[str, str, str, int]]  # (name, type, output shape, parameters) per layer


def network_config(input_size: int, output_size: int | None = None, **architecture) -> ModelConfig:
    """The ModelConfig of a network over `input_size` input symbols (and `output_size`
    output symbols: default the same) with train's architecture options (arch, hidden,
    layers, ...; their defaults are train's)."""
    check_names(architecture, {*ARCHITECTURE, "dropout"}, "network_summary")
    return ModelConfig(input_vocab_size=input_size, output_vocab_size=output_size or input_size, **architecture)


@speaks_python
def network_summary(input_size: int, output_size: int | None = None, **architecture) -> NetworkSummary:
    """The layers `train` would build with these options, without data: (name, type,
    output shape, parameters) rows. Imports TensorFlow.

    `network_summary(15, hidden=16, head="time-distributed")` is `transducer summarize
    --input-size 15 --hidden 16 --head time-distributed`."""
    cfg = network_config(input_size, output_size, **architecture)  # checked before TensorFlow loads
    from transducer.networks.build import build_model
    from transducer.networks.introspect import layer_rows

    return NetworkSummary(f"{cfg.arch} model", layer_rows(build_model(cfg)))


@speaks_python
def compare_heads(input_size: int, output_size: int | None = None, **architecture) -> dict:
    """An aligned network built with each head (dense, time-distributed) on the same
    weights: both layer lists, the largest difference of their outputs and their speed
    (networks.introspect.compare_heads). Imports TensorFlow."""
    cfg = network_config(input_size, output_size, **architecture)
    from transducer.networks.introspect import compare_heads as measure

    return measure(cfg)
