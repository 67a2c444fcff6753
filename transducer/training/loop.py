"""Training: pairs file -> scan (vocabularies, split) -> tf.data stream -> model.fit,
one epoch at a time with checkpoints -> model directory.

The library never prints. Progress goes to a `Reporter` the caller passes in (the CLI's
are in progress.py: rich bars, plain lines or JSON rows on stderr); Keras's own progress
output is always off.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from transducer.core import artifacts
from transducer.training import checkpoint, distribute, recipe, stream
from transducer.core.config import ARCHITECTURE, ModelConfig, TrainConfig, TransducerError
from transducer.core.vocab import END_ID, PAD_ID, Vocab

EVAL_LIMIT = 5_000  # held-out pairs decoded at the end of training for exact match and CER
# Training steps per call into the compiled graph. Keras pays a fixed cost per call (~2 ms
# on 2 cores: more than a whole step of a small model on short, length-bucketed batches);
# 8 steps per call pay it once (bench/README.md, "8 steps per graph call"). Progress lines and
# Ctrl-C are noticed every 8 steps. 1 under --distribute, whose Keras 3 workarounds
# (distribute.py) are tested with one step per call.
STEPS_PER_EXECUTION = 8


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
    interrupted: bool  # stopped by SIGINT/SIGTERM: best model so far published, checkpoint kept
    stopped_early: bool  # early stopping ended training before --epochs
    stop_reason: str = ""  # why early stopping ended it, e.g. "validation loss did not improve ..."
    counts: dict = field(default_factory=dict)  # n_train, n_val, skipped, duplicates, conflicts
    signal: str | None = None  # "SIGINT" or "SIGTERM" when interrupted
    checkpoint: Path | None = None  # when interrupted: where --resume continues from
    resumed_from: int = 0  # epochs already done in the checkpoint this run resumed from
    train_seconds: float = 0.0  # wall time of this run's epochs (validation and checkpoints included)


def aligned_arrays(pairs, in_vocab: Vocab, out_vocab: Vocab, max_len: int):
    """Input ids padded with <pad>; target ids filled with </s> after the string."""
    x, _ = in_vocab.encode_batch([p[0] for p in pairs], max_len, fill=PAD_ID)  # (N, T)
    y, _ = out_vocab.encode_batch([p[1] for p in pairs], max_len, fill=END_ID)  # (N, T)
    return [x], [len(in_vocab)], y


def training_arrays(cfg: ModelConfig, pairs, in_vocab: Vocab, out_vocab: Vocab):
    """([int feature arrays], [one-hot depth per feature], target ids) for cfg.arch.

    The in-memory reference encoding: `train` streams instead (stream.assemble_features),
    and the tests check that both give the same features for the same pairs."""
    if cfg.arch == "seq2seq":
        from transducer.networks.seq2seq import seq2seq_arrays

        return seq2seq_arrays(pairs, in_vocab, out_vocab, cfg.max_len)
    if cfg.arch == "label":
        from transducer.networks.label import label_arrays

        return label_arrays(pairs, in_vocab, out_vocab, cfg.max_len)
    return aligned_arrays(pairs, in_vocab, out_vocab, cfg.max_len)


def train(
    pairs_path: str,
    model_dir: str | Path,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    val_path: str | None = None,
    force: bool = False,
    reporter: Reporter | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train a model on `pairs_path` (`-` for stdin) and publish it to `model_dir`.

    Each epoch is checkpointed into the staging area (see checkpoint.py). With `resume`,
    training continues from the last checkpoint of the same run. SIGINT/SIGTERM stop at
    the next batch and return a result with `interrupted` set and nothing published.
    """
    reporter = reporter or NullReporter()
    model_dir = Path(model_dir)
    # The strategy comes first: multi-worker collectives must be set up before any TF op.
    plan = distribute.make_plan(train_cfg.distribute, train_cfg.batch_size)
    if plan.is_chief:
        if not (resume or force) and checkpoint.exists(artifacts.staging_dir(model_dir)):
            raise TransducerError(
                f"{artifacts.staging_dir(model_dir)} holds the checkpoint of an interrupted run;"
                " pass --resume to continue it, or --force to start over"
            )
        # --resume continues a run that was already writing DIR, so it may replace it.
        artifacts.check_writable(model_dir, force or resume)

    # One pass to validate, count, split and build the vocabularies; the pairs themselves
    # are streamed from the file by tf.data (see stream.py).
    source = _init_source(train_cfg.init_from, model_cfg, train_cfg.member) if train_cfg.init_from else None
    split = 0.0 if val_path is not None else train_cfg.val_split
    form = model_cfg.normalize  # both sides of every pair, before lengths are checked
    labels = model_cfg.arch == "label"  # the output column is one label, not characters
    data = stream.scan_pairs(pairs_path, model_cfg.max_len, train_cfg.skip_invalid, split, train_cfg.seed, form, labels)
    val = None
    if val_path is not None:
        val = stream.scan_pairs(val_path, model_cfg.max_len, train_cfg.skip_invalid, 0.0, train_cfg.seed, form, labels)
    n_train, n_val = data.n_train, (val.n_rows if val is not None else data.n_val)
    if not n_train:
        raise TransducerError(
            f"{data.name}: {data.n_rows} pair(s) leave nothing to train on after the"
            f" validation split; lower --val-split or pass --val-file"
        )

    # Vocabularies come from training pairs only: validation characters the model never
    # saw in training are <unk>, exactly as they would be at prediction time.
    # --init-from keeps the source model's vocabularies (its weights are indexed by them).
    in_vocab, out_vocab = data.vocabs() if source is None else _source_vocabs(source, data)
    cfg = model_cfg.replace(input_vocab_size=len(in_vocab), output_vocab_size=len(out_vocab))
    unseen_labels = 0  # validation rows whose label no training row has: not in the val loss
    if labels:
        scorable = val.rows_with_labels("all", out_vocab) if val is not None else data.rows_with_labels("val", out_vocab)
        unseen_labels, n_val = n_val - scorable, scorable

    from transducer.networks.build import build_model, compile_model
    from transducer.networks.tf import keras, tf

    init_seed = train_cfg.seed + train_cfg.member  # an ensemble member's own weights and order
    keras.utils.set_random_seed(init_seed)
    tf.config.experimental.enable_op_determinism()

    # Non-chief workers write (and checkpoint) into a temp dir that is discarded at the end.
    written = distribute.output_dir(plan, model_dir)
    staging = artifacts.staging_dir(written)
    identity = {
        "model": cfg.to_dict(),
        "train": {k: v for k, v in train_cfg.to_dict().items() if k != "epochs"},
        "data": data.fingerprint + (val.fingerprint if val is not None else ""),
    }
    ckpt = _checkpoint_to_resume(staging, identity, resume, force)

    def pipeline(scan, side, shuffle_seed=None):
        ds = stream.pairs_dataset(
            scan, cfg, in_vocab, out_vocab, side, plan.global_batch, train_cfg.seed, shuffle_seed
        )
        return distribute.prepare_dataset(plan, ds)

    def dataset_for_epoch(epoch: int):
        # Re-seeded per epoch so a resumed run shuffles exactly like an uninterrupted one.
        return pipeline(data, "train", checkpoint.epoch_seed(init_seed, epoch))

    val_ds = None
    if val is not None and n_val:
        val_ds = pipeline(val, "all")
    elif n_val:
        val_ds = pipeline(data, "val")

    with plan.strategy.scope():
        model = build_model(cfg, cfg.variable_length)  # time axis None: length-bucketed batches
        if source is not None:
            _copy_weights(artifacts.load_keras_model(source), model)
        spe = STEPS_PER_EXECUTION if plan.mode == "none" else 1
        compile_model(model, train_cfg.learning_rate, cfg.masked, train_cfg.label_smoothing, spe)
    distribute.patch_for_strategy(plan, model, dataset_for_epoch(0).element_spec)

    counts = {
        "n_train": n_train,
        "n_val": n_val,
        "skipped": data.n_invalid,
        "skipped_detail": data.describe_invalid() if data.invalid else "",
        "skipped_by_kind": data.invalid_by_kind(),
        "duplicates": data.duplicates,
        "first_duplicate": data.first_duplicate,
        "conflicts": data.conflicts,
        "first_conflict": data.first_conflict,
        "unseen_labels": unseen_labels,
        "input_vocab": len(in_vocab),
        "output_vocab": len(out_vocab),
        "parameters": int(model.count_params()),
        # --init-from: training input characters the source model never saw (read as <unk>)
        "unseen_input_chars": "".join(sorted(data.in_chars - set(in_vocab.symbols))) if source else "",
        **plan.counts(),  # distribute, replicas, global_batch, is_chief
    }

    steps = math.ceil(n_train / plan.global_batch)
    monitor = "val_loss" if val_ds is not None else "loss"
    keeper = _BestKeeper(train_cfg, monitor, reporter, train_cfg.epochs, steps)
    start = checkpoint.restore(ckpt, model, keeper) if ckpt else 0
    counts["resumed_from"] = start
    reporter.start(counts)
    started = time.time()
    with checkpoint.StopOnSignals() as stopper:
        interrupted = checkpoint.fit_epochs(
            model, dataset_for_epoch, val_ds, [keeper, checkpoint.saver(staging, identity, keeper)],
            start, train_cfg.epochs, stopper, finished=lambda: keeper.stopped_early,
        )
    fit_seconds = time.time() - started  # the epochs (with validation and checkpoints) only
    if interrupted and not checkpoint.exists(staging):
        shutil.rmtree(staging, ignore_errors=True)
        raise TransducerError(
            f"{stopper.signal}: stopped before the first epoch finished; nothing saved",
            stopper.exit_code,
        )
    # Interrupted or not, the best weights so far are evaluated and published; after a
    # signal the checkpoint stays too, so --resume can go on from the last epoch.
    if keeper.best_weights is not None:
        model.set_weights(keeper.best_weights)

    final = {}
    eval_ds = val_ds if val_ds is not None else pipeline(data, "train")  # one pass, file order
    results = model.evaluate(eval_ds, verbose=0, return_dict=True)
    final = {k: float(v) for k, v in results.items()}
    from transducer.inference.evaluate import validation_metrics  # decoded strings: exact match and CER

    info = artifacts.ModelInfo(model_dir, cfg, in_vocab, out_vocab, {})
    # Decoded metrics need strings: read (up to) 5,000 held-out pairs back from the file.
    held_out = stream.iter_pairs(val, "all", EVAL_LIMIT) if val is not None else (
        stream.iter_pairs(data, "val" if n_val else "train", EVAL_LIMIT)
    )
    if plan.mode != "none":
        # Decoding builds inference models from the trained layers; do that on a plain copy,
        # outside the strategy whose mirrored variables Keras cannot call step by step.
        plain = build_model(cfg, cfg.variable_length)
        plain.set_weights(model.get_weights())
    else:
        plain = model
    final.update(validation_metrics(plain, info, list(held_out)))

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
        "stop_reason": keeper.stop_reason,
        "interrupted": interrupted,
        "resumed_from_epoch": start,
        "train_seconds": round(fit_seconds, 2),
    }
    # Every worker saves (saving reads synchronised variables, a collective op); only the
    # chief's copy is kept.
    save_model_dir(model, cfg_json, metrics, written, keep_checkpoint=interrupted)
    distribute.discard(plan, written)
    return TrainResult(
        model_dir=model_dir,
        history=history,
        final=final,
        best_epoch=keeper.best_epoch,
        epochs_run=keeper.epochs_run,
        interrupted=interrupted,
        stopped_early=keeper.stopped_early,
        stop_reason=keeper.stop_reason,
        counts=counts,
        signal=stopper.signal if interrupted else None,
        checkpoint=checkpoint.checkpoint_dir(staging) if interrupted else None,
        resumed_from=start,
        train_seconds=metrics["train_seconds"],
    )


