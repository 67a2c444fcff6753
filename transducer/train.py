"""Training: pairs file -> vocabularies -> arrays -> model.fit -> model directory.

The library never prints. Progress goes to a `Reporter` the caller passes in (the CLI's
draws rich progress bars on stderr); Keras's own progress output is always off.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from . import artifacts, distribute, stream
from .config import ModelConfig, TrainConfig, TransducerError
from .vocab import END_ID, PAD_ID, Vocab

METRIC_NAMES = ("loss", "char_acc", "exact_match")


class Reporter(Protocol):
    """Receives progress; every method may be a no-op."""

    def start(self, info: dict) -> None: ...  # once, with sizes and counts, before epoch 1
    def epoch_begin(self, epoch: int, epochs: int, steps: int) -> None: ...  # epoch is 1-based
    def batch_end(self, step: int, logs: dict) -> None: ...  # step is 1-based within the epoch
    def epoch_end(self, epoch: int, logs: dict) -> None: ...  # logs incl. val_* metrics


class NullReporter:
    def start(self, info):
        pass

    def epoch_begin(self, epoch, epochs, steps):
        pass

    def batch_end(self, step, logs):
        pass

    def epoch_end(self, epoch, logs):
        pass


@dataclass
class TrainResult:
    model_dir: Path  # where the model was published
    history: dict[str, list[float]]  # per-epoch metrics, Keras names (loss, val_loss, ...)
    final: dict[str, float]  # metrics of the best epoch's weights on the validation data
    best_epoch: int  # 1-based epoch whose weights were kept
    epochs_run: int  # epochs completed
    interrupted: bool  # stopped by Ctrl-C; the best model so far was saved
    stopped_early: bool  # early stopping ended training before --epochs
    counts: dict = field(default_factory=dict)  # n_train, n_val, skipped, duplicates, conflicts


def aligned_arrays(pairs, in_vocab: Vocab, out_vocab: Vocab, max_len: int):
    """Input ids padded with <pad>; target ids filled with </s> after the string."""
    x, _ = in_vocab.encode_batch([p[0] for p in pairs], max_len, fill=PAD_ID)  # (N, T)
    y, _ = out_vocab.encode_batch([p[1] for p in pairs], max_len, fill=END_ID)  # (N, T)
    return [x], [len(in_vocab)], y


def training_arrays(cfg: ModelConfig, pairs, in_vocab: Vocab, out_vocab: Vocab):
    """([int feature arrays], [one-hot depth per feature], target ids) for cfg.arch."""
    if cfg.arch == "seq2seq":
        from .seq2seq import seq2seq_arrays

        return seq2seq_arrays(pairs, in_vocab, out_vocab, cfg.max_len)
    return aligned_arrays(pairs, in_vocab, out_vocab, cfg.max_len)


def make_dataset(features, depths, targets, batch_size: int, shuffle_seed: int | None):
    """tf.data pipeline of int ids; one-hot encoding happens per batch inside the pipeline."""
    from .model import tf

    ds = tf.data.Dataset.from_tensor_slices((tuple(features), targets))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(targets), seed=shuffle_seed, reshuffle_each_iteration=True)

    def to_one_hot(feats, y):
        x = tuple(tf.one_hot(f, d) for f, d in zip(feats, depths))  # each (B, T, depth)
        return (x[0] if len(x) == 1 else x), y

    return ds.batch(batch_size).map(to_one_hot).prefetch(tf.data.AUTOTUNE)


def train(
    pairs_path: str,
    model_dir: str | Path,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    val_path: str | None = None,
    force: bool = False,
    reporter: Reporter | None = None,
) -> TrainResult:
    """Train a model on `pairs_path` (`-` for stdin) and publish it to `model_dir`."""
    reporter = reporter or NullReporter()
    model_dir = Path(model_dir)
    # The strategy comes first: multi-worker collectives must be set up before any TF op.
    plan = distribute.make_plan(train_cfg.distribute, train_cfg.batch_size)
    if plan.is_chief:
        artifacts.check_writable(model_dir, force)

    # One pass to validate, count, split and build the vocabularies; the pairs themselves
    # are streamed from the file by tf.data (see stream.py).
    split = 0.0 if val_path is not None else train_cfg.val_split
    data = stream.scan_pairs(pairs_path, model_cfg.max_len, train_cfg.skip_invalid, split, train_cfg.seed)
    val = None
    if val_path is not None:
        val = stream.scan_pairs(val_path, model_cfg.max_len, train_cfg.skip_invalid, 0.0, train_cfg.seed)
    n_train, n_val = data.n_train, (val.n_rows if val is not None else data.n_val)
    if not n_train:
        raise TransducerError(
            f"{data.name}: {data.n_rows} pair(s) leave nothing to train on after the"
            f" validation split; lower --val-split or pass --val-file"
        )

    # Vocabularies come from training pairs only: validation characters the model never
    # saw in training are <unk>, exactly as they would be at prediction time.
    in_vocab, out_vocab = data.vocabs()
    cfg = model_cfg.replace(input_vocab_size=len(in_vocab), output_vocab_size=len(out_vocab))

    from .model import build_model, compile_model, keras, tf

    keras.utils.set_random_seed(train_cfg.seed)
    tf.config.experimental.enable_op_determinism()

    def pipeline(scan, side, shuffle_seed=None):
        ds = stream.pairs_dataset(
            scan, cfg, in_vocab, out_vocab, side, plan.global_batch, train_cfg.seed, shuffle_seed
        )
        return distribute.prepare_dataset(plan, ds)

    def dataset_for_epoch(epoch: int):
        return pipeline(data, "train", stream.epoch_seed(train_cfg.seed, epoch))

    # All epochs back to back, each shuffled with its own seed; fit runs steps_per_epoch.
    train_ds = stream.epochs_dataset(dataset_for_epoch, train_cfg.epochs)
    val_ds = None
    if val is not None:
        val_ds = pipeline(val, "all")
    elif n_val:
        val_ds = pipeline(data, "val")

    with plan.strategy.scope():
        model = build_model(cfg)
        compile_model(model, train_cfg.learning_rate)
    distribute.patch_for_multi_worker(plan, model, train_ds.element_spec)

    counts = {
        "n_train": n_train,
        "n_val": n_val,
        "skipped": data.n_invalid,
        "skipped_detail": data.describe_invalid() if data.invalid else "",
        "duplicates": data.duplicates,
        "conflicts": data.conflicts,
        "input_vocab": len(in_vocab),
        "output_vocab": len(out_vocab),
        "parameters": int(model.count_params()),
        **plan.counts(),  # distribute, replicas, global_batch, is_chief
    }
    reporter.start(counts)

    steps = math.ceil(n_train / plan.global_batch)
    monitor = "val_loss" if val_ds is not None else "loss"
    keeper = _BestKeeper(monitor, train_cfg.patience, train_cfg.min_delta, reporter, train_cfg.epochs, steps)
    interrupted = False
    started = time.time()
    try:
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=train_cfg.epochs,
            steps_per_epoch=steps,  # train_ds holds all epochs, each shuffled its own way
            callbacks=[keeper],
            verbose=0,
        )
    except KeyboardInterrupt:
        interrupted = True
    if keeper.best_weights is not None:
        model.set_weights(keeper.best_weights)
    elif interrupted:
        raise TransducerError("interrupted before the first epoch finished; nothing saved", 130)

    final = {}
    eval_ds = val_ds if val_ds is not None else pipeline(data, "train")  # one pass, file order
    results = model.evaluate(eval_ds, verbose=0, return_dict=True)
    final = {k: float(v) for k, v in results.items()}

    cfg_json = artifacts.config_dict(
        cfg,
        in_vocab,
        out_vocab,
        train=train_cfg.to_dict(),
        data={
            "train_file": data.name,
            "val_file": val_path,
            "n_train": n_train,
            "n_val": n_val,
            "final_on": "validation" if val_ds is not None else "training",
        },
    )
    history = {k: [float(v) for v in vals] for k, vals in keeper.history.items()}
    metrics = {
        "history": history,
        "final": final,
        "best_epoch": keeper.best_epoch,
        "epochs_run": keeper.epochs_run,
        "interrupted": interrupted,
        "train_seconds": round(time.time() - started, 2),
    }
    # Every worker saves (saving reads synchronised variables, a collective op); only the
    # chief's copy is kept.
    written = distribute.output_dir(plan, model_dir)
    save_model_dir(model, cfg_json, metrics, written)
    distribute.discard(plan, written)
    return TrainResult(
        model_dir=model_dir,
        history=history,
        final=final,
        best_epoch=keeper.best_epoch,
        epochs_run=keeper.epochs_run,
        interrupted=interrupted,
        stopped_early=keeper.stopped_early,
        counts=counts,
    )


def save_model_dir(model, cfg_json: dict, metrics: dict, model_dir: Path) -> None:
    """Stage every file of the model directory, then publish it with one rename."""
    staging = artifacts.staging_dir(model_dir)
    if staging.exists():
        shutil.rmtree(staging)
    try:
        staging.mkdir(parents=True)
        model.save(staging / artifacts.MODEL)
        artifacts.write_json(staging / artifacts.CONFIG, cfg_json)
        artifacts.write_json(staging / artifacts.METRICS, metrics)
        from .engine import export_weights

        export_weights(model, staging / artifacts.WEIGHTS)
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise TransducerError(f"{model_dir}: cannot write the model ({e.strerror or e})") from None
    artifacts.publish(staging, model_dir)


def _keras_callback_base():
    from .model import keras

    return keras.callbacks.Callback


class _BestKeeper(_keras_callback_base()):
    """Early stopping that keeps the best weights in memory (so Ctrl-C keeps them too),
    records history, and forwards progress to the reporter."""

    def __init__(self, monitor: str, patience: int, min_delta: float, reporter: Reporter, epochs: int, steps: int):
        super().__init__()
        self.monitor, self.patience, self.min_delta, self.reporter = monitor, patience, min_delta, reporter
        self.epochs, self.steps = epochs, steps
        self.best = math.inf
        self.best_weights = None
        self.best_epoch = 0
        self.epochs_run = 0
        self.wait = 0
        self.stopped_early = False
        self.history: dict[str, list[float]] = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.reporter.epoch_begin(epoch + 1, self.epochs, self.steps)

    def on_train_batch_end(self, batch, logs=None):
        self.reporter.batch_end(batch + 1, dict(logs or {}))

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        self.epochs_run = epoch + 1
        current = logs.get(self.monitor, math.inf)
        # Patience counts epochs without a drop of min_delta; any drop still keeps the
        # better weights, so a slow last improvement is not thrown away.
        self.wait = 0 if current < self.best - self.min_delta else self.wait + 1
        if current < self.best or self.best_weights is None:
            self.best, self.best_epoch = current, epoch + 1
            self.best_weights = self.model.get_weights()
        if self.wait and self.wait >= self.patience:
            self.stopped_early = True
            self.model.stop_training = True
        self.reporter.epoch_end(epoch + 1, logs)
