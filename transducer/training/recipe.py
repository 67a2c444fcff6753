"""The training recipe: early stopping, the learning-rate schedule, defaults per
architecture, and dropout by data size (the label-smoothed loss is build.sequence_loss).

Plain Python (no TensorFlow at import): `Progress` decides, epoch by epoch, whether the
model improved, whether to keep its weights, to lower the learning rate or to stop, and
says why it stopped. loop.py's Keras callback only feeds it the epoch's metrics and
carries out its decisions, so the rules are unit-tested without training anything.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from transducer.core.config import ARCHITECTURE, ModelConfig, TrainConfig, TransducerError

# seq2seq defaults (measured on the sample tasks: docs/benchmarks/index.md, "The seq2seq recipe"). The
# aligned model keeps TrainConfig's classic defaults: absolute min_delta on the loss,
# patience 2, constant learning rate, no label smoothing, no dropout.
SEQ2SEQ_TRAIN = {
    "patience": 4,  # epochs without improvement before stopping (the LR is halved at 2)
    "min_delta": 1e-3,  # relative: the loss must fall by 0.1% of its best value
    "relative_delta": True,
    "watch_exact": True,  # a rise of validation exact match is improvement too
    "lr_schedule": "plateau",
    "lr_patience": 2,
    "lr_factor": 0.5,
    "label_smoothing": 0.1,  # +1 point of test exact match on numbers (docs/benchmarks)
}
SEQ2SEQ_DROPOUT = 0.1  # 0.3 learned slower on 3,600-7,200 pairs; 0.1 matched it with smoothing
# The edit model (--arch edit) starts from the seq2seq recipe (dropout, NFD, SEQ2SEQ_TRAIN)
# with smaller batches: 16 pairs a step gave a lower dev WER than 64 on SIGMORPHON
# (docs/benchmarks/sigmorphon.md, "Tuning the edit recipe"), for about twice the training
# time (four times the steps per epoch, somewhat fewer epochs). Its encoder is
# bidirectional unless --no-bidirectional (the published edit transducer's is, and
# seq2seq measured better so on sigmorphon).
EDIT_TRAIN = {**SEQ2SEQ_TRAIN, "batch_size": 16}
RECIPE_ARCHS = ("seq2seq", "edit")  # the architectures trained with the seq2seq recipe
EDIT_BIDIRECTIONAL = True


def train_defaults(arch: str) -> dict:
    """TrainConfig fields the user did not set, for `arch`."""
    if arch in RECIPE_ARCHS:
        return dict(EDIT_TRAIN if arch == "edit" else SEQ2SEQ_TRAIN)
    fields = TrainConfig()
    return {k: getattr(fields, k) for k in SEQ2SEQ_TRAIN}


def default_dropout(arch: str) -> float:
    """--dropout when not given: none for the aligned model (its classic behaviour)."""
    return SEQ2SEQ_DROPOUT if arch in RECIPE_ARCHS else 0.0


def default_normalize(arch: str) -> str:
    """--normalize when not given. seq2seq: NFD, so accented letters and Hangul syllables
    are spelled with a small alphabet of frequent letters (README, "Unicode
    normalization"); the aligned model pairs input and output position by position, which
    decomposition would shift, so it keeps the text as it is. The edit model decomposes
    too: a letter and its accent are copied, deleted or substituted one by one."""
    return "nfd" if arch in RECIPE_ARCHS else "none"


def scheduled_rate(cfg: TrainConfig, epoch: int) -> float | None:
    """The learning rate for 1-based `epoch` when the schedule fixes it in advance (cosine:
    half a cosine from learning_rate at epoch 1 towards 0 after the last of cfg.epochs),
    else None (constant, or plateau, which reacts to the metrics instead). A function of
    the epoch alone, so a resumed run continues on the same curve."""
    if cfg.lr_schedule != "cosine":
        return None
    return cfg.learning_rate * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / cfg.epochs))


def resolve(
    architecture: dict, dropout: float | None, training: dict, given: frozenset = frozenset(), init_from=None
) -> tuple[ModelConfig, TrainConfig]:
    """`train`'s configs from its options, defaults filled in.

    architecture: ModelConfig's ARCHITECTURE fields (normalize None: not given); with
    `init_from`, those not in `given` (the ones set on the command line) follow that
    model's, and an ensemble size not given (None) is that model's member count (member k
    starts from its member k, see loop._init_source). dropout None and training values
    None: this architecture's defaults (default_dropout, train_defaults)."""
    architecture, training = dict(architecture), dict(training)
    if init_from is not None:
        from transducer.core.artifacts import member_count, read_info

        info = read_info(init_from)
        architecture.update({k: getattr(info.model, k) for k in ARCHITECTURE if k not in given})
        if training.get("ensemble") is None:
            training["ensemble"] = member_count(info)
    if architecture["arch"] == "edit":
        _edit_architecture(architecture, given, init_from)
    if architecture.get("normalize") is None:
        architecture["normalize"] = default_normalize(architecture["arch"])
    model = ModelConfig(dropout=default_dropout(architecture["arch"]) if dropout is None else dropout, **architecture)
    chosen = {k: v for k, v in training.items() if v is not None}
    init = {"init_from": str(init_from)} if init_from is not None else {}
    return model, TrainConfig(**{**train_defaults(model.arch), **chosen, **init})


def _edit_architecture(architecture: dict, given: frozenset, init_from) -> None:
    """An edit model's encoder is bidirectional unless the options say otherwise; it has
    no attention (its pointer chooses what the decoder reads), so asking for one is an error."""
    if "attention" in given and architecture.get("attention") not in (None, "none"):
        raise TransducerError(
            f"--attention {architecture['attention']} does not apply to --arch edit: its decoder reads the"
            " encoder state under its pointer"
        )
    if "bidirectional" not in given and init_from is None:
        architecture["bidirectional"] = EDIT_BIDIRECTIONAL


@dataclass
class Decision:
    keep_weights: bool  # this epoch's weights are the best so far
    lower_lr: bool  # multiply the learning rate by lr_factor now
    stop: bool  # stop training after this epoch


@dataclass
class Progress:
    """Early-stopping and schedule state; plain data, so a checkpoint can store it."""

    best: float = math.inf  # best monitored loss so far
    best_exact: float = -math.inf  # best validation exact match so far (watch_exact)
    best_epoch: int = 0  # 1-based epoch of the kept weights
    wait: int = 0  # epochs since the last improvement
    epochs_run: int = 0  # epochs completed
    stopped_early: bool = False
    stop_reason: str = ""  # why training stopped early, for people
    history: dict = field(default_factory=dict)  # metric -> per-epoch values

    def state(self) -> dict:
        """JSON-ready state (infinities as None)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}

    def load_state(self, state: dict) -> None:
        """Restore `state()`; keys missing from an older checkpoint keep their defaults."""
        for key, value in state.items():
            if key in ("best", "best_exact") and value is None:
                value = math.inf if key == "best" else -math.inf
            if hasattr(self, key):
                setattr(self, key, value)


def judge(cfg: TrainConfig, progress: Progress, epoch: int, loss: float, exact: float | None) -> Decision:
    """Update `progress` with 1-based `epoch`'s monitored loss (and validation exact match,
    when watched and known) and decide what happens next.

    Improvement: the loss fell by more than min_delta (absolute, or a fraction of the best
    loss with relative_delta), or, with watch_exact, the exact match rose. A loss that
    keeps falling by 1% per epoch is improving whatever its size; an absolute min_delta
    stops it once the loss itself is near min_delta.
    """
    watch = cfg.watch_exact and exact is not None
    margin = cfg.min_delta * (abs(progress.best) if cfg.relative_delta and math.isfinite(progress.best) else 1.0)
    improved = loss < progress.best - margin or (watch and exact > progress.best_exact)
    if watch:  # keep what users care about: the best exact match (ties: the lower loss)
        keep = exact > progress.best_exact or (exact == progress.best_exact and loss < progress.best)
    else:  # any drop keeps the better weights, so a slow last improvement is not lost
        keep = loss < progress.best
    keep = keep or progress.best_epoch == 0
    if keep:
        progress.best_epoch = epoch
    progress.best = min(progress.best, loss)
    if watch:
        progress.best_exact = max(progress.best_exact, exact)
    progress.wait = 0 if improved else progress.wait + 1
    progress.epochs_run = epoch
    # Patience running out on the last epoch is no early stop: all epochs were run.
    stop = progress.wait > 0 and progress.wait >= cfg.patience and epoch < cfg.epochs
    lower = not stop and cfg.lr_schedule == "plateau" and progress.wait > 0 and progress.wait % cfg.lr_patience == 0
    if stop:
        progress.stopped_early = True
        progress.stop_reason = stop_reason(cfg, progress)
    return Decision(keep, lower, stop)


def stop_reason(cfg: TrainConfig, progress: Progress) -> str:
    """e.g. "validation loss did not improve by 0.1% and validation exact match did not
    rise for 4 epoch(s) (best exact match 0.998, kept from epoch 9)"."""
    what = "validation loss" if "val_loss" in progress.history else "training loss"
    by = f"{cfg.min_delta * 100:g}%" if cfg.relative_delta else f"{cfg.min_delta:g}"
    watched = cfg.watch_exact and math.isfinite(progress.best_exact)
    exact = " and validation exact match did not rise" if watched else ""
    best = f"best exact match {progress.best_exact:.4g}" if watched else f"best loss {progress.best:.4g}"
    if progress.best_epoch == progress.epochs_run and not watched:  # it fell, by too little to count
        return (
            f"{what} did not improve by {by} for {progress.wait} epoch(s) (--patience {cfg.patience}), though it"
            f" still fell in the last one ({best}, kept from epoch {progress.best_epoch}, the last)"
        )
    return f"{what} did not improve by {by}{exact} for {progress.wait} epoch(s) ({best}, kept from epoch {progress.best_epoch})"