def _init_source(model_dir: str, model_cfg: ModelConfig, member: int = 0) -> artifacts.ModelInfo:
    """The model --init-from starts from, checked against this run's architecture. From an
    ensemble, member k (0-based `member`) starts from its member k, cycling when this run
    has more members than it: continuing an ensemble continues every member, not copies
    of the first."""
    members = artifacts.read_members(artifacts.read_info(model_dir))
    source = members[member % len(members)]
    diffs = [
        f"{key} {getattr(source.model, key)!r} there, {getattr(model_cfg, key)!r} here"
        for key in ARCHITECTURE
        if getattr(source.model, key) != getattr(model_cfg, key)
    ]
    if diffs:
        raise TransducerError(
            f"--init-from {model_dir}: its architecture differs from this run's ({'; '.join(diffs)})"
        )
    return source


def _source_vocabs(source: artifacts.ModelInfo, data) -> tuple[Vocab, Vocab]:
    """The source model's vocabularies, if they can hold the new data: new input
    characters are read as <unk> (counted in the start report), but an output character
    the model cannot write is an error."""
    unseen = sorted(data.out_chars - set(source.output_vocab.symbols))
    if unseen:
        shown = ", ".join(repr(c) for c in unseen[:10]) + (" ..." if len(unseen) > 10 else "")
        raise TransducerError(
            f"--init-from {source.path}: {data.name} has {len(unseen)} output character(s) the"
            f" model cannot write ({shown}); train a new model instead"
        )
    return source.input_vocab, source.output_vocab


