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
and defaults (the per-architecture recipe included); it imports TensorFlow. Every error
a user can fix is a `TransducerError` whose message is the CLI's one line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from transducer.core.artifacts import ModelInfo, member_count
from transducer.core.config import ARCHITECTURE, ModelConfig, PredictOptions, TrainConfig, TransducerError


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
        return member_count(self.info)

    def __repr__(self) -> str:
        kind = f"ensemble of {self.members} " if self.members > 1 else ""
        return f"<transducer.Model {kind}{self.config.arch} {str(self.path)!r}>"

    def __getstate__(self) -> dict:
        return {"path": str(self.path), "options": dataclasses.asdict(self.options)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], PredictOptions(**state["options"]))

    def _with(self, overrides: dict) -> "Model":
        """This model, or a twin with other prediction options (weights shared)."""
        if not overrides:
            return self
        twin = object.__new__(Model)
        twin.path, twin.info, twin._lock = self.path, self.info, threading.Lock()
        twin._predictor = self._predictor.with_options(**overrides)
        twin.options = twin._predictor.options
        return twin

    def predictions(self, strings: Iterable[str], **options) -> list[Prediction]:
        """One Prediction per string, in order: output, confidence and (nbest > 1) the
        candidates. `options`: any of load's, for this call only."""
        from transducer.inference.predict import predict_texts

        model = self._with(options)
        out: list[Prediction] = []
        with model._lock:
            for batch in predict_texts(model._predictor, strings):
                for p in batch:
                    cands = tuple(Candidate(c, s, pr) for c, s, pr in p.nbest or ())
                    out.append(Prediction(p.input, p.output, p.confidence, cands))
        return out

    def predict(self, strings: Iterable[str], **options) -> list[str]:
        """The output for each string, in order: what `transducer predict` writes for
        the same lines with the same options.

        >>> len(model.predict(["abc", "XYZ"], beam=3))      # options for this call only
        2
        >>> model.predict(["a" * 99])
        Traceback (most recent call last):
        ...
        transducer.core.config.TransducerError: strings:1: input is 99 characters, longer than the model's max_len ...
        >>> len(model.predict(["a" * 99], on_long="copy")[0])
        99
        """
        if isinstance(strings, str):
            raise TransducerError("predict takes a list of strings; for one string use predict_one")
        return [p.output for p in self.predictions(strings, **options)]

    def predict_file(self, path: str = "-", stats=None) -> Iterator[list]:
        """Batches of predictions (inference.predict.Prediction) for the lines of a file
        ("-": stdin), in order, each batch as soon as it is done: what `transducer
        predict` writes. `stats`: an inference.predict.PredictStats to count unseen
        characters and long lines in."""
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
        with unk="copy") rather than read as <unk>."""
        return self._predictor.copy_unk

    def predict_one(self, text: str, **options) -> str:
        """The output for one string."""
        return self.predictions([text], **options)[0].output

    def predict_nbest(self, strings: Iterable[str], k: int = 5, **options) -> list[list[Candidate]]:
        """The k best candidates for each string, best first, with scores (beam defaults
        to k)."""
        options.setdefault("beam", max(k, self.options.beam))
        preds = self.predictions(strings, nbest=k, **options)
        return [list(p.candidates) or [Candidate(p.output, p.confidence or 0.0, p.confidence or 0.0)] for p in preds]

    def evaluate(self, pairs: str | Path | Iterable[tuple[str, str]], *, errors: int = 0, skip_invalid: bool = False, **options):
        """Score on held-out pairs (a file of input<TAB>reference lines, or an iterable of
        (input, reference)): the report `transducer evaluate` prints (EvalReport, or a
        LabelReport for a label model). `errors`: how many of the worst mistakes to keep."""
        from transducer.inference.evaluate import evaluate

        opts = dataclasses.replace(self.options, **options)
        with pairs_file(pairs) as path, self._lock:
            report = evaluate(self.path, path, opts, skip_invalid=skip_invalid, engine=self._predictor.engine)
        report.mistakes = report.mistakes[:errors] if errors else report.mistakes
        return report

    def explain(self, text: str, top: int = 3):
        """Why the model answers `text`: each step's most probable symbols and, for
        seq2seq, the attention rows; for a label model, the `top` most probable labels
        (an `Explanation`; `.to_dict()` for JSON)."""
        from transducer.inference.explain import explain

        with self._lock:
            return explain(self.path, text, engine=self._predictor.engine, top=top)


def load(model_dir: str | Path, **options) -> Model:
    """Load a model directory written by `transducer train` (or `transducer.train`).

    options: predict's, in snake_case, with its defaults: engine="numpy", beam=1,
    nbest=1, unk="copy", on_long="error", encoding_errors="strict", batch_size=1024,
    cache=20000. Errors (a missing or damaged directory, a bad option) raise
    TransducerError with the CLI's message.
    """
    return Model(model_dir, PredictOptions(**options))


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
    """`transducer train`'s options, with its defaults. None: chosen by the recipe for the
    architecture (training/recipe.py), or taken from --init-from's model."""

    arch: str = "aligned"  # aligned | seq2seq | label
    head: str = "dense"  # per-timestep output layer: dense | time-distributed
    hidden: int = 128  # units in each GRU layer
    layers: int = 1  # stacked GRU layers
    bidirectional: bool = False  # GRUs read the input both ways
    dropout: float | None = None  # after each GRU layer; default aligned 0, seq2seq 0.1
    reset_after: bool = True  # Keras 3's GRU; False: Keras 2's parameter counts
    attention: str = "luong"  # seq2seq: luong | bahdanau | none
    max_len: int = 64  # longest input/output string, in characters of the normalize form
    normalize: str | None = None  # Unicode form: none | nfc | nfd | nfkc | nfkd (aligned none, seq2seq nfd)
    epochs: int = 30  # most epochs; early stopping usually ends sooner
    batch_size: int = 64  # sequences per step (per replica with distribute)
    learning_rate: float = 3e-3  # Adam's step size
    val_split: float = 0.1  # share of pairs held out for validation
    val_file: str | None = None  # validation pairs file instead of val_split
    patience: int | None = None  # epochs without improvement before stopping (aligned 2, seq2seq 4)
    min_delta: float | None = None  # smallest loss drop that counts (aligned absolute 1e-3, seq2seq 0.1%)
    lr_schedule: str | None = None  # constant | plateau | cosine (aligned constant, seq2seq plateau)
    lr_patience: int | None = None  # plateau: epochs without improvement before halving (2)
    label_smoothing: float | None = None  # aligned 0, seq2seq 0.1
    init_from: str | None = None  # start from this model's weights and vocabularies
    seed: int = 0  # same seed and data give the same model on CPU
    skip_invalid: bool = False  # skip invalid rows (reported) instead of stopping
    distribute: str = "none"  # none | mirrored | multi-worker
    force: bool = False  # replace an existing model directory
    resume: bool = False  # continue an interrupted run from its last checkpoint
    ensemble: int | None = None  # members (default 1, or init_from's member count)
    teacher: str | None = None  # distil: learn this model's (an ensemble's) distributions or outputs
    teacher_mode: str = "token"  # token: fit its per-step distributions; sequence: its beam outputs
    teacher_weight: float | None = None  # token: share of the loss that fits the teacher (default 0.5)
    extra_inputs: str | None = None  # with teacher: file of unlabeled strings (one a line) it labels too


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
    )
    return resolve(architecture, o.dropout, training, given & ARCHITECTURE_OPTIONS, o.init_from)


