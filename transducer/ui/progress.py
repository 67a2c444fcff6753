"""How `train` shows its progress on stderr: the reporters behind `--log-format`.

  rich   a progress bar per epoch (time remaining while it runs, its elapsed time once
         done), then a table of the final metrics; the default on a terminal
  plain  one line per event, written and flushed as it happens, never wrapped or cut:
         what a log file, `nohup` or a batch scheduler should get; the default otherwise
  jsonl  one JSON object per event ({"event": "start" | "epoch" | "end", ...}), for scripts

Each reporter receives train.Reporter's calls (start, epoch_begin, batch_end, epoch_end)
and then `end(result)` with the TrainResult. This is the rendering side, so it writes to
stderr itself; the library (train.py) only calls it.
"""

from __future__ import annotations

import json
import math
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text

from transducer.core.config import LOG_FORMATS
from transducer.core.history import readable

# Keras's metric names, in the order a line shows them; others follow in their own order.
EPOCH_ORDER = (
    "loss", "char_acc", "exact_match", "accuracy",  # accuracy: a label model's (--arch label)
    "val_loss", "val_char_acc", "val_exact_match", "val_accuracy", "learning_rate",
)


def make_reporter(log_format: str | None, console: Console):
    """The reporter for `--log-format` (None: rich on a terminal, plain otherwise)."""
    if log_format is None:
        log_format = "rich" if console.is_terminal else "plain"
    reporters = {"rich": RichReporter, "plain": PlainReporter, "jsonl": JsonlReporter}
    assert set(reporters) == set(LOG_FORMATS)
    return reporters[log_format](console)


def duration(seconds: float) -> str:
    """12.3s, 4m05s, 1h02m03s."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s"


def ordered(logs: dict) -> list[tuple[str, float]]:
    """(name, value) pairs of an epoch's logs, in EPOCH_ORDER first."""
    known = [(k, logs[k]) for k in EPOCH_ORDER if k in logs]
    return known + [(k, v) for k, v in logs.items() if k not in EPOCH_ORDER]


def fmt_value(name: str, value: float) -> str:
    return f"{value:.3g}" if name == "learning_rate" else f"{value:.4f}"


def start_messages(info: dict) -> list[tuple[str, bool]]:
    """What `start` says, as (text, is_a_note) lines."""
    lines = [(
        f"training on {info['n_train']} pairs, validating on {info['n_val']}"
        f" (input vocab {info['input_vocab']}, output vocab {info['output_vocab']},"
        f" {info['parameters']:,} parameters)",
        False,
    )]
    if info.get("unseen_input_chars"):
        chars = info["unseen_input_chars"]
        lines.append((
            f"warning: {len(chars)} input character(s) the --init-from model never saw are read as"
            f" <unk>: {chars[:40]!r}",
            True,
        ))
    if info.get("resumed_from"):
        lines.append((f"resuming after epoch {info['resumed_from']} from the checkpoint", False))
    if info.get("distribute", "none") != "none":
        lines.append((
            f"distributed ({info['distribute']}): global batch {info['global_batch']}"
            f" = {info['global_batch'] // info['replicas']} per replica x {info['replicas']} replica(s)",
            False,
        ))
    if info.get("skipped"):
        kinds = ", ".join(f"{n} {kind}" for kind, n in info.get("skipped_by_kind", {}).items())
        lines.append((f"skipped {info['skipped']} invalid row(s) ({kinds}): {info['skipped_detail']}", True))
    if info.get("duplicates"):
        lines.append((
            f"note: {info['duplicates']} repeated row(s) kept (first: line {info['first_duplicate']});"
            " repeats weigh more in training",
            True,
        ))
    if info.get("unseen_labels"):
        lines.append((
            f"note: {info['unseen_labels']} validation row(s) have a label no training row has; the"
            " model cannot output it, so they are left out of the validation loss and accuracy"
            " (the final macro-F1 counts them as wrong)",
            True,
        ))
    if info.get("conflicts"):
        lines.append((
            f"note: {info['conflicts']} input(s) have more than one output; the model can learn"
            f" only one of them ({info.get('first_conflict', '')})",
            True,
        ))
    return lines


def how_it_ended(result) -> str:
    how = "interrupted" if result.interrupted else "early stopping" if result.stopped_early else "all epochs"
    if result.stop_reason:  # e.g. "validation loss did not improve by 0.1% for 4 epoch(s) (...)"
        how += f": {result.stop_reason}"
    return (
        f"saved {result.model_dir} after {result.epochs_run} epoch(s) ({how});"
        f" training took {duration(result.train_seconds)}"
    )


class _Clock:
    """Times each epoch (training, validation and checkpoint: what a user waits for)."""

    def __init__(self, console: Console):
        self.console = console
        self.epochs = 0
        self.epoch_started = time.monotonic()

    def epoch_begin(self, epoch, epochs, steps):
        self.epochs = epochs
        self.epoch_started = time.monotonic()

    def epoch_seconds(self) -> float:
        return time.monotonic() - self.epoch_started

    def batch_end(self, step, logs):
        pass

    def close(self):
        pass


