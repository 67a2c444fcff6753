"""Training: pairs file -> scan (vocabularies, split) -> tf.data stream -> model.fit,
one epoch at a time with checkpoints -> model directory.

An edit model (--arch edit) reads its pairs into memory instead of streaming them: its
expert's answers are precomputed once per run (edit_data.py).

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
from transducer.training import checkpoint, distribute, edit_data, recipe, rollin, stream
from transducer.core.config import ARCHITECTURE, ModelConfig, OutputLength, TrainConfig, TransducerError
from transducer.core.vocab import END_ID, PAD_ID, Vocab
from transducer.inference.evaluate import validation_metrics  # decoded strings: exact match and CER
from transducer.inference.numpy_engine import NumpyEngine  # roll-in walks with the weights being trained
from transducer.networks.export import export_weights, weight_arrays
from transducer.networks.build import build_model, compile_model
from transducer.networks.edit import ActionKinds
from transducer.networks.label import label_arrays
from transducer.networks.saved import load_keras_model
from transducer.networks.seq2seq import seq2seq_arrays
from transducer.networks.tf import keras, tf

EVAL_LIMIT = 5_000  # held-out pairs decoded at the end of training for exact match and CER
# Training steps per call into the compiled graph. Keras pays a fixed cost per call (~2 ms
# on 2 cores: more than a whole step of a small model on short, length-bucketed batches);
# 8 steps per call pay it once (docs/benchmarks/index.md, "Epoch time"). Progress lines
# are updated every 8 steps (Ctrl-C is answered at once all the same: checkpoint.StopOnSignals).
# 1 under --distribute, whose Keras 3 workarounds (distribute.py) are tested with one step per call.
STEPS_PER_EXECUTION = 8


class Reporter(Protocol):
    """Receives progress; every method may be a no-op.

    Two more are optional (looked up, so older reporters need not have them) and are called
    from another thread, at once, when SIGINT/SIGTERM arrive (checkpoint.StopOnSignals):
    `stopping(info)` on the first ({"signal", "phase"}: "training", the epoch in progress
    finishes; "saving", the trained model is being saved), `stopped(info)` on a second
    (`stopped_now`'s dict: what was kept). No file is being written during `stopped`, so a
    reporter may end the process there (the command line's do)."""

    def start(self, info: dict) -> None: ...  # once, with sizes and counts, before epoch 1
    def epoch_begin(self, epoch: int, epochs: int, steps: int) -> None: ...  # epoch is 1-based
    def batch_end(self, step: int, logs: dict) -> None: ...  # step is 1-based within the epoch
    def epoch_end(self, epoch: int, logs: dict) -> None: ...  # logs incl. val_* metrics


class Teaching(Protocol):
    """What a token-level --teacher run adds to an ordinary one (training/distill.py)."""

    info: artifacts.ModelInfo  # the teacher: the student takes its vocabularies
    identity: dict  # what a checkpoint of this run must match to be resumed (teacher, weight)
    aligner_dir: Path | None  # an edit student's aligner comes from here (the teacher's)

    def trainer(self, student) -> object: ...  # the keras.Model fit trains; only `student` is published


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
    train_seconds: float = 0.0  # wall time of the epochs (validation and checkpoints included), over every run
    resumed_seconds: float = 0.0  # of train_seconds, the earlier runs' (up to the checkpoint resumed from)


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
        return seq2seq_arrays(pairs, in_vocab, out_vocab, cfg.max_len)
    if cfg.arch == "label":
        return label_arrays(pairs, in_vocab, out_vocab, cfg.max_len)
    return aligned_arrays(pairs, in_vocab, out_vocab, cfg.max_len)


@dataclass
class Prepared:
    """Training data after one pass over the files: what every later step reads."""

    data: stream.ScannedPairs  # the training file, scanned (and split, without a val file)
    val: stream.ScannedPairs | None  # the --val-file, scanned; None: the split's held-out side
    cfg: ModelConfig  # the run's config with its vocabulary sizes filled in
    in_vocab: Vocab  # input characters (training pairs only, or the --init-from model's)
    out_vocab: Vocab  # output characters or labels
    source: artifacts.ModelInfo | None  # the --init-from model (member), if any
    n_val: int  # validation rows that can be scored
    unseen_labels: int  # validation rows whose label no training row has (not scored)

    @property
    def n_train(self) -> int:
        return self.data.n_train


def scan_data(pairs_path: str, model_cfg: ModelConfig, train_cfg: TrainConfig, val_path: str | None = None):
    """(training scan, validation scan or None): one pass each, validating every row in
    the form the model sees (normalize), with labels for a label model. Every member of
    an ensemble, and the ensemble's own validation, reads its pairs through here."""
    split = 0.0 if val_path is not None else train_cfg.val_split
    form, labels = model_cfg.normalize, model_cfg.arch == "label"
    data = stream.scan_pairs(pairs_path, model_cfg.max_len, train_cfg.skip_invalid, split, train_cfg.seed, form, labels)
    val = None
    if val_path is not None:
        val = stream.scan_pairs(val_path, model_cfg.max_len, train_cfg.skip_invalid, 0.0, train_cfg.seed, form, labels)
    return data, val


def held_out_pairs(data: stream.ScannedPairs, val: stream.ScannedPairs | None, limit: int = EVAL_LIMIT) -> list:
    """Up to `limit` validation pairs as strings (the training pairs when nothing is held
    out), for decoded metrics."""
    if val is not None:
        return list(stream.iter_pairs(val, "all", limit))
    return list(stream.iter_pairs(data, "val" if data.n_val else "train", limit))


def prepare(
    pairs_path: str, model_cfg: ModelConfig, train_cfg: TrainConfig, val_path: str | None, scanned=None,
    teaching: Teaching | None = None,
) -> Prepared:
    """Step 1: scan the pairs, split them and build the vocabularies. scanned: scan_data's
    result for these files, already made (an ensemble scans once for all its members).
    teaching: the student's vocabularies are the teacher's."""
    source = _init_source(train_cfg.init_from, model_cfg, train_cfg.member) if train_cfg.init_from else None
    data, val = scanned if scanned is not None else scan_data(pairs_path, model_cfg, train_cfg, val_path)
    n_val = val.n_rows if val is not None else data.n_val
    if not data.n_train:
        raise TransducerError(
            f"{data.name}: {data.n_rows} pair(s) leave nothing to train on after the"
            f" validation split; lower --val-split or pass --val-file"
        )
    # Vocabularies come from training pairs only: validation characters the model never
    # saw in training are <unk>, exactly as they would be at prediction time.
    # --init-from keeps the source model's vocabularies (its weights are indexed by them).
    # So does a --teacher's student (its loss compares the two models' distributions).
    vocab_source = teaching.info if teaching is not None else source
    option = "--teacher" if teaching is not None else "--init-from"
    in_vocab, out_vocab = data.vocabs() if vocab_source is None else _source_vocabs(vocab_source, data, option)
    if model_cfg.arch == "edit":  # its output is edit actions, over the output characters
        out_vocab = edit_data.training_actions(data.out_chars) if vocab_source is None else vocab_source.output_vocab
    cfg = model_cfg.replace(input_vocab_size=len(in_vocab), output_vocab_size=len(out_vocab))
    unseen_labels = 0
    if model_cfg.arch == "label":
        scorable = val.rows_with_labels("all", out_vocab) if val is not None else data.rows_with_labels("val", out_vocab)
        unseen_labels, n_val = n_val - scorable, scorable
    return Prepared(data, val, cfg, in_vocab, out_vocab, source, n_val, unseen_labels)


@dataclass
class Run:
    """Everything `fit` and `publish` need: the compiled model, its data and its state."""

    prep: Prepared
    train_cfg: TrainConfig
    plan: distribute.Plan  # the tf.distribute strategy and batch sizes
    model: object  # the compiled keras.Model (the one published)
    trainer: object  # the compiled keras.Model fit trains: `model`, or a --teacher run's wrapper of it
    keeper: "_BestKeeper"  # best weights, early stopping, history
    written: Path  # where this worker publishes (the chief: model_dir)
    staging: Path  # checkpoints of this run
    identity: dict  # what a checkpoint must match to be resumed
    ckpt: object  # the checkpoint to resume from, or None
    dataset_for_epoch: object  # epoch -> that epoch's shuffled training dataset
    val_ds: object  # the validation dataset, or None
    pipeline: object  # (scan, side) -> dataset
    edit: edit_data.EditData | None = None  # an edit model's aligner and expert answers


def build(prep: Prepared, train_cfg: TrainConfig, plan, model_dir: Path, resume: bool, force: bool, reporter,
          aligner_from: Path | None = None, teaching: Teaching | None = None) -> Run:
    """Step 2: seed, make the datasets, build and compile the model, find the checkpoint.
    aligner_from: an edit model's aligner comes from this model directory (see edit_data)."""
    cfg, init_seed = prep.cfg, train_cfg.seed + train_cfg.member  # an ensemble member's own weights and order
    resample = member_resample(train_cfg)
    rows = epoch_rows(prep, resample)
    if not rows:  # only a draw can leave an epoch empty (prepare refuses data without training pairs)
        larger = " or a larger --subsample" if resample.keep else ""
        raise TransducerError(f"{prep.data.name}: {resample.name} drew none of the {prep.n_train} training"
                              f" pair(s); train on more pairs{larger}")
    keras.utils.set_random_seed(init_seed)
    tf.config.experimental.enable_op_determinism()
    # Non-chief workers write (and checkpoint) into a temp dir that is discarded at the end.
    written = distribute.output_dir(plan, model_dir)
    staging = artifacts.staging_dir(written)
    identity = {
        "model": cfg.to_dict(),
        "train": {k: v for k, v in train_cfg.to_dict().items() if k != "epochs"},
        "data": prep.data.fingerprint + (prep.val.fingerprint if prep.val is not None else ""),
    }
    if teaching is not None:
        identity["train"]["teacher"] = teaching.identity
    ckpt = _checkpoint_to_resume(staging, identity, resume, force)
    edit, kinds = None, None
    if cfg.arch == "edit":
        reuse = prep.source.path if prep.source is not None else aligner_from
        if teaching is not None:  # the teacher's members are fed the student's expert path
            reuse = teaching.aligner_dir
        edit = edit_data.prepare_edit(prep, staging, ckpt is not None, reuse, resample)
        kinds = ActionKinds.of(edit.actions)

    def pipeline(scan, side, shuffle_seed=None, arrays=None):
        if edit is not None:
            if arrays is None:
                arrays = edit.train if scan is prep.data and side == "train" else edit.val
            ds = edit_data.edit_dataset(arrays, (len(prep.in_vocab), len(edit.actions)), plan.global_batch,
                                        cfg.max_len, shuffle_seed)
        else:
            ds = stream.pairs_dataset(
                scan, cfg, prep.in_vocab, prep.out_vocab, side, plan.global_batch, train_cfg.seed, shuffle_seed,
                resample=resample,
            )
        return distribute.prepare_dataset(plan, ds)

    roll = rollin.RollIn(edit.train_pairs, edit.train, edit.expert, cfg.max_len) if edit and train_cfg.rollin else None

    def dataset_for_epoch(epoch: int):
        # Re-seeded per epoch so a resumed run shuffles (and rolls in) like an uninterrupted one.
        seed = checkpoint.epoch_seed(init_seed, epoch)
        p_expert = rollin.expert_probability(train_cfg.rollin, epoch)
        if roll is None or p_expert >= 1.0:
            return pipeline(prep.data, "train", seed)
        # The model being trained walks the training pairs on its current weights (numpy engine).
        info = artifacts.ModelInfo(staging, cfg, prep.in_vocab, edit.actions, {})
        return pipeline(prep.data, "train", seed, roll.arrays(NumpyEngine(info, weight_arrays(model)), p_expert, seed))

    val_ds = None
    if prep.n_val and (edit is None or edit.val is not None):
        val_ds = pipeline(prep.val, "all") if prep.val is not None else pipeline(prep.data, "val")
    with plan.strategy.scope():
        model = build_model(cfg, cfg.variable_length, kinds)  # time axis None: length-bucketed batches
        if prep.source is not None:
            copy_weights(load_keras_model(prep.source), model)
        spe = STEPS_PER_EXECUTION if plan.mode == "none" else 1
        compile_model(model, train_cfg.learning_rate, cfg.masked, train_cfg.label_smoothing, spe)
        trainer = model
        if teaching is not None:
            trainer = teaching.trainer(model)
            compile_model(trainer, train_cfg.learning_rate, cfg.masked, train_cfg.label_smoothing, spe, like=model)
    distribute.patch_for_strategy(plan, trainer, dataset_for_epoch(0).element_spec)
    steps = math.ceil(rows / plan.global_batch)
    monitor = "val_loss" if val_ds is not None else "loss"
    keeper = _BestKeeper(train_cfg, monitor, reporter, train_cfg.epochs, steps)
    return Run(prep, train_cfg, plan, model, trainer, keeper, written, staging, identity, ckpt, dataset_for_epoch,
               val_ds, pipeline, edit)


def member_resample(train_cfg: TrainConfig) -> stream.Resample | None:
    """--bootstrap or --subsample: this member's draw of training rows, seeded as its weights are."""
    if not (train_cfg.bootstrap or train_cfg.subsample < 1.0):
        return None
    return stream.Resample(train_cfg.seed + train_cfg.member, 0.0 if train_cfg.bootstrap else train_cfg.subsample)


def epoch_rows(prep: Prepared, resample: stream.Resample | None) -> int:
    """Training rows one epoch holds: the training pairs, or as many as the member's draw
    (--bootstrap, --subsample) holds."""
    if resample is None:
        return prep.n_train
    labels = prep.out_vocab if prep.cfg.arch == "label" else None
    return stream.resampled_rows(prep.data, resample, labels)


def resample_counts(run: Run) -> dict:
    """{"resampled": what drew the rows, "resampled_rows": rows an epoch holds}, or {}
    without --bootstrap or --subsample."""
    resample = member_resample(run.train_cfg)
    if resample is None:
        return {}
    return {"resampled": resample.name, "resampled_rows": epoch_rows(run.prep, resample)}


def start_counts(run: Run) -> dict:
    """The sizes and counts train's start report shows."""
    data = run.prep.data
    return {
        "n_train": data.n_train,
        "n_val": run.prep.n_val,
        **resample_counts(run),
        "skipped": data.n_invalid,
        "skipped_detail": data.describe_invalid() if data.invalid else "",
        "skipped_by_kind": data.invalid_by_kind(),
        "duplicates": data.duplicates,
        "first_duplicate": data.first_duplicate,
        "conflicts": data.conflicts,
        "first_conflict": data.first_conflict,
        "unseen_labels": run.prep.unseen_labels,
        "input_vocab": len(run.prep.in_vocab),
        "output_vocab": len(run.prep.out_vocab),
        "parameters": int(run.model.count_params()),
        # --init-from: training input characters the source model never saw (read as <unk>)
        "unseen_input_chars": "".join(sorted(data.in_chars - set(run.prep.in_vocab.symbols))) if run.prep.source else "",
        **run.plan.counts(),  # distribute, replicas, global_batch, is_chief
    }


@dataclass
class Fitted:
    interrupted: bool  # a signal stopped training
    start: int  # epochs already done in the checkpoint this run resumed from
    seconds: float  # wall time of the epochs (validation and checkpoints included), over every run
    earlier: float  # of seconds, the earlier runs' (the checkpoint's record)
    signal: str | None  # "SIGINT" or "SIGTERM" when interrupted
    counts: dict  # what the start report showed


def fit(run: Run, reporter: Reporter, stopper: checkpoint.StopOnSignals) -> Fitted:
    """Step 3: the epochs, checkpointed (the trainer's variables are the model's: a teacher is
    frozen and not tracked, so checkpoints hold the published model's weights only); stops early, or after the epoch in progress on
    SIGINT/SIGTERM. Each checkpoint records the training time so far, so a resumed run's
    time counts the earlier runs' too."""
    start = checkpoint.restore(run.ckpt, run.trainer, run.keeper) if run.ckpt else 0
    earlier = run.ckpt.seconds if run.ckpt else 0.0
    counts = {**start_counts(run), "resumed_from": start}
    reporter.start(counts)
    started = time.monotonic()
    clock = lambda: earlier + time.monotonic() - started  # noqa: E731
    callbacks = [run.keeper, checkpoint.saver(run.staging, run.identity, run.keeper, stopper, clock)]
    interrupted = checkpoint.fit_epochs(
        run.trainer, run.dataset_for_epoch, run.val_ds, callbacks, start, run.train_cfg.epochs, stopper,
        finished=lambda: run.keeper.stopped_early,
    )
    seconds = clock()  # the epochs (with validation and checkpoints) only
    if interrupted and not checkpoint.exists(run.staging):
        shutil.rmtree(run.staging, ignore_errors=True)
        raise TransducerError(f"{stopper.signal}: stopped before the first epoch finished; nothing saved", stopper.exit_code)
    return Fitted(interrupted, start, seconds, earlier, stopper.signal if interrupted else None, counts)


def stopped_now(run: Run, model_dir: Path, stopper: checkpoint.StopOnSignals) -> dict:
    """What a second signal leaves (called while no file is written, see StopOnSignals):
    {"model_dir", "published", "phase", "epoch" (the one in progress), "when" (e.g.
    "during epoch 3"), "checkpoint" (its directory, or None: nothing was kept, and the
    staging area is removed), "kept_epoch", "best_epoch", "message"}."""
    last = checkpoint.latest(run.staging)
    kept = checkpoint.checkpoint_dir(run.staging) if last else None
    published = stopper.phase == "done"
    if last is None and not published:
        shutil.rmtree(run.staging, ignore_errors=True)
    epoch = stopper.epoch or (last["epoch"] + 1 if last else 1)
    when = f"during epoch {epoch}"
    if stopper.phase != "training":
        when = "while saving the model"
    elif last is not None and last["epoch"] >= epoch:  # the epoch ended and was checkpointed
        when = f"after epoch {last['epoch']}"
    if published:
        said = f"stopped after the model was saved to {model_dir}"
    elif last is None:
        said = f"stopped {when}; nothing was kept and {model_dir} is as it was"
    else:
        said = (
            f"stopped {when}; {model_dir} is as it was; kept the checkpoint of epoch {last['epoch']} (best model"
            f" so far: epoch {last['best_epoch']}) in {kept}. Train again with --resume to continue, or with"
            f" --resume --epochs {last['epoch']} to publish the best model so far"
        )
    return {
        "model_dir": str(model_dir), "published": published, "phase": stopper.phase, "epoch": epoch, "when": when,
        "checkpoint": str(kept) if kept else None, "kept_epoch": last["epoch"] if last else 0,
        "best_epoch": last["best_epoch"] if last else 0, "message": f"{stopper.signal}: {said}",
    }


def final_metrics(run: Run) -> dict:
    """The best weights' metrics on the validation data (the training data when none is
    held out): Keras's, plus decoded exact match and CER from up to EVAL_LIMIT pairs."""
    prep, model = run.prep, run.model
    eval_ds = run.val_ds if run.val_ds is not None else run.pipeline(prep.data, "train")  # one pass, file order
    final = {k: float(v) for k, v in model.evaluate(eval_ds, verbose=0, return_dict=True).items()}
    if run.plan.mode != "none":
        # Decoding builds inference models from the trained layers; do that on a plain copy,
        # outside the strategy whose mirrored variables Keras cannot call step by step.
        plain = build_model(prep.cfg, prep.cfg.variable_length, ActionKinds.of(run.edit.actions) if run.edit else None)
        plain.set_weights(model.get_weights())
    else:
        plain = model
    # Decoded as the published model will decode: with the learned output length bound.
    info = artifacts.ModelInfo(Path(run.written), prep.cfg, prep.in_vocab, prep.out_vocab, {"data": learned_length(prep)})
    final.update(validation_metrics(weight_arrays(plain), info, held_out_pairs(prep.data, prep.val)))
    return final


def learned_length(prep: Prepared) -> dict:
    """config.json's learned output length (its "data" entry's `output_length`) for the architectures whose output length is
    searched (seq2seq, edit), else nothing."""
    if prep.cfg.arch not in ("seq2seq", "edit"):
        return {}
    return {"output_length": OutputLength.learned(prep.data.output_ratio).to_dict()}


def publish(run: Run, model_dir: Path, val_path: str | None, fitted: Fitted,
            stopper: checkpoint.StopOnSignals) -> TrainResult:
    """Step 4: keep the best weights, measure them, write and publish the model directory
    (under the stopper's guard: a second signal waits for it; its phase is "done" after)."""
    interrupted, start = fitted.interrupted, fitted.start
    # Interrupted or not, the best weights so far are evaluated and published; after a
    # signal the checkpoint stays too, so --resume can go on from the last epoch.
    keeper, prep = run.keeper, run.prep
    if keeper.best_weights is not None:
        run.model.set_weights(keeper.best_weights)
    final = final_metrics(run)
    data = {
        "train_file": prep.data.name,
        "val_file": val_path,
        "n_train": prep.n_train,
        "n_val": prep.n_val,
        "final_on": "validation" if run.val_ds is not None else "training",
    }
    data.update(learned_length(prep))
    data.update(resample_counts(run))
    cfg_json = artifacts.config_dict(prep.cfg, prep.in_vocab, prep.out_vocab, train=run.train_cfg.to_dict(), data=data)
    history = {k: [float(v) for v in vals] for k, vals in keeper.history.items()}
    metrics = {
        "history": history, "final": final, "best_epoch": keeper.best_epoch, "epochs_run": keeper.epochs_run,
        "stop_reason": keeper.stop_reason, "interrupted": interrupted, "resumed_from_epoch": start,
        "train_seconds": round(fitted.seconds, 2), "resumed_seconds": round(fitted.earlier, 2),
    }
    # Every worker saves (saving reads synchronised variables, a collective op); only the
    # chief's copy is kept.
    extra = {artifacts.ALIGNER: run.edit.aligner.to_dict()} if run.edit is not None else {}
    with stopper.guard():
        save_model_dir(run.model, cfg_json, metrics, run.written, keep_checkpoint=interrupted, extra=extra)
        stopper.phase = "done"
    distribute.discard(run.plan, run.written)
    return TrainResult(
        model_dir=model_dir, history=history, final=final, best_epoch=keeper.best_epoch,
        epochs_run=keeper.epochs_run, interrupted=interrupted, stopped_early=keeper.stopped_early,
        stop_reason=keeper.stop_reason, counts=fitted.counts, signal=fitted.signal,
        checkpoint=checkpoint.checkpoint_dir(run.staging) if interrupted else None, resumed_from=start,
        train_seconds=metrics["train_seconds"], resumed_seconds=metrics["resumed_seconds"],
    )


def train(
    pairs_path: str,
    model_dir: str | Path,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    val_path: str | None = None,
    force: bool = False,
    reporter: Reporter | None = None,
    resume: bool = False,
    aligner_from: Path | None = None,
    scanned: tuple | None = None,
    teaching: Teaching | None = None,
) -> TrainResult:
    """Train a model on `pairs_path` (`-` for stdin) and publish it to `model_dir`, in four
    steps: prepare (scan and vocabularies), build, fit, publish. scanned: scan_data(...)
    of the same files and options, when the caller has it (ensemble members). teaching: a
    token-level --teacher (training/distill.py), whose wrapper of the model is what trains.

    Each epoch is checkpointed into the staging area (see checkpoint.py). With `resume`,
    training continues from the last checkpoint of the same run. A first SIGINT/SIGTERM
    stops after the epoch in progress: the best model so far is published and the
    checkpoint kept (TrainResult.interrupted). A second one stops now: TransducerError
    (exit_code 130/143) saying what was kept; the reporter's `stopped` is told first.
    aligner_from: an edit model reuses this model directory's aligner instead of fitting
    one (ensemble members 2..N: member 1's).
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
    prep = prepare(pairs_path, model_cfg, train_cfg, val_path, scanned, teaching)
    run = build(prep, train_cfg, plan, model_dir, resume, force, reporter, aligner_from, teaching)
    return _fit_and_publish(run, model_dir, val_path, reporter)


def _fit_and_publish(run: Run, model_dir: Path, val_path: str | None, reporter) -> TrainResult:
    """Steps 3 and 4 with SIGINT/SIGTERM caught (checkpoint.StopOnSignals): the reporter
    hears of each signal at once; a second one ends here with what was kept."""

    def notify(event: str, info: dict) -> None:
        tell = getattr(reporter, event, None)  # optional Reporter methods: stopping, stopped
        if tell is not None:
            tell(info)

    stopper = checkpoint.StopOnSignals(notify)
    stopper.kept = lambda: stopped_now(run, model_dir, stopper)
    try:
        with stopper:
            fitted = fit(run, reporter, stopper)
            stopper.phase = "saving"
            return publish(run, model_dir, val_path, fitted, stopper)
    except KeyboardInterrupt:
        if not stopper.now:  # not a second signal (e.g. one before the handlers were set)
            raise
        stopper.close()
        info = stopper.stopped_info()
        raise TransducerError(info["message"], info["exit_code"]) from None


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


def _source_vocabs(source: artifacts.ModelInfo, data, option: str = "--init-from") -> tuple[Vocab, Vocab]:
    """The source model's vocabularies, if they can hold the new data: new input
    characters are read as <unk> (counted in the start report), but an output character
    the model cannot write is an error (naming `option`, where the model came from; an edit
    model: one it has no action for; it may still copy it, but the expert would teach it to)."""
    written = source.output_vocab.chars if source.model.arch == "edit" else source.output_vocab.symbols
    unseen = sorted(data.out_chars - set(written))
    if unseen:
        shown = ", ".join(repr(c) for c in unseen[:10]) + (" ..." if len(unseen) > 10 else "")
        raise TransducerError(
            f"{option} {source.path}: {data.name} has {len(unseen)} output character(s) the"
            f" model cannot write ({shown}); "
            + ("train a new model instead" if option == "--init-from" else "a student writes only its teacher's characters")
        )
    return source.input_vocab, source.output_vocab


def copy_weights(trained, model) -> None:
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


def save_model_dir(model, cfg_json: dict, metrics: dict, model_dir: Path, keep_checkpoint: bool = False,
                   extra: dict | None = None) -> None:
    """Stage every file of the model directory in DIR.partial/final/, publish it with one
    rename, then drop the staging area (checkpoints included) unless the run was
    interrupted and may be resumed. extra: more JSON files, name -> content (an edit
    model's aligner.json)."""
    staging = artifacts.staging_dir(model_dir)
    final = staging / "final"
    try:
        shutil.rmtree(final, ignore_errors=True)
        final.mkdir(parents=True)
        model.save(final / artifacts.MODEL)
        artifacts.write_json(final / artifacts.CONFIG, cfg_json)
        artifacts.write_json(final / artifacts.METRICS, metrics)
        export_weights(model, final / artifacts.WEIGHTS)
        for name, content in (extra or {}).items():
            artifacts.write_json(final / name, content)
    except OSError as e:
        shutil.rmtree(final, ignore_errors=True)
        raise TransducerError(f"{model_dir}: cannot write the model ({e.strerror or e})") from None
    artifacts.publish(final, model_dir)
    if not keep_checkpoint:
        shutil.rmtree(staging, ignore_errors=True)


def current_learning_rate(model) -> float:
    """The optimizer's learning rate now: its value, or its schedule's at the current step."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class _BestKeeper(keras.callbacks.Callback):
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
        # With steps_per_execution Keras reports the last step of each call as if every call
        # were whole, so an epoch's last call may claim steps past the end: capped here.
        self.reporter.batch_end(min(batch + 1, self.steps), dict(logs or {}))

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
