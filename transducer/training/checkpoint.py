"""Resumable training: per-epoch checkpoints, `--resume`, and stopping cleanly on signals.

A checkpoint lives in the model's staging area (artifacts.staging_dir), never in the
published model directory, so the previous model in DIR stays untouched until a run
finishes (or a signal stops it, which publishes the best model so far):

    DIR.partial/
      checkpoint/
        latest.json      {"epoch": 3, "dir": "epoch-0003"}; replaced atomically, last
        epoch-0003/      everything needed to go on after epoch 3:
          state.json     epoch counter, history, early-stopping state, the run's identity
                         (model and training hyperparameters, data fingerprint)
          variables.npz  every model variable (weights and dropout seed state)
          optimizer.npz  Adam's variables (step count, first and second moments)
          best.npz       the best epoch's weights so far (what early stopping keeps)

An epoch directory is written completely (and fsynced) before latest.json points at it,
so `kill -9` at any moment leaves the last complete checkpoint readable. Arrays are plain
.npz read with allow_pickle=False.

Shuffling is re-seeded per epoch from (seed, epoch), so a resumed run sees the same
batches as an uninterrupted one and, on CPU, ends with identical weights.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from transducer.core import artifacts
from transducer.core.config import TransducerError
from transducer.networks.tf import keras

CHECKPOINT = "checkpoint"
LATEST = "latest.json"
STATE, VARIABLES, OPTIMIZER, BEST = "state.json", "variables.npz", "optimizer.npz", "best.npz"
SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}  # 128 + signal number, as shells report


class Interrupted(Exception):
    """Raised inside fit at a batch boundary after SIGINT/SIGTERM; the partial epoch is dropped."""


def checkpoint_dir(staging: Path) -> Path:
    return Path(staging) / CHECKPOINT


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of 0-based `epoch`: fixed by (seed, epoch), not by process history."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


@dataclass
class Checkpoint:
    epoch: int  # epochs completed (1-based count); training goes on at epoch + 1
    state: dict  # state.json
    variables: list[np.ndarray]  # model.variables, in order
    optimizer: list[np.ndarray]  # model.optimizer.variables, in order
    best: list[np.ndarray] | None  # best weights so far (model.get_weights() order)


def exists(staging: Path) -> bool:
    return (checkpoint_dir(staging) / LATEST).is_file()


def save(staging: Path, epoch: int, identity: dict, model, keeper) -> None:
    """Write the checkpoint after `epoch` (1-based), atomically; drop older ones."""
    root = checkpoint_dir(staging)
    name = f"epoch-{epoch:04d}"
    final, tmp = root / name, root / (name + ".tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        state = {
            "epoch": epoch,
            "identity": identity,
            "keeper": keeper.state(),  # early stopping, schedule and history (recipe.Progress)
            "variables": [v.path for v in model.variables],
            "optimizer": [v.path for v in model.optimizer.variables],
        }
        _save_arrays(tmp / VARIABLES, [np.asarray(v.numpy()) for v in model.variables])
        _save_arrays(tmp / OPTIMIZER, [np.asarray(v.numpy()) for v in model.optimizer.variables])
        if keeper.best_weights is not None:
            _save_arrays(tmp / BEST, keeper.best_weights)
        artifacts.write_json(tmp / STATE, state)
        _fsync_dir(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        artifacts.write_json(root / LATEST, {"epoch": epoch, "dir": name})
        _fsync_dir(root)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise TransducerError(f"{root}: cannot write the checkpoint ({e.strerror or e})") from None
    for old in root.iterdir():  # only now is the previous checkpoint no longer needed
        if old.is_dir() and old.name != name:
            shutil.rmtree(old, ignore_errors=True)


def load(staging: Path) -> Checkpoint | None:
    """The last complete checkpoint, or None when there is none."""
    root = checkpoint_dir(staging)
    if not (root / LATEST).is_file():
        return None
    try:
        latest = json.loads((root / LATEST).read_text(encoding="utf-8"))
        where = root / latest["dir"]
        state = json.loads((where / STATE).read_text(encoding="utf-8"))
        best = _load_arrays(where / BEST) if (where / BEST).is_file() else None
        return Checkpoint(
            epoch=int(state["epoch"]),
            state=state,
            variables=_load_arrays(where / VARIABLES),
            optimizer=_load_arrays(where / OPTIMIZER),
            best=best,
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise TransducerError(f"{root}: unreadable checkpoint ({e}); delete it to start over") from None


def check_identity(ckpt: Checkpoint, identity: dict) -> None:
    """--resume must continue the same run: same model, training options and data.
    Only --epochs may change (to train longer, or to stop where the checkpoint is)."""
    saved = ckpt.state.get("identity", {})
    diffs = []
    for section in ("model", "train"):
        a, b = saved.get(section, {}), identity.get(section, {})
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                diffs.append(f"{key} was {a.get(key)!r}, now {b.get(key)!r}")
    if saved.get("data") != identity.get("data"):
        diffs.append("the training or validation pairs differ")
    if diffs:
        raise TransducerError(
            "cannot --resume: the checkpoint is from a different run (" + "; ".join(diffs) + ")"
        )


def restore(ckpt: Checkpoint, model, keeper) -> int:
    """Put the checkpoint's state into `model` (built and compiled) and `keeper`;
    returns the number of epochs already done."""
    # Shapes, not paths: Keras numbers seed generators per process, so paths may differ.
    if [tuple(v.shape) for v in model.variables] != [a.shape for a in ckpt.variables]:
        raise TransducerError("cannot --resume: the checkpoint's variables do not match the model")
    for var, value in zip(model.variables, ckpt.variables):
        var.assign(value)
    model.optimizer.build(model.trainable_variables)
    if len(model.optimizer.variables) != len(ckpt.optimizer):
        raise TransducerError("cannot --resume: the checkpoint's optimizer state does not match")
    for var, value in zip(model.optimizer.variables, ckpt.optimizer):
        var.assign(value)
    keeper.load_state(ckpt.state["keeper"])  # the learning rate is an optimizer variable, restored above
    keeper.best_weights = ckpt.best
    return ckpt.epoch


def fit_epochs(model, dataset_for_epoch: Callable[[int], object], val_ds, callbacks, start: int,
               epochs: int, stopper: "StopOnSignals", finished: Callable[[], bool]) -> bool:
    """Run epochs start..epochs-1 (0-based), one fit call each, with that epoch's shuffle.
    Returns True when a signal stopped training (the unfinished epoch is discarded)."""
    callbacks = [*callbacks, stopper.callback()]
    for epoch in range(start, epochs):
        if stopper.signal or finished():
            break
        try:
            model.fit(
                dataset_for_epoch(epoch),
                validation_data=val_ds,
                initial_epoch=epoch,
                epochs=epoch + 1,
                callbacks=callbacks,
                verbose=0,
            )
        except Interrupted:
            return True
    return stopper.signal is not None


class StopOnSignals:
    """While active, SIGINT and SIGTERM ask training to stop at the next batch boundary
    (the last checkpoint is kept). A second signal stops at once (KeyboardInterrupt).
    Outside the main thread signals cannot be caught; then this does nothing."""

    def __init__(self):
        self.signal: str | None = None  # "SIGINT" or "SIGTERM" once one arrived
        self._saved = {}

    def __enter__(self) -> "StopOnSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved = {}

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name

    @property
    def exit_code(self) -> int:
        return SIGNAL_EXIT.get(self.signal or "", 130)

    def callback(self):
        stopper = self

        class _StopAtBatch(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if stopper.signal:
                    raise Interrupted

        return _StopAtBatch()


def _save_arrays(path: Path, arrays) -> None:
    with open(path, "wb") as f:
        np.savez(f, **{f"a{i:04d}": np.asarray(a) for i, a in enumerate(arrays)})


def _load_arrays(path: Path) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return [z[k] for k in sorted(z.files)]


def _fsync_dir(path: Path) -> None:
    """Make a directory's files and entries durable before something points at them."""
    for p in path.iterdir():
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def saver(staging: Path, identity: dict, keeper):
    """A Keras callback that checkpoints after every completed epoch (after `keeper`,
    which must come before it in the callback list, has updated its state)."""
    class _SaveEachEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            save(staging, epoch + 1, identity, self.model, keeper)

    return _SaveEachEpoch()
