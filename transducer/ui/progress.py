"""How `train` shows its progress on stderr: the reporters behind `--log-format`.

  rich   a progress bar per epoch (time remaining while it runs, its elapsed time once
         done), then a table of the final metrics; the default on a terminal
  plain  one line per event, written and flushed as it happens, never wrapped or cut:
         what a log file, `nohup` or a batch scheduler should get; the default otherwise
  jsonl  one JSON object per event ({"event": "start" | "epoch" | "end", ...}), for scripts

Each reporter receives training.loop.Reporter's calls (start, epoch_begin, batch_end,
epoch_end) and then `end(result)` with the TrainResult. This is the rendering side, so it writes to
stderr itself; the library (training/loop.py) only calls it.

Signals: the library calls `stopping(info)` the moment a first SIGINT/SIGTERM arrives
(training finishes the epoch in progress) and `stopped(info)` on a second one, from its
signal thread, while no file is being written. `stopped` says what was kept and, for the
command line (exit_on_stop), ends the process at once (os._exit, exit code 130 or 143):
the command line owns the process, and Python's own exit after TensorFlow takes seconds,
which "stop now" must not.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, ProgressColumn
from rich.table import Table
from rich.text import Text

from transducer.core.config import LOG_FORMATS
from transducer.core.history import readable
from transducer.ui.render import duration, fmt_value, json_line, ordered, print_lines, show, warn


def make_reporter(log_format: str | None, console: Console, exit_on_stop: bool = False):
    """The reporter for `--log-format` (None: rich on a terminal, plain otherwise).
    exit_on_stop: a second signal ends the process (the command line's, which owns it;
    never a Python caller's, who gets the library's TransducerError instead)."""
    if log_format is None:
        log_format = "rich" if console.is_terminal else "plain"
    reporters = {"rich": RichReporter, "plain": PlainReporter, "jsonl": JsonlReporter}
    assert set(reporters) == set(LOG_FORMATS)
    return reporters[log_format](console, exit_on_stop)


def start_messages(info: dict) -> list[tuple[str, bool]]:
    """What `start` says, as (text, is_a_note) lines."""
    lines = [(
        f"training on {info['n_train']} pairs, validating on {info['n_val']}"
        f" (input vocab {info['input_vocab']}, output vocab {info['output_vocab']},"
        f" {info['parameters']:,} parameters)",
        False,
    )]
    if info.get("resampled"):
        lines.append((f"{info['resampled']}: {info['resampled_rows']} rows an epoch, drawn from the"
                      f" {info['n_train']} training pairs", False))
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
    took = duration(result.train_seconds)
    if result.resumed_from:  # the time counts the runs before --resume too (their checkpoint's record)
        took += f" ({duration(result.train_seconds - result.resumed_seconds)} of it in this run, after --resume)"
    return f"saved {result.model_dir} after {result.epochs_run} epoch(s) ({how}); training took {took}"


def stopping_message(info: dict) -> tuple[str, str]:
    """(label, text) acknowledging a first signal."""
    again = "Ctrl-C again" if info["signal"] == "SIGINT" else f"send {info['signal']} again"
    what = "after this epoch" if info["phase"] == "training" else "once the trained model is saved"
    return f"{info['signal']}:", f"stopping {what}; {again} to stop now"


def stopped_message(info: dict, member: tuple[int, int] | None) -> tuple[str, str]:
    """(label, text): what a second signal left. member: (k, n) while an ensemble trains."""
    label, dir_, ckpt, when = f"{info['signal']}:", info["model_dir"], info["checkpoint"], info["when"]
    if info["published"]:
        return label, f"stopped; the model was already saved to {dir_}"
    if member is not None:
        # A member trains into DIR.partial/members/k (training/ensemble.py): the ensemble's staging area.
        staging, (k, n) = Path(dir_).parent.parent, member
        kept = f" and member {k}'s checkpoint of epoch {info['kept_epoch']}" if ckpt else ""
        over = "" if ckpt else f" (member {k} starts over)"
        return label, (
            f"stopped {when} of ensemble member {k} of {n}; kept the finished members{kept} in {staging}{over}."
            " To continue training, run the same command again with --resume."
        )
    if ckpt is None:
        return label, f"stopped {when}; nothing was kept ({dir_} is as it was)."
    return label, (
        f"stopped {when}; {dir_} is as it was; kept the checkpoint of epoch {info['kept_epoch']} (best model so far:"
        f" epoch {info['best_epoch']}) in {ckpt}. To continue training, run the same command again with --resume;"
        f" to publish the best model so far instead, with --resume --epochs {info['kept_epoch']}."
    )


def exit_now(code: int) -> None:
    """End the process at once, from any thread: what a second Ctrl-C asks for. Output is
    flushed first; the files are whole (the library calls `stopped` only then)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