def _copy_weights(trained, model) -> None:
    """Every weighted layer's weights from the trained source model, by layer name."""
    for layer in trained.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())


def _checkpoint_to_resume(staging: Path, identity: dict, resume: bool, force: bool):
    """The checkpoint --resume continues from; a fresh run clears the staging area, but
    never throws away an interrupted run's checkpoint silently."""
    if resume:
        ckpt = checkpoint.load(staging)
        if ckpt is None:
            raise TransducerError(
                f"cannot --resume: no checkpoint in {checkpoint.checkpoint_dir(staging)}"
                " (the run finished, or stopped before its first epoch); train without --resume"
            )
        checkpoint.check_identity(ckpt, identity)
        return ckpt
    if checkpoint.exists(staging) and not force:
        raise TransducerError(
            f"{staging} holds the checkpoint of an interrupted run; pass --resume to continue"
            " it, or --force to start over"
        )
    shutil.rmtree(staging, ignore_errors=True)
    return None


def save_model_dir(model, cfg_json: dict, metrics: dict, model_dir: Path, keep_checkpoint: bool = False) -> None:
    """Stage every file of the model directory in DIR.partial/final/, publish it with one
    rename, then drop the staging area (checkpoints included) unless the run was
    interrupted and may be resumed."""
    staging = artifacts.staging_dir(model_dir)
    final = staging / "final"
    try:
        shutil.rmtree(final, ignore_errors=True)
        final.mkdir(parents=True)
        model.save(final / artifacts.MODEL)
        artifacts.write_json(final / artifacts.CONFIG, cfg_json)
        artifacts.write_json(final / artifacts.METRICS, metrics)
        from transducer.inference.engine import export_weights

        export_weights(model, final / artifacts.WEIGHTS)
    except OSError as e:
        shutil.rmtree(final, ignore_errors=True)
        raise TransducerError(f"{model_dir}: cannot write the model ({e.strerror or e})") from None
    artifacts.publish(final, model_dir)
    if not keep_checkpoint:
        shutil.rmtree(staging, ignore_errors=True)


