"""How a model was trained, read back from its directory: the per-epoch curves with
readable names, the best epoch, the training hyperparameters and the training time.

Reads config.json and metrics.json only (no TensorFlow), for `summarize DIR`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transducer.core.artifacts import read_info, read_metrics

# Keras's metric names (model.compile and evaluate.validation_metrics) -> what they measure.
METRIC_NAMES = {
    "loss": "loss",
    "char_acc": "character accuracy",
    "exact_match": "exact match",
    "decoded_exact_match": "exact match (decoded strings)",
    "cer": "character error rate",
    "accuracy": "accuracy",  # a label model's (--arch label)
    "macro_f1": "macro-F1",
}
PER_EPOCH_NAMES = {"learning_rate": "learning rate"}  # per-epoch values that are no metric


def readable(key: str, split: str = "training") -> str:
    """"val_exact_match" -> "validation exact match"; "loss" -> "<split> loss"."""
    if key in PER_EPOCH_NAMES:
        return PER_EPOCH_NAMES[key]
    if key.startswith("val_"):
        split, key = "validation", key[len("val_"):]
    return f"{split} {METRIC_NAMES.get(key, key.replace('_', ' '))}"


@dataclass(frozen=True)
class TrainingSummary:
    curves: dict[str, list[float]]  # metrics.json's history: Keras name -> one value per epoch
    best_epoch: int  # 1-based epoch whose weights were kept (0: unknown)
    epochs_run: int  # epochs completed
    train_seconds: float | None  # wall time of the epochs (None: not recorded)
    final: dict[str, float]  # metrics of the kept weights, on `final_on`
    final_on: str  # "validation" or "training" (no validation data)
    hyperparameters: dict[str, object]  # config.json's training options, dropout included

    def settings(self) -> dict[str, object]:
        """The training options that applied to this run, as summarize lists them: no
        learning-rate patience or factor unless the schedule is plateau, min_delta as a
        percentage when it is relative, no option left at "off" (no init_from, no
        distribution, no exact-match watch, no skipping), no member index (an ensemble's
        members are listed on their own), no dropout (the network's setting)."""
        hp = dict(self.hyperparameters)
        if hp.get("lr_schedule") != "plateau":
            hp.pop("lr_patience", None), hp.pop("lr_factor", None)
        if hp.pop("relative_delta", False) and isinstance(hp.get("min_delta"), (int, float)):
            hp["min_delta"] = f"{hp['min_delta'] * 100:g}% of the best loss"
        for key, off in (("init_from", None), ("distribute", "none"), ("watch_exact", False), ("skip_invalid", False),
                         ("ensemble", 1)):
            if hp.get(key, off) == off:
                hp.pop(key, None)
        for key in ("member", "dropout"):
            hp.pop(key, None)
        return hp

    def curve_names(self) -> dict[str, str]:
        return {k: readable(k) for k in self.curves}

    def final_names(self) -> dict[str, str]:
        return {k: readable(k, self.final_on) for k in self.final}

    def to_dict(self) -> dict:
        return {
            "curves": self.curves,
            "curve_names": self.curve_names(),
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "train_seconds": self.train_seconds,
            "final": self.final,
            "final_names": self.final_names(),
            "final_on": self.final_on,
            "hyperparameters": self.hyperparameters,
        }


def read_training_summary(model_dir: str | Path) -> TrainingSummary:
    info = read_info(model_dir)
    metrics = read_metrics(info.path)
    curves = {k: list(v) for k, v in (metrics.get("history") or {}).items()}
    epochs_run = int(metrics.get("epochs_run") or max((len(v) for v in curves.values()), default=0))
    hyper = dict(info.raw.get("train") or {})
    hyper["dropout"] = info.model.dropout
    final_on = (info.raw.get("data") or {}).get("final_on", "validation")
    return TrainingSummary(
        curves=curves,
        best_epoch=int(metrics.get("best_epoch") or 0),
        epochs_run=epochs_run,
        train_seconds=metrics.get("train_seconds"),
        final=dict(metrics.get("final") or {}),
        final_on=final_on,
        hyperparameters=hyper,
    )
