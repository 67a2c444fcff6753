"""Hyperparameters, as frozen dataclasses: one for the network, one for training.

Both are plain data (no TensorFlow, no numpy) so the CLI can build and validate them
before anything heavy is imported, and so they round-trip through the model directory's
config.json.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum

class Choice(str, Enum):
    """A string option with a fixed set of values. `str` so a member compares equal to its
    value (Arch.SEQ2SEQ == "seq2seq") and the CLI's --help and completion list them."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)

    @classmethod
    def check(cls, value, option: str) -> str:
        """`value` as a plain string, or the one-line error every entry point gives: the one
        check of a choice (the CLI's parser, the option dataclasses and the configs call it)."""
        value = value.value if isinstance(value, Enum) else value
        if value not in cls.values():
            raise TransducerError(f"{option} must be one of {', '.join(cls.values())}, got {value!r}")
        return value


def option(default, help: str, choices: type[Choice] | None = None):
    """A user-facing option's one declaration, as a dataclass field: its default, its help
    (the CLI's --help and the API's docs) and, for a string with fixed values, their Choice.
    The field's annotation is its type; cli.py builds its typer options from these."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


def help_of(cls, name: str) -> str:
    """The help of option `name` of the options dataclass `cls`."""
    return cls.__dataclass_fields__[name].metadata["help"]


def check_choices(options) -> None:
    """Every choice field of an options dataclass holds one of its values (Choice.check)."""
    for f in dataclasses.fields(options):
        kind = f.metadata.get("choices")
        if kind is not None and getattr(options, f.name) is not None:
            object.__setattr__(options, f.name, kind.check(getattr(options, f.name), "--" + f.name.replace("_", "-")))


class Arch(Choice):
    ALIGNED = "aligned"  # one softmax per input position (the classic model)
    SEQ2SEQ = "seq2seq"  # GRU encoder-decoder with attention
    LABEL = "label"  # one softmax per string
    EDIT = "edit"  # edit actions (copy, delete, substitute, insert) under a pointer over the input


class Head(Choice):
    DENSE = "dense"
    TIME_DISTRIBUTED = "time-distributed"


class Attention(Choice):
    LUONG = "luong"  # dot product
    BAHDANAU = "bahdanau"  # additive
    NONE = "none"


class Engine(Choice):
    NUMPY = "numpy"  # no TensorFlow (inference/numpy_engine.py)
    KERAS = "keras"


class Format(Choice):  # predict's output formats
    TEXT = "text"
    TSV = "tsv"
    JSONL = "jsonl"


class OnLong(Choice):  # what predict does with lines over max_len
    ERROR = "error"
    TRUNCATE = "truncate"
    COPY = "copy"


class EncodingErrors(Choice):  # what predict does with invalid UTF-8
    STRICT = "strict"
    REPLACE = "replace"


class Combine(Choice):  # how an ensemble's members are combined (inference/combine.py)
    AUTO = "auto"  # mean where the members can share one step distribution, else rescore
    MEAN = "mean"  # geometric mean of the members' per-step distributions (one architecture)
    VOTE = "vote"  # each member decodes; the most frequent output wins
    RESCORE = "rescore"  # every member scores every member's n-best; the best sum wins


class Unk(Choice):  # what an aligned model does with characters unseen in training
    COPY = "copy"
    MODEL = "model"


class Distribute(Choice):  # training/distribute.py
    NONE = "none"
    MIRRORED = "mirrored"
    MULTI_WORKER = "multi-worker"


class Normalize(Choice):  # Unicode normalization of the text (core/normalization.py)
    NONE = "none"
    NFC = "nfc"
    NFD = "nfd"
    NFKC = "nfkc"
    NFKD = "nfkd"


class LrSchedule(Choice):  # learning-rate schedules (training/recipe.py)
    CONSTANT = "constant"
    PLATEAU = "plateau"
    COSINE = "cosine"


class TeacherMode(Choice):  # train --teacher-mode (training/distill.py)
    TOKEN = "token"
    SEQUENCE = "sequence"


class LogFormat(Choice):  # train's progress on stderr (ui/progress.py)
    PLAIN = "plain"
    RICH = "rich"
    JSONL = "jsonl"


ARCHS, HEADS, ATTENTIONS = Arch.values(), Head.values(), Attention.values()
ENGINES, FORMATS, ON_LONG, ENCODING_ERRORS = Engine.values(), Format.values(), OnLong.values(), EncodingErrors.values()
UNK_POLICIES, DISTRIBUTE, NORMALIZE = Unk.values(), Distribute.values(), Normalize.values()
LR_SCHEDULES, LOG_FORMATS, COMBINE = LrSchedule.values(), LogFormat.values(), Combine.values()
CACHE_LINES = 20_000  # predict --cache default: distinct lines whose results are kept
#                       (each entry holds the line, its output and a float: ~250 bytes)


class TransducerError(Exception):
    """A problem the user can fix (bad input, bad option, bad model dir).

    The CLI prints its message on one line and exits with `exit_code`; no traceback.
    Messages name options as the command line spells them (--max-len 19, --force); the
    Python API re-raises them naming its arguments (max_len=19, force=True) and keeps the
    command line's wording in `cli_message`, which is what the CLI prints.
    """

    exit_code = 2
    cli_message: str | None = None  # the command line's wording, when str() is the API's

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "aligned"  # "aligned": one softmax per input position; "seq2seq": encoder-decoder;
    #                        "label": one softmax per string (label.py); "edit": edit actions
    #                        under a pointer (edit.py; output_vocab_size is the action count)
    max_len: int = 64  # longest input (and output) string, in characters
    hidden: int = 128  # units in each GRU layer
    layers: int = 1  # stacked GRU layers (encoder and decoder each, for seq2seq)
    bidirectional: bool = False  # GRUs read both ways, so every position sees the whole input
    dropout: float = 0.0  # Dropout after each GRU layer (not recurrent dropout: keeps cuDNN's
    #                       path) and, for seq2seq, on the attention weights
    reset_after: bool = True  # Keras 3 default; False reproduces Keras 2 parameter counts
    head: str = "dense"  # per-timestep output layer: "dense" or "time-distributed"
    attention: str = "luong"  # seq2seq only: "luong" (dot), "bahdanau" (additive) or "none";
    #                           an edit model's is always "none" (its pointer is its attention)
    input_vocab_size: int = 0  # one-hot width of the input, reserved symbols included
    output_vocab_size: int = 0  # softmax width of the output, reserved symbols included
    #                             (for arch "label": the number of labels, no reserved symbols)
    masked: bool = True  # padding is masked (GRUs, attention, loss) and batches are padded to
    #                      their own longest string; False: a model written before masks
    #                      (its config.json has no such key), run exactly as it was trained
    normalize: str = "none"  # Unicode form of the text the model sees (inputs and outputs);
    #                          "none" for models written before the option existed

    def __post_init__(self):
        for kind, name in ((Arch, "arch"), (Head, "head"), (Attention, "attention"), (Normalize, "normalize")):
            kind.check(getattr(self, name), f"--{name}")
        for name in ("max_len", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise TransducerError(f"--{name.replace('_', '-')} must be at least 1")
        if not 0.0 <= self.dropout < 1.0:
            raise TransducerError("--dropout must be in [0, 1)")
        if self.arch == "edit":
            # The decoder reads the encoder state under its pointer, not an attention
            # average: attention does not apply, and is recorded as "none" whatever the
            # default was. Edit models are new, so always masked.
            object.__setattr__(self, "attention", "none")
            if not self.masked:
                raise TransducerError("--arch edit models are always masked (config.json says masked false)")
        if self.arch == "label" and self.head == "time-distributed":
            raise TransducerError(
                "--head time-distributed does not apply to --arch label: its last GRU returns one"
                " vector per string (return_sequences=False), so no time axis is left for"
                " TimeDistributed to map over; use --head dense"
            )

    @property
    def variable_length(self) -> bool:
        """Training batches (and seq2seq inference batches) are padded to their own longest
        string, not to max_len. Not for an aligned bidirectional model: its output may run
        past the input into the padding (outputs longer than inputs), and its backward
        direction reads that span, so the span stays max_len and results never depend on
        how a batch is padded. (A unidirectional aligned model is causal: padding after a
        position never reaches it.)"""
        return self.masked and not (self.arch == "aligned" and self.bidirectional)

    @property
    def return_sequences(self) -> bool:
        """Whether the last GRU layer returns a vector per position (aligned, seq2seq) or
        one per string (label: the classic sequence-to-label model)."""
        return self.arch != "label"

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        d = {"masked": False, **d}  # written before masks existed: unmasked, as trained
        return cls(**{k: v for k, v in d.items() if k in known})


# ModelConfig fields that must agree between a model and one trained --init-from it (and
# that --init-from fills in when the command line does not give them).
ARCHITECTURE = ("arch", "max_len", "hidden", "layers", "bidirectional", "reset_after", "head", "attention", "normalize")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30  # upper bound; early stopping usually ends sooner
    batch_size: int = 64  # sequences per gradient step
    learning_rate: float = 3e-3  # Adam step size
    val_split: float = 0.1  # fraction of pairs held out for validation (ignored with val_file)
    patience: int = 2  # epochs without val-loss improvement before stopping
    min_delta: float = 1e-3  # a val-loss drop smaller than this is no improvement: stops
    #                          runs that polish an already perfect model for many epochs
    relative_delta: bool = False  # min_delta is a fraction of the best loss (seq2seq recipe),
    #                               not an absolute drop (classic aligned behaviour)
    watch_exact: bool = False  # a rise of validation exact match also counts as improvement,
    #                            and the kept weights are those of the best exact match
    lr_schedule: str = "constant"  # "constant"; "plateau": multiply the learning rate by
    #                                lr_factor after lr_patience epochs without improvement;
    #                                "cosine": fall from learning_rate towards 0 over `epochs`
    lr_patience: int = 2  # plateau: epochs without improvement before each reduction
    lr_factor: float = 0.5  # plateau: what the learning rate is multiplied by
    label_smoothing: float = 0.0  # share of each target's probability spread over all symbols
    rollin: float = 0.0  # edit models: K of the roll-in schedule, the share of steps following the
    #                      expert being K / (K + exp(epoch / K)); 0: the expert's path only (training/rollin.py)
    init_from: str | None = None  # model directory whose weights (and vocabularies) start training
    seed: int = 0  # seeds the split, weight init and shuffling: same seed, same result on CPU
    skip_invalid: bool = False  # train on valid rows instead of stopping at the first bad one
    distribute: str = "none"  # tf.distribute strategy: none | mirrored | multi-worker; batch_size
    #                           is then per replica (global batch = batch_size x replicas)
    ensemble: int = 1  # members trained into one model directory (training/ensemble.py, inference/ensemble.py)
    member: int = 0  # this member's 0-based index: weights and shuffling are seeded with
    #                  seed + member, the validation split with seed (shared by all members)
    bootstrap: bool = False  # train on a bootstrap resample of the training pairs drawn with
    #                          seed + member (bagging: members that disagree; training/stream.py)
    subsample: float = 1.0  # train on this fraction of the training pairs, drawn with seed + member

    def __post_init__(self):
        if self.epochs < 1:
            raise TransducerError("--epochs must be at least 1")
        if self.batch_size < 1:
            raise TransducerError("--batch-size must be at least 1")
        if self.learning_rate <= 0:
            raise TransducerError("--learning-rate must be positive")
        if not 0.0 <= self.val_split < 1.0:
            raise TransducerError("--val-split must be in [0, 1)")
        if self.patience < 0:
            raise TransducerError("--patience must be >= 0")
        if self.min_delta < 0:
            raise TransducerError("--min-delta must be >= 0")
        if self.ensemble < 1:
            raise TransducerError("--ensemble must be at least 1")
        LrSchedule.check(self.lr_schedule, "--lr-schedule")
        if self.lr_patience < 1:
            raise TransducerError("--lr-patience must be at least 1")
        if not 0.0 < self.lr_factor < 1.0:
            raise TransducerError("--lr-factor must be in (0, 1)")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise TransducerError("--label-smoothing must be in [0, 1)")
        if not (self.rollin >= 0.0 and math.isfinite(self.rollin)):
            raise TransducerError("--rollin must be 0 (off) or a positive number")
        if not 0.0 < self.subsample <= 1.0:
            raise TransducerError("--subsample must be in (0, 1]")
        if self.bootstrap and self.subsample < 1.0:
            raise TransducerError("--bootstrap and --subsample are two ways to draw a member's pairs: give one")
        Distribute.check(self.distribute, "--distribute")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PredictOptions:
    """How a model is run: `transducer predict`'s and `evaluate`'s options (each field's
    metadata holds its help), checked once here for the CLI, the Python API and Spark alike."""

    engine: str = option("numpy", "Inference engine: numpy (no TensorFlow) or keras.", Engine)
    beam: int = option(1, "seq2seq beam width (1: greedy); aligned: above 1 searches the exact best strings;"
                          " label: no effect.")
    nbest: int = option(1, "Candidates per line (at most --beam; alone it sets --beam K): tab-separated in text,"
                           " with scores in tsv/jsonl (label models: the K most probable labels).")
    unk: str = option("copy", "Characters never seen in training, aligned models: copy (through unchanged, at"
                              " their position) or model (read as <unk>; the model may end the string there)."
                              " seq2seq models always read <unk>.", Unk)
    on_long: str = option("error", "Inputs longer than max_len: error, truncate, or copy (the output is the"
                                   " input).", OnLong)
    encoding_errors: str = option("strict", "Invalid UTF-8 input: strict (an error) or replace.", EncodingErrors)
    batch_size: int = option(8192, "Lines per model call (at most; a pause in the input ends a call early);"
                                   " the engine sorts them by length and shares them out to its threads.")
    cache: int = option(CACHE_LINES, "Distinct lines whose results are kept and reused (about 250 bytes each);"
                                     " 0 computes every line.")
    combine: str = option("auto", "An ensemble's rule: mean (of the members' step distributions; one"
                                  " architecture), vote (each member decodes, the majority wins), rescore"
                                  " (every member scores every member's n-best; any architectures) or auto"
                                  " (mean where the members allow it, else rescore).", Combine)

    def __post_init__(self):
        check_choices(self)
        for name in ("beam", "nbest", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TransducerError(f"--{name.replace('_', '-')} must be an integer of at least 1, got {value!r}")
        if isinstance(self.cache, bool) or not isinstance(self.cache, int) or self.cache < 0:
            raise TransducerError(f"--cache must be an integer >= 0, got {self.cache!r}")
        if self.nbest > self.beam:
            if self.beam != 1:
                raise TransducerError(f"--nbest must be at most --beam ({self.beam})")
            object.__setattr__(self, "beam", self.nbest)  # --nbest K alone searches with a beam of K


@dataclass(frozen=True)
class OutputLength:
    """The longest output a seq2seq model may write for an input, learned from its training
    data: min(max_len, ceil(ratio * max(len(input), 1)) + extra) characters. Stored in
    config.json as "output_length" under "data"; a model directory without it decodes to max_len."""

    ratio: float  # output characters allowed per input character (observed_ratio x MARGIN)
    extra: int  # characters allowed on top, for short inputs with relatively long outputs
    observed_ratio: float  # the largest len(output) / max(len(input), 1) of a training pair

    MARGIN = 1.25  # headroom over the training data's largest ratio
    EXTRA = 3

    @classmethod
    def learned(cls, observed_ratio: float) -> "OutputLength":
        return cls(round(observed_ratio * cls.MARGIN, 6), cls.EXTRA, round(observed_ratio, 6))

    def limits(self, input_lengths, max_len: int):
        """(B,) input lengths in characters -> (B,) longest outputs allowed, in characters.
        An input counts as at least 1 character, so every training pair fits its bound."""
        import numpy as np  # here, not at the top: `transducer --help` imports this module

        n = np.maximum(np.asarray(input_lengths, dtype=np.float64), 1.0)
        # The epsilon keeps ceil from rounding ratio * n = 6.000000001 up to 7.
        return np.minimum(np.ceil(self.ratio * n - 1e-9).astype(np.int64) + self.extra, max_len)

    def to_dict(self) -> dict:
        return {"ratio": self.ratio, "extra": self.extra, "observed_ratio": self.observed_ratio}

    @classmethod
    def from_dict(cls, d) -> "OutputLength":
        """config.json's "data" -> "output_length", checked (ValueError names what is wrong)."""
        if not isinstance(d, dict):
            raise ValueError("data.output_length must be an object")
        ratio, extra, observed = d.get("ratio"), d.get("extra"), d.get("observed_ratio", d.get("ratio"))
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (ratio, extra, observed)):
            raise ValueError("data.output_length needs numbers ratio, extra (and observed_ratio)")
        if ratio < 0 or extra < 0 or int(extra) != extra:
            raise ValueError("data.output_length: ratio must be >= 0 and extra an integer >= 0")
        return cls(float(ratio), int(extra), float(observed))