def current_learning_rate(model) -> float:
    """The optimizer's learning rate now: its value, or its schedule's at the current step."""
    from transducer.networks.tf import keras

    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def _keras_callback_base():
    from transducer.networks.tf import keras

    return keras.callbacks.Callback


class _BestKeeper(_keras_callback_base()):
    """Carries out recipe.judge's decisions: keeps the best weights in memory (so Ctrl-C
    keeps them too), lowers the learning rate, stops; records history (learning rate
    included) and forwards progress to the reporter."""

    def __init__(self, cfg: TrainConfig, monitor: str, reporter: Reporter, epochs: int, steps: int):
        super().__init__()
        self.cfg, self.monitor, self.reporter = cfg, monitor, reporter
        self.epochs, self.steps = epochs, steps
        self.progress = recipe.Progress()
        self.best_weights = None

    # What train and checkpoint read: the state lives in self.progress.
    best_epoch = property(lambda self: self.progress.best_epoch)
    epochs_run = property(lambda self: self.progress.epochs_run)
    stopped_early = property(lambda self: self.progress.stopped_early)
    stop_reason = property(lambda self: self.progress.stop_reason)
    history = property(lambda self: self.progress.history)

    def state(self) -> dict:
        return self.progress.state()

    def load_state(self, state: dict) -> None:
        self.progress.load_state(state)

    def on_epoch_begin(self, epoch, logs=None):
        rate = recipe.scheduled_rate(self.cfg, epoch + 1)
        if rate is not None:
            self.model.optimizer.learning_rate = rate
        self.reporter.epoch_begin(epoch + 1, self.epochs, self.steps)

    def on_train_batch_end(self, batch, logs=None):
        self.reporter.batch_end(batch + 1, dict(logs or {}))

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        optimizer = self.model.optimizer
        # The rate this epoch ran with (a schedule's current value), unless a callback
        # already logged it; kept in the history like the metrics.
        logs.setdefault("learning_rate", current_learning_rate(self.model))
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        exact = logs.get("val_exact_match") if self.monitor == "val_loss" else None
        decision = recipe.judge(self.cfg, self.progress, epoch + 1, logs.get(self.monitor, math.inf), exact)
        if decision.keep_weights:
            self.best_weights = self.model.get_weights()
        if decision.lower_lr:
            optimizer.learning_rate = logs["learning_rate"] * self.cfg.lr_factor
        if decision.stop:
            self.model.stop_training = True
        self.reporter.epoch_end(epoch + 1, logs)