class _Clock:
    """Times each epoch (training, validation and checkpoint: what a user waits for)."""

    def __init__(self, console: Console, exit_on_stop: bool = False):
        self.console = console
        self.exit_on_stop = exit_on_stop  # a second signal ends the process (see make_reporter)
        self.epochs = 0
        self.epoch_started = time.monotonic()
        self.member: tuple[int, int] | None = None  # (k, n) while ensemble member k of n trains

    def epoch_begin(self, epoch, epochs, steps):
        self.epochs = epochs
        self.epoch_started = time.monotonic()

    def epoch_seconds(self) -> float:
        return time.monotonic() - self.epoch_started

    def batch_end(self, step, logs):
        pass

    def close(self):
        pass

    def stopping(self, info):
        """A first signal (from the library's signal thread): acknowledged at once."""
        warn(self.console, *stopping_message(info))

    def stopped(self, info):
        """A second signal: say what was kept, then (exit_on_stop) end the process now."""
        self.close()
        warn(self.console, *stopped_message(info, self.member))
        self.exit_if_asked(info)

    def exit_if_asked(self, info):
        if self.exit_on_stop:
            exit_now(info["exit_code"])


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

    def stopping(self, info):
        self.write(" ".join(stopping_message(info)))

    def stopped(self, info):
        self.write(" ".join(stopped_message(info, self.member)))
        self.exit_if_asked(info)

    def end(self, result):
        on = "validation" if result.counts.get("n_val") else "training"
        metrics = ", ".join(f"{readable(k, on)} {v:.4f}" for k, v in ordered(result.final))
        self.write(f"final (epoch {result.best_epoch}'s weights): {metrics}")
        self.write(how_it_ended(result))


class JsonlReporter(PlainReporter):
    """One JSON object per line and event: start, epoch (one per epoch), end; numbers
    rounded to 6 significant digits, as every JSON the command line writes."""

    def event(self, kind: str, **fields) -> None:
        self.write(json_line({"event": kind, **fields}))

    def start(self, info):
        self.event("start", **info)

    def epoch_end(self, epoch, logs):
        self.event("epoch", epoch=epoch, epochs=self.epochs, seconds=self.epoch_seconds(), **logs)

    def stopping(self, info):
        self.event("stopping", signal=info["signal"], phase=info["phase"])

    def stopped(self, info):
        fields = {k: v for k, v in info.items() if k != "message"}  # the library's sentence: stopped_message's here
        self.event("stopped", **fields, **({"member": self.member[0]} if self.member else {}))
        self.exit_if_asked(info)

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
            resumed_seconds=result.resumed_seconds,
            final=result.final,
        )


class _EpochLine(ProgressColumn):
    """A whole progress line, built to fit the console's width: fields are dropped by
    priority (the bar first, then the learning rate, accuracies, validation numbers)
    rather than cut or wrapped, so a narrow terminal never gets `…` lines."""

    def __init__(self, console: Console):
        super().__init__()
        self.console = console

    def render(self, task) -> Text:
        return Text(epoch_line(task.fields, task.completed, task.total, task.time_remaining, self.console.width - 1),
                    no_wrap=True, overflow="crop", style="progress.description")


MIN_BAR = 10  # a bar narrower than this is left out


def epoch_line(fields: dict, done: float, total: float | None, left: float | None, width: int) -> str:
    """`epoch 3/30 ━━━━━━╺━━━━ 40/57 loss 0.1234 acc 0.912 ... eta 3.1s` in at most
    `width` characters: the fields of lowest priority go first, then the bar shrinks."""
    took = fields.get("took")
    clock = f"took {duration(took)}" if took is not None else "eta -:--" if left is None else f"eta {duration(left)}"
    total = int(total or 0)
    count = f"{min(int(done), total)}/{total}"
    metrics = [m for m in fields.get("metrics", ()) if m]  # (priority, text) pairs
    head, tail = f"epoch {fields['epoch']}", [count, *(t for _, t in metrics), clock]
    while metrics and len("  ".join([head, *tail])) > width:
        metrics.remove(max(metrics, key=lambda m: m[0]))  # the least important field
        tail = [count, *(t for _, t in metrics), clock]
    line = "  ".join([head, *tail])
    room = width - len(line) - 2
    if room >= MIN_BAR:
        bar_w = min(room, 40)
        filled = round(bar_w * min(done, total) / total) if total else 0
        line = "  ".join([head, "━" * filled + "╺" * (filled < bar_w) + "─" * max(bar_w - filled - 1, 0), *tail])
    return line[:width]