class PlainReporter(_Clock):
    """One line per event on stderr, flushed at once, never wrapped (no rich in between)."""

    def write(self, line: str) -> None:
        stream = sys.stderr  # looked up each time: tests and callers may swap it
        stream.write(line + "\n")
        stream.flush()

    def start(self, info):
        for text, _ in start_messages(info):
            self.write(text)

    def epoch_end(self, epoch, logs):
        metrics = "  ".join(f"{k} {fmt_value(k, v)}" for k, v in ordered(logs))
        self.write(f"epoch {epoch}/{self.epochs}  {duration(self.epoch_seconds())}  {metrics}")

    def end(self, result):
        on = "validation" if result.counts.get("n_val") else "training"
        metrics = ", ".join(f"{readable(k, on)} {v:.4f}" for k, v in ordered(result.final))
        self.write(f"final (epoch {result.best_epoch}'s weights): {metrics}")
        self.write(how_it_ended(result))


def _json_number(v):
    return v if not isinstance(v, float) or math.isfinite(v) else None  # NaN is not JSON


class JsonlReporter(PlainReporter):
    """One JSON object per line and event: start, epoch (one per epoch), end."""

    def event(self, kind: str, **fields) -> None:
        row = {"event": kind, **{k: _json_number(v) for k, v in fields.items()}}
        self.write(json.dumps(row, ensure_ascii=False, default=str))

    def start(self, info):
        self.event("start", **info)

    def epoch_end(self, epoch, logs):
        self.event("epoch", epoch=epoch, epochs=self.epochs, seconds=round(self.epoch_seconds(), 3), **logs)

    def end(self, result):
        self.event(
            "end",
            model_dir=str(result.model_dir),
            epochs_run=result.epochs_run,
            best_epoch=result.best_epoch,
            stopped_early=result.stopped_early,
            stop_reason=result.stop_reason,
            interrupted=result.interrupted,
            train_seconds=result.train_seconds,
            final={k: _json_number(v) for k, v in result.final.items()},
        )


class _EpochTime(ProgressColumn):
    """Time remaining while an epoch runs, its elapsed time once done."""

    def render(self, task):
        took = task.fields.get("took")
        if took is not None:
            return Text(f"took {duration(took)}", style="progress.elapsed")
        left = task.time_remaining
        return Text("eta -:--" if left is None else f"eta {duration(left)}", style="progress.remaining")


class RichReporter(_Clock):
    """A progress bar per epoch on stderr, then a table of the final metrics."""

    def __init__(self, console: Console):
        super().__init__(console)
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"),
            _EpochTime(),
            console=console,
            transient=False,
        )
        self.task = None
        self.started = False

    def start(self, info):
        for text, note in start_messages(info):
            self.console.print(text, style="yellow" if note else None, markup=False, highlight=False, soft_wrap=True)
        self.progress.start()
        self.started = True

    def epoch_begin(self, epoch, epochs, steps):
        super().epoch_begin(epoch, epochs, steps)
        self.task = self.progress.add_task("", total=steps, epoch=f"{epoch}/{epochs}", metrics="", took=None)

    def batch_end(self, step, logs):
        self.progress.update(self.task, completed=step, metrics=_bar_metrics(logs))

    def epoch_end(self, epoch, logs):
        self.progress.update(self.task, metrics=_bar_metrics(logs, val=True), took=self.epoch_seconds())

    def close(self):
        if self.started:
            self.progress.stop()

    def end(self, result):
        table = Table(title="final metrics (best epoch's weights)", title_justify="left")
        table.add_column("metric")
        table.add_column("train (last epoch)", justify="right")
        table.add_column(f"validation (epoch {result.best_epoch})", justify="right")
        keyed = (
            ("loss", "loss"), ("char_acc", "character accuracy"), ("exact_match", "exact match"), ("accuracy", "accuracy"),
        )
        for key, label in keyed:
            if key not in result.history:  # char_acc/exact_match for strings, accuracy for labels
                continue
            table.add_row(label, f"{result.history[key][-1]:.4f}", f"{result.final.get(key, float('nan')):.4f}")
        decoded = (
            ("decoded_exact_match", "exact match (decoded strings)"), ("cer", "character error rate"), ("macro_f1", "macro-F1"),
        )
        for key, label in decoded:
            if key in result.final:
                table.add_row(label, "", f"{result.final[key]:.4f}")
        self.console.print(table)
        self.console.print(how_it_ended(result), markup=False, highlight=False, soft_wrap=True)


def _bar_metrics(logs: dict, val: bool = False) -> str:
    nan = float("nan")
    label = "accuracy" in logs  # a label model: one label per string, its accuracy is exact match
    parts = [f"loss {logs.get('loss', nan):.4f}", f"acc {logs.get('accuracy' if label else 'char_acc', nan):.3f}"]
    if val and "val_loss" in logs:
        exact = logs.get("val_accuracy" if label else "val_exact_match", nan)
        parts.append(f"val_loss {logs['val_loss']:.4f} {'val_acc' if label else 'val_exact'} {exact:.3f}")
    if val and "learning_rate" in logs:
        parts.append(f"lr {logs['learning_rate']:.3g}")
    return "  ".join(parts)