def run_training(pairs, model_dir: str | Path, options: TrainOptions, given: frozenset[str] = frozenset(),
                 reporter=None, on_member: Callable | None = None):
    """Train and publish; returns the training result (training.loop.TrainResult, or
    training.ensemble.EnsembleResult for an ensemble), interrupted runs included. The
    command line's `train` calls this; `train` below wraps it for library users."""
    from transducer.training.distill import train_student
    from transducer.training.ensemble import train_members

    mcfg, tcfg = train_configs(options, given)
    common = dict(val_path=options.val_file, force=options.force, reporter=reporter, resume=options.resume)
    with pairs_file(pairs) as path, warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="keras")  # Keras's own noise never reaches users
        warnings.filterwarnings("ignore", module="tensorflow")
        if options.teacher is not None or options.extra_inputs is not None:
            return train_student(path, model_dir, mcfg, tcfg, options.teacher, options.extra_inputs,
                                 on_member=on_member, mode=options.teacher_mode, weight=options.teacher_weight,
                                 **common)
        return train_members(path, model_dir, mcfg, tcfg, on_member=on_member, **common)


def train(pairs, model_dir: str | Path, *, progress=None, **options) -> Model:
    """Train a model on `pairs` (a path, "-" for stdin, or an iterable of (input, output))
    into `model_dir`, exactly as `transducer train` does with the same options, and
    return it loaded.

    options: `transducer train`'s, in snake_case, with its defaults (see TrainOptions):
    `train(pairs, "m", arch="seq2seq", epochs=5)` is `transducer train PAIRS -m m
    --arch seq2seq --epochs 5`. progress: None (silent), or an object with the Reporter
    methods (training.loop.Reporter) or a callable(event, data) called with
    ("start", counts), ("epoch", {"epoch", **metrics}). Raises TransducerError (exit_code
    130/143 when a signal stopped training: the best model so far is saved, resumable
    with resume=True).
    """
    unknown = set(options) - {f.name for f in dataclasses.fields(TrainOptions)}
    if unknown:
        raise TransducerError(f"train() got unknown option(s): {', '.join(sorted(unknown))}")
    opts = TrainOptions(**options)
    result = run_training(pairs, model_dir, opts, frozenset(options), reporter=_as_reporter(progress))
    if result.interrupted:
        from transducer.training.checkpoint import SIGNAL_EXIT

        raise TransducerError(
            f"{result.signal}: training stopped; call again with resume=True to continue",
            SIGNAL_EXIT.get(result.signal, 130),
        )
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
    if progress is None or hasattr(progress, "epoch_end"):
        return progress
    if callable(progress):
        return _CallbackReporter(progress)
    raise TransducerError("progress must be a callable(event, data) or a Reporter")