class RichReporter(_Clock):
    """A progress line per epoch on stderr (see _EpochLine), then a table of the final
    metrics."""

    def __init__(self, console: Console, exit_on_stop: bool = False):
        super().__init__(console, exit_on_stop)
        self.progress = Progress(_EpochLine(console), console=console, transient=False)
        self.task = None
        self.started = False

    def start(self, info):
        for text, note in start_messages(info):
            print_lines(self.console, text, style="yellow" if note else None)
        self.progress.start()
        self.started = True

    def epoch_begin(self, epoch, epochs, steps):
        super().epoch_begin(epoch, epochs, steps)
        self.task = self.progress.add_task("", total=steps, epoch=f"{epoch}/{epochs}", metrics=(), took=None)

    def batch_end(self, step, logs):
        self.progress.update(self.task, completed=step, metrics=_bar_metrics(logs))

    def epoch_end(self, epoch, logs):
        """The finished epoch's line is printed above the live one and leaves the display,
        which so holds one line whatever the number of epochs (no `…` past the
        terminal's height)."""
        self.progress.update(self.task, metrics=_bar_metrics(logs, val=True), took=self.epoch_seconds())
        task = self.progress.tasks[-1]
        line = epoch_line(task.fields, task.completed, task.total, None, self.console.width - 1)
        self.progress.remove_task(self.task)
        self.progress.console.print(line, markup=False, highlight=False, no_wrap=True, crop=True)

    def close(self):
        if self.started:
            self.progress.stop()

    def end(self, result):
        table = Table()
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
        show(self.console, "final metrics (best epoch's weights)", table)
        print_lines(self.console, how_it_ended(result))


def _bar_metrics(logs: dict, val: bool = False) -> tuple[tuple[int, str], ...]:
    """The progress line's metrics as (priority, text), 1 the most important."""
    nan = float("nan")
    label = "accuracy" in logs  # a label model: one label per string, its accuracy is exact match
    parts = [(1, f"loss {logs.get('loss', nan):.4f}"), (4, f"acc {logs.get('accuracy' if label else 'char_acc', nan):.3f}")]
    if val and "val_loss" in logs:
        exact = logs.get("val_accuracy" if label else "val_exact_match", nan)
        parts += [(2, f"val_loss {logs['val_loss']:.4f}"), (3, f"{'val_acc' if label else 'val_exact'} {exact:.3f}")]
    if val and "learning_rate" in logs:
        parts.append((5, f"lr {logs['learning_rate']:.3g}"))
    return tuple(parts)


# --- ensembles and interruptions -------------------------------------------------------------


def member_event(reporter, k: int, n: int, seed: int, event: str, result) -> None:
    """train_ensemble's per-member progress, on stderr; a member's end is the reporter's.
    With --log-format jsonl these are events too ({"event": "member", ...})."""
    reporter.member = (k, n)  # what a second Ctrl-C's message names
    if event == "end":
        reporter.end(result)
    elif hasattr(reporter, "event"):  # jsonl: every line stays one JSON object
        reporter.event("member", member=k, members=n, seed=seed, status=event)
    else:
        kept = ": already trained, kept" if event == "skip" else ""
        print_lines(reporter.console, f"ensemble member {k} of {n} (seed {seed}){kept}")


def ensemble_end(reporter, result) -> None:
    """What an ensemble's training ends with (an interrupted one: see `interrupted`)."""
    members = len(result.skipped) + len(result.members)
    if hasattr(reporter, "event"):
        reporter.event(
            "ensemble", model_dir=str(result.model_dir), members=members, interrupted=result.interrupted,
            final=result.final,
        )
    elif not result.interrupted:
        scores = ", ".join(f"{readable(k, 'validation')} {v:.4f}" for k, v in result.final.items())
        print_lines(reporter.console, f"saved {result.model_dir}: an ensemble of {members} members; the ensemble's {scores}")


def interrupted(console: Console, result, ensemble: bool) -> None:
    """Where an interrupted run left its work, and how to go on."""
    if ensemble:
        k = len(result.skipped) + len(result.members)
        said = (
            f"stopped while training ensemble member {k}; {result.model_dir} is unchanged. The finished members"
            f" and member {k}'s checkpoint are kept in {result.staging}."
        )
    else:
        said = (
            f"stopped after epoch {result.epochs_run}; saved the best model so far (epoch {result.best_epoch}) to"
            f" {result.model_dir} and kept the checkpoint in {result.checkpoint}."
        )
    warn(console, f"{result.signal}:", said + " To continue training, run the same command again with --resume"
         + ("." if ensemble else " (add --epochs N to change the total)."))
