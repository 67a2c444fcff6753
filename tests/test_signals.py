"""Ctrl-C and SIGTERM while training: the first is acknowledged at once and lets the epoch
in progress finish (the best model so far is published), a second stops now and says what
was kept; a resumed run's training time counts the earlier run's. Real signals, mostly to
real processes (training/checkpoint.py's StopOnSignals, ui/progress.py's messages)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import CLI_SMALL, TINY_MAX_LEN, SignalAfterEpoch, default_sigint, invoke, make_pairs, subprocess_env
from conftest import write_pairs
from transducer.core.config import ModelConfig, TrainConfig, TransducerError

ACK = "SIGINT: stopping after this epoch; Ctrl-C again to stop now"


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("signals") / "pairs.tsv", make_pairs(120, seed=3))


class Stderr:
    """A process's stderr, read line by line in a thread, so a test can wait for a line
    (with a generous deadline: never a timed assertion) while the process runs."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self.done = False
        self.cond = threading.Condition()
        threading.Thread(target=self._read, args=(proc.stderr,), daemon=True).start()

    def _read(self, stream) -> None:
        for raw in stream:
            with self.cond:
                self.lines.append(raw.decode("utf-8", errors="replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def wait_for(self, text: str, timeout: float = 240) -> int:
        """The index of the first line containing `text`, once there is one."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i, line in enumerate(self.lines):
                    if text in line:
                        return i
                if self.done or time.monotonic() > deadline:
                    raise AssertionError(f"no line with {text!r} in:\n" + "\n".join(self.lines))
                self.cond.wait(1.0)

    def finished(self, proc: subprocess.Popen) -> list[str]:
        """Every line, once the process has ended."""
        proc.wait(timeout=240)
        with self.cond:
            self.cond.wait_for(lambda: self.done, timeout=30)
        return self.lines

    def __str__(self) -> str:
        return "\n".join(self.lines)


def _wait_for_a_checkpoint(staging: Path, err: Stderr, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not (staging / "checkpoint" / "latest.json").is_file():
        assert not err.done and time.monotonic() < deadline, f"no checkpoint was written:\n{err}"
        time.sleep(0.1)


def _train(pairs: Path, model_dir: Path, *extra) -> tuple[subprocess.Popen, Stderr]:
    args = ["train", pairs, "--model-dir", model_dir, *CLI_SMALL, "--epochs", 1000, *extra]
    proc = subprocess.Popen(
        [sys.executable, "-m", "transducer", *map(str, args)], stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env(), preexec_fn=default_sigint,
    )
    return proc, Stderr(proc)


@pytest.mark.slow
def test_a_first_ctrl_c_is_acknowledged_then_the_epoch_finishes_and_the_model_is_published(pairs, tmp_path):
    model_dir = tmp_path / "m"
    proc, err = _train(pairs, model_dir, "--log-format", "plain")
    try:
        err.wait_for("epoch 1/1000")
        proc.send_signal(signal.SIGINT)
        ack = err.wait_for(ACK)
        lines = err.finished(proc)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert proc.stdout.read() == b"" and "Traceback" not in str(err)
    assert sum(ACK in line for line in lines) == 1
    after = lines[ack + 1:]
    assert sum(line.startswith("epoch ") for line in after) <= 1, err  # the epoch in progress, no other
    done = json.loads((tmp_path / "m.partial" / "checkpoint" / "latest.json").read_text())["epoch"]
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["epochs_run"] == done and metrics["interrupted"]
    said = " ".join(" ".join(after).split())
    assert f"stopped after epoch {done}; saved the best model so far" in said and "--resume" in said


@pytest.mark.slow
def test_a_second_ctrl_c_stops_now_keeps_the_checkpoint_and_resume_counts_both_runs_time(pairs, tmp_path):
    from transducer.training import checkpoint

    model_dir, staging = tmp_path / "m", tmp_path / "m.partial"
    proc, err = _train(pairs, model_dir, "--log-format", "jsonl")
    try:
        _wait_for_a_checkpoint(staging, err)  # (an epoch's line comes just before its checkpoint)
        proc.send_signal(signal.SIGINT)
        err.wait_for('"event": "stopping"')
        proc.send_signal(signal.SIGINT)
        lines = err.finished(proc)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    events = [json.loads(line) for line in lines]  # every line stays one JSON object
    stopping = [e for e in events if e["event"] == "stopping"]
    assert stopping == [{"event": "stopping", "signal": "SIGINT", "phase": "training"}]
    stopped = events[-1]
    assert stopped["event"] == "stopped" and stopped["exit_code"] == 130 and not stopped["published"], stopped

    # What it says was kept is what is there: a whole checkpoint, DIR untouched (it never existed).
    assert not model_dir.exists()
    assert stopped["checkpoint"] == str(staging / "checkpoint")
    ckpt = checkpoint.load(staging)
    assert ckpt.epoch == stopped["kept_epoch"] >= 1 and ckpt.state["keeper"]["best_epoch"] == stopped["best_epoch"]
    assert sorted(p.name for p in staging.iterdir()) == ["checkpoint"]
    assert sorted(p.name for p in (staging / "checkpoint").iterdir()) == [f"epoch-{ckpt.epoch:04d}", "latest.json"]
    assert ckpt.seconds > 0

    # --resume goes on from there; its time counts the first run's epochs and its own.
    r = invoke("train", pairs, "--model-dir", model_dir, *CLI_SMALL, "--epochs", ckpt.epoch + 1, "--resume",
               "--log-format", "plain")
    assert r.exit_code == 0, r.stderr
    assert f"resuming after epoch {ckpt.epoch}" in r.stderr
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["epochs_run"] == ckpt.epoch + 1 and metrics["resumed_from_epoch"] == ckpt.epoch
    assert metrics["resumed_seconds"] == round(ckpt.seconds, 2)
    assert metrics["train_seconds"] > metrics["resumed_seconds"]
    ended = [line for line in r.stderr.splitlines() if "training took" in line]
    assert len(ended) == 1 and "after --resume" in ended[0] and "took 0.0s" not in ended[0], r.stderr


STOPPER_IN_A_LONG_C_CALL = r"""
import ctypes, os, signal, sys
from transducer.training.checkpoint import StopOnSignals

def notify(event, info):
    sys.stderr.write(f"{event} {info['signal']}\n")
    sys.stderr.flush()
    if event == "stopped":
        os._exit(info["exit_code"])

with StopOnSignals(notify):
    # The main thread blocks these signals (another thread takes them) and sleeps inside one C
    # call: Python's own handlers cannot run before it returns, in ten minutes.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.stderr.write("ready\n")
    sys.stderr.flush()
    ctypes.CDLL(None).sleep(600)
"""


@pytest.mark.slow
def test_both_signals_are_answered_while_the_main_thread_is_inside_one_long_c_call():
    """What TensorFlow does to Python's handlers (a graph's compilation, 8 steps in one call),
    made certain: both SIGTERMs of one call are seen, the first told at once, the second
    ending the process with 143 though the main thread never returns to Python."""
    proc = subprocess.Popen([sys.executable, "-c", STOPPER_IN_A_LONG_C_CALL], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=subprocess_env())
    err = Stderr(proc)
    try:
        err.wait_for("ready", timeout=120)
        proc.send_signal(signal.SIGTERM)
        err.wait_for("stopping SIGTERM", timeout=60)
        proc.send_signal(signal.SIGTERM)
        lines = err.finished(proc)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert lines[-2:] == ["stopping SIGTERM", "stopped SIGTERM"], err


class TwoSignalsAt(SignalAfterEpoch):
    """A reporter that sends this process SIGINT twice when epoch `at` ends, and records
    the signal events it is told."""

    def __init__(self, at: int):
        super().__init__(at, signal.SIGINT)
        self.told = []

    def epoch_end(self, epoch, logs):
        super().epoch_end(epoch, logs)
        super().epoch_end(epoch, logs)

    def stopping(self, info):
        self.told.append(("stopping", info))

    def stopped(self, info):
        self.told.append(("stopped", info))


@pytest.mark.slow
def test_the_library_raises_what_a_second_signal_kept_and_resume_goes_on(pairs, tmp_path):
    """Through the Python API the second signal is a TransducerError (exit code 130) with
    what was kept (epoch 1's checkpoint, or epoch 2's if its write was under way), after
    the reporter was told; the handlers are restored and --resume continues."""
    from transducer.training import checkpoint
    from transducer.training.loop import train

    model_dir = tmp_path / "m"
    mcfg, tcfg = ModelConfig(max_len=TINY_MAX_LEN, hidden=8), TrainConfig(epochs=4, batch_size=16, patience=100)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    reporter = TwoSignalsAt(2)
    with pytest.raises(TransducerError) as stop:
        train(str(pairs), model_dir, mcfg, tcfg, reporter=reporter)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    ckpt = checkpoint.load(tmp_path / "m.partial")
    assert stop.value.exit_code == 130 and ckpt.epoch in (1, 2)
    assert f"kept the checkpoint of epoch {ckpt.epoch}" in str(stop.value) and "--resume" in str(stop.value)
    assert [event for event, _ in reporter.told] == ["stopping", "stopped"]
    assert reporter.told[1][1]["kept_epoch"] == ckpt.epoch and reporter.told[1][1]["message"] == str(stop.value)
    assert not model_dir.exists()

    done = train(str(pairs), model_dir, mcfg, tcfg, resume=True)
    assert done.resumed_from == ckpt.epoch and done.epochs_run == 4 and not done.interrupted
    assert done.resumed_seconds == round(ckpt.seconds, 2) and done.train_seconds > done.resumed_seconds > 0


def _tiny_fit(signal_at, epochs: int = 3) -> tuple[bool, list[int], object]:
    """fit_epochs on a one-layer model, SIGINT sent to this process at `signal_at`:
    ("data", k) when epoch k's dataset is made (before it begins), ("end", k) as it ends.
    Returns (interrupted, the 0-based epochs begun, the stopper)."""
    from transducer.networks.tf import keras, tf
    from transducer.training import checkpoint

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    x, y = np.zeros((8, 2), "float32"), np.zeros((8, 1), "float32")
    began = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            began.append(epoch)

        def on_epoch_end(self, epoch, logs=None):
            if signal_at == ("end", epoch):
                os.kill(os.getpid(), signal.SIGINT)

    def dataset_for_epoch(epoch):
        if signal_at == ("data", epoch):
            os.kill(os.getpid(), signal.SIGINT)
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(4)

    with checkpoint.StopOnSignals() as stopper:
        interrupted = checkpoint.fit_epochs(model, dataset_for_epoch, None, [Record()], 0, epochs, stopper, lambda: False)
    assert model.evaluate(x, y, verbose=0) == 0.0  # usable after (as publish needs)
    return interrupted, began, stopper


def test_a_signal_lets_the_epoch_in_progress_end_and_no_other_begin():
    interrupted, began, stopper = _tiny_fit(("end", 0))
    assert interrupted and began == [0] and stopper.signal == "SIGINT"
    # Between the check before an epoch and its first step: the epoch is not trained at all.
    interrupted, began, _ = _tiny_fit(("data", 1))
    assert interrupted and began == [0]
    # In the last epoch nothing is cut short: the run completes.
    interrupted, began, stopper = _tiny_fit(("end", 2))
    assert not interrupted and began == [0, 1, 2] and stopper.signal == "SIGINT"


# --- the messages (no training) ---------------------------------------------------------------


def test_the_acknowledgement_names_how_to_stop_now():
    from transducer.ui.progress import stopping_message

    assert " ".join(stopping_message({"signal": "SIGINT", "phase": "training"})) == ACK
    assert " ".join(stopping_message({"signal": "SIGTERM", "phase": "training"})) == (
        "SIGTERM: stopping after this epoch; send SIGTERM again to stop now")
    assert "once the trained model is saved" in " ".join(stopping_message({"signal": "SIGINT", "phase": "saving"}))


def _stopped(**over) -> dict:
    info = {"signal": "SIGINT", "exit_code": 130, "model_dir": "/x/m", "published": False, "phase": "training",
            "epoch": 4, "when": "during epoch 4", "checkpoint": "/x/m.partial/checkpoint", "kept_epoch": 3,
            "best_epoch": 2}
    return {**info, **over}


def test_what_a_second_signal_kept_is_said_plainly():
    from transducer.ui.progress import stopped_message

    label, text = stopped_message(_stopped(), None)
    assert label == "SIGINT:" and text.startswith("stopped during epoch 4; /x/m is as it was;")
    assert "kept the checkpoint of epoch 3 (best model so far: epoch 2) in /x/m.partial/checkpoint" in text
    assert "--resume;" in text and "--resume --epochs 3" in text
    _, text = stopped_message(_stopped(checkpoint=None, kept_epoch=0, best_epoch=0, when="during epoch 1"), None)
    assert text == "stopped during epoch 1; nothing was kept (/x/m is as it was)."
    member = _stopped(model_dir="/x/m.partial/members/2", checkpoint="/x/m.partial/members/2.partial/checkpoint")
    _, text = stopped_message(member, (2, 3))
    assert "ensemble member 2 of 3" in text and "member 2's checkpoint of epoch 3 in /x/m.partial." in text
    assert "--resume." in text and "--epochs" not in text  # --epochs would not publish an ensemble
    _, text = stopped_message(_stopped(published=True), None)
    assert "already saved to /x/m" in text


def test_a_resumed_runs_time_says_how_much_was_this_run():
    from transducer.training.loop import TrainResult
    from transducer.ui.progress import how_it_ended

    result = TrainResult(model_dir=Path("/x/m"), history={}, final={}, best_epoch=3, epochs_run=4, interrupted=False,
                         stopped_early=False, resumed_from=3, train_seconds=40.0, resumed_seconds=30.0)
    assert how_it_ended(result).endswith("training took 40.0s (10.0s of it in this run, after --resume)")
    fresh = TrainResult(model_dir=Path("/x/m"), history={}, final={}, best_epoch=3, epochs_run=4, interrupted=False,
                        stopped_early=False, train_seconds=40.0)
    assert how_it_ended(fresh).endswith("training took 40.0s")


@pytest.mark.parametrize("log_format", ["plain", "jsonl", "rich"])
def test_a_python_callers_reporter_says_what_was_kept_and_returns(log_format, capsys):
    """transducer.train(progress=True) uses the command line's reporters: there a second
    signal is told and the library's TransducerError follows; only the command line's
    (exit_on_stop) end the process."""
    from transducer.ui.progress import make_reporter
    from transducer.ui.render import Output

    reporter = make_reporter(log_format, Output(stderr=True))
    reporter.stopping({"signal": "SIGINT", "phase": "training"})
    reporter.stopped({**_stopped(), "message": "SIGINT: stopped during epoch 4; ..."})  # returns
    err = " ".join(capsys.readouterr().err.split())
    assert "stopping" in err
    assert "kept the checkpoint of epoch 3" in err or '"kept_epoch": 3' in err  # jsonl: the fields

