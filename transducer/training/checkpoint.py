"""Resumable training: per-epoch checkpoints, `--resume`, and stopping cleanly on signals.

A checkpoint lives in the model's staging area (artifacts.staging_dir), never in the
published model directory, so the previous model in DIR stays untouched until a run
finishes (or a first signal stops it after an epoch, which publishes the best model so far):

    DIR.partial/
      checkpoint/
        latest.json      {"epoch": 3, "dir": "epoch-0003"}; replaced atomically, last
        epoch-0003/      everything needed to go on after epoch 3:
          state.json     epoch counter, history, early-stopping state, the run's identity
                         (model and training hyperparameters, data fingerprint), and the
                         seconds of training up to this checkpoint (over every run)
          variables.npz  every model variable (weights and dropout seed state)
          optimizer.npz  Adam's variables (step count, first and second moments)
          best.npz       the best epoch's weights so far (what early stopping keeps)

An epoch directory is written completely (and fsynced) before latest.json points at it,
so `kill -9` at any moment leaves the last complete checkpoint readable. Arrays are plain
.npz read with allow_pickle=False.

Shuffling is re-seeded per epoch from (seed, epoch), so a resumed run sees the same
batches as an uninterrupted one and, on CPU, ends with identical weights.

Signals (StopOnSignals): the first SIGINT/SIGTERM lets the epoch in progress finish and be
checkpointed, then training stops and the best model so far is published; a second one
stops at once, leaving the last complete checkpoint (no file is ever left half-written:
checkpoints and the published model are written under a lock the second signal waits for).
"""

from __future__ import annotations

import _thread
import json
import os
import shutil
import signal
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from transducer.core import artifacts
from transducer.core.config import TransducerError
from transducer.training.preflight import run_differences
from transducer.networks.tf import keras

CHECKPOINT = "checkpoint"
LATEST = "latest.json"
STATE, VARIABLES, OPTIMIZER, BEST = "state.json", "variables.npz", "optimizer.npz", "best.npz"
SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}  # 128 + signal number, as shells report


class _NotStarted(Exception):
    """Raised as an epoch begins when a signal came before it: it is not trained at all."""


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

    @property
    def seconds(self) -> float:
        """Training time up to this checkpoint, over every run (0 in a checkpoint from
        before it was recorded)."""
        return float(self.state.get("seconds", 0.0))


def exists(staging: Path) -> bool:
    return (checkpoint_dir(staging) / LATEST).is_file()


def save(staging: Path, epoch: int, identity: dict, model, keeper, seconds: float = 0.0) -> None:
    """Write the checkpoint after `epoch` (1-based), atomically; drop older ones.
    seconds: the training time up to now, over every run (see Checkpoint.seconds)."""
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
            "seconds": round(seconds, 3),
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


def latest(staging: Path) -> dict | None:
    """The last complete checkpoint's {"epoch", "best_epoch", "seconds"}, read without its
    arrays (quick: what a second signal reports); None when there is none."""
    root = checkpoint_dir(staging)
    try:
        name = json.loads((root / LATEST).read_text(encoding="utf-8"))["dir"]
        state = json.loads((root / name / STATE).read_text(encoding="utf-8"))
        return {"epoch": int(state["epoch"]), "best_epoch": int(state["keeper"].get("best_epoch", 0)),
                "seconds": float(state.get("seconds", 0.0))}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def check_identity(ckpt: Checkpoint, identity: dict) -> None:
    """--resume must continue the same run: same model, training options and data.
    Only --epochs may change (to train longer, or to stop where the checkpoint is)."""
    saved = ckpt.state.get("identity", {})
    diffs = run_differences(saved, identity)
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
    After a signal the epoch in progress ends normally (validated, checkpointed) and no
    other begins. Returns True when a signal cut training short."""
    callbacks = [stopper.callback(), *callbacks]  # first: a stopped epoch reports nothing
    done = start
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
        except _NotStarted:
            break
        done = epoch + 1
    return stopper.signal is not None and done < epochs and not finished()


class StopOnSignals:
    """SIGINT and SIGTERM while a model trains and is published. The first lets the epoch in
    progress finish (or the model being saved be saved), then training stops; the second
    stops now.

    A watcher thread reads each signal from signal.set_wakeup_fd as it arrives, so both are
    answered at once even while the main thread is inside one long TensorFlow call (a
    graph's compilation, 8 training steps), where Python's own handler waits until it
    returns; and two signals during one such call count as two. The watcher tells
    `notify(event, info)` (from its own thread):

      "stopping"  the first signal: {"signal", "phase"}, phase "training", "saving" or "done"
      "stopped"   the second: `stopped_info()`, what `kept()` says was kept

    "stopped" is told while holding the lock every checkpoint and the model's publication
    are written under (`guard`), so no file is half-written at that moment: a caller may
    end the process there (the command line does; Python's own exit after TensorFlow
    takes seconds). If notify returns, the main thread gets KeyboardInterrupt at its next
    Python instruction, or as its write in progress ends, and no write starts after it.
    Outside the main thread signals cannot be caught; then this does nothing.
    """

    def __init__(self, notify: Callable[[str, dict], None] | None = None):
        self.signal: str | None = None  # "SIGINT" or "SIGTERM" once one arrived
        self.now = False  # a second signal came: stop now
        self.phase = "training"  # then "saving" (the trained model), "done" once it is published
        self.epoch = 0  # the 1-based epoch in progress (or last begun)
        self.kept: Callable[[], dict] = lambda: {}  # what a stop now leaves (the trainer's to set)
        self._notify = notify or (lambda event, info: None)
        self._lock = threading.Lock()  # held while a checkpoint or the model is written
        self._writing = False  # the main thread holds _lock (its handler must not raise then)
        self._closing = False
        self._raised = False  # _handle raised its KeyboardInterrupt
        self._stopped: dict | None = None  # stopped_info, computed once
        self._saved, self._wakeup, self._pair, self._watcher = {}, None, None, None

    def __enter__(self) -> "StopOnSignals":
        if threading.current_thread() is not threading.main_thread():
            return self
        self._pair = socket.socketpair()
        self._pair[1].setblocking(False)  # set_wakeup_fd needs a non-blocking fd
        self._wakeup = signal.set_wakeup_fd(self._pair[1].fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._saved[sig] = signal.signal(sig, self._handle)
        self._watcher = threading.Thread(target=self._watch, name="transducer-signals", daemon=True)
        self._watcher.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop watching and restore the handlers; again is harmless (a second signal's
        KeyboardInterrupt may come as the `with` block ends, before its own close)."""
        self._closing = True
        if self._watcher is not None:
            try:
                self._pair[1].send(b"\0")  # after the signals already written: the watcher ends
            except OSError:  # a full buffer (thousands of signals unread): it ends with the process
                pass
            self._watcher.join(timeout=30)
            signal.set_wakeup_fd(self._wakeup)
            for sig, handler in self._saved.items():
                signal.signal(sig, handler)
            for end in self._pair:
                end.close()
        self._saved, self._watcher = {}, None

    @property
    def exit_code(self) -> int:
        return SIGNAL_EXIT.get(self.signal or "", 130)

    @contextmanager
    def guard(self):
        """Around a checkpoint's or the model's writing: a second signal waits for it to
        end; none starts after one."""
        with self._lock:
            if self.now:
                raise KeyboardInterrupt
            self._writing = True
            try:
                yield
            finally:
                self._writing = False
        if self.now and not self._closing:
            raise KeyboardInterrupt

    def stopped_info(self) -> dict:
        """What the second signal left: {"signal", "exit_code", **kept()}, computed once,
        when no file is being written."""
        with self._lock:
            return self._describe()

    def _describe(self) -> dict:
        if self._stopped is None:
            self._stopped = {"signal": self.signal, "exit_code": self.exit_code, **self.kept()}
        return self._stopped

    def _handle(self, signum, frame) -> None:
        """Python's handler, in the main thread: the watcher does the telling. After the
        second signal it raises KeyboardInterrupt once (not in a write, nor in the
        caller's handling of the first)."""
        if self.signal is None:
            self.signal = signal.Signals(signum).name
        if self.now and not self._writing and not self._closing and not self._raised:
            self._raised = True
            raise KeyboardInterrupt

    def _watch(self) -> None:
        seen = 0
        while True:
            for signum in self._pair[0].recv(64):
                if signum == 0:
                    return
                seen += 1
                if seen == 1:
                    self.signal = self.signal or signal.Signals(signum).name
                    self._tell("stopping", {"signal": self.signal, "phase": self.phase})
                elif seen == 2:
                    self._stop_now(signum)
                # later ones (our own interrupt_main among them) change nothing

    def _stop_now(self, signum: int) -> None:
        self.now = True  # from here on, no write starts
        with self._lock:  # waits for a write in progress; the caller may end the process here
            self._tell("stopped", self._describe())
        if not self._closing:
            _thread.interrupt_main(signum)  # the main thread's handler raises KeyboardInterrupt

    def _tell(self, event: str, info: dict) -> None:
        try:
            self._notify(event, dict(info))
        except Exception:  # a reporter's failure must not kill the watcher; training goes on
            pass

    def callback(self):
        stopper = self

        class _StopBetweenEpochs(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if stopper.signal:  # came after the previous epoch: this one is not trained
                    raise _NotStarted
                stopper.epoch = epoch + 1

            def on_train_batch_end(self, batch, logs=None):
                if stopper.now:  # in case the handler ran before the watcher saw the signal
                    raise KeyboardInterrupt

        return _StopBetweenEpochs()


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


def saver(staging: Path, identity: dict, keeper, stopper: StopOnSignals, seconds: Callable[[], float]):
    """A Keras callback that checkpoints after every completed epoch (after `keeper`,
    which must come before it in the callback list, has updated its state), under the
    stopper's guard; seconds(): the training time so far, over every run."""
    class _SaveEachEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            with stopper.guard():
                save(staging, epoch + 1, identity, self.model, keeper, seconds())

    return _SaveEachEpoch()
