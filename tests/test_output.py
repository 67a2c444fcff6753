"""Output that survives files and narrow terminals (ui/render.py, ui/progress.py), and the
messages that tell a user what to do next."""

from __future__ import annotations

import json
import re
import sys

import pytest

from conftest import (
    TINY_MAX_LEN, assert_clean_error, invoke, make_pairs, run_in_pty, runner, screen_lines, write_pairs,
)
from transducer.cli import app

LONG_REFERENCE = "raul-domingo-vizcaino-de-la-fuente-y-montes-" * 2  # far wider than 80 columns


@pytest.fixture(scope="module")
def long_report(tiny_model, tmp_path_factory):
    """A test file under a long path whose references are long: each line a mistake."""
    deep = tmp_path_factory.mktemp("evaluate") / ("a-rather-long-directory-name-" * 3) / "test"
    deep.mkdir(parents=True)
    test = write_pairs(deep / "held-out.tsv", [("abc", LONG_REFERENCE + "1"), ("de", LONG_REFERENCE + "2")])
    return tiny_model, test


def test_evaluate_to_a_file_writes_every_value_and_path_whole(long_report):
    """Not a terminal (CliRunner, like `> report.txt`), with an 80-column COLUMNS: no width
    limit, the mistakes as tab-separated lines, the path on one line."""
    model, test = long_report
    r = runner.invoke(app, ["evaluate", str(model), str(test), "--errors", "5"], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert f"{model} on {test}" in lines  # the title: one line, whole
    header = next(i for i, l in enumerate(lines) if l.startswith("worst 2 mistakes"))
    rows = [l.split("\t") for l in lines[header + 1 :]]
    assert sorted(r[1] for r in rows) == [LONG_REFERENCE + "1", LONG_REFERENCE + "2"]
    assert {r[0] for r in rows} == {"abc", "de"} and all(len(r) == 4 and r[3].isdigit() for r in rows)
    assert "…" not in r.stdout


def test_evaluate_in_an_80_column_terminal_folds_long_values_instead_of_cutting_them(long_report):
    model, test = long_report
    raw = run_in_pty([sys.executable, "-m", "transducer", "evaluate", str(model), str(test), "--errors", "5"], 80)
    shown = screen_lines(raw)
    assert "worst 2 mistakes" in raw and "…" not in raw, raw
    table = [l for l in shown if "│" in l]
    assert table and all(len(l) <= 80 for l in table), table
    # The reference column, read down the folded rows, holds each reference whole.
    cells = "".join(l.split("│")[2].strip() for l in table if l.count("│") >= 5)
    assert LONG_REFERENCE + "1" in cells and LONG_REFERENCE + "2" in cells


PROGRESS = r"""
import time
from transducer.ui.progress import make_reporter
from transducer.ui.render import Output

reporter = make_reporter(None, Output(stderr=True))  # rich: stderr is a terminal
reporter.start({"n_train": 123456, "n_val": 13717, "input_vocab": 77, "output_vocab": 81, "parameters": 156046})
logs = {"loss": 0.123456, "char_acc": 0.98765, "exact_match": 0.5, "val_loss": 0.234567,
        "val_char_acc": 0.97, "val_exact_match": 0.876543, "learning_rate": 0.0015}
for epoch in range(1, 13):
    reporter.epoch_begin(epoch, 12, 57)
    for step in range(1, 58):
        reporter.batch_end(step, logs)
        time.sleep(0.001)
    reporter.epoch_end(epoch, logs)
reporter.close()
"""


@pytest.mark.parametrize("columns", [60, 80])
def test_progress_lines_fit_the_terminal_and_never_leave_ellipsis_lines(columns):
    raw = run_in_pty([sys.executable, "-c", PROGRESS], columns)
    shown = screen_lines(raw)
    assert "…" not in raw and "Traceback" not in raw, raw
    progress = [l for l in shown if l.startswith("epoch ")]
    assert progress and all(len(l) < columns for l in progress), [l for l in progress if len(l) >= columns]
    finished = [l for l in progress if "took " in l]  # each epoch's line, kept once it ends
    assert [l.split()[1] for l in finished] == [f"{e}/12" for e in range(1, 13)]
    assert all("57/57" in l and "loss 0.1235" in l for l in finished)
    assert max(int(n) for n in re.findall(r"\b(\d+)/57\b", raw)) == 57
    assert "156,046" in raw  # the start line is wrapped between words, never inside a number


def test_the_batch_count_never_passes_its_total():
    """With steps_per_execution 8, Keras reports an epoch of 57 steps as calls ending at
    steps 8, 16, ..., 64 (`64/57` before the cap); the reporter gets 57 at most."""
    from transducer.core.config import TrainConfig
    from transducer.training.loop import STEPS_PER_EXECUTION, _BestKeeper

    seen = []

    class Recorder:
        def epoch_begin(self, epoch, epochs, steps): seen.append(steps)
        def batch_end(self, step, logs): seen.append(step)

    keeper = _BestKeeper(TrainConfig(), "loss", Recorder(), epochs=1, steps=57)
    for end_step in range(STEPS_PER_EXECUTION - 1, 64, STEPS_PER_EXECUTION):  # Keras's end_step values
        keeper.on_train_batch_end(end_step, {"loss": 1.0})
    assert seen == [8, 16, 24, 32, 40, 48, 56, 57]


def test_help_examples_are_never_wrapped_mid_command():
    """At 80 columns every example line of every command's --help is one line of the help."""
    from typer.main import get_command

    for name, command in get_command(app).commands.items():
        examples = command.help.split("Example")[-1].splitlines()[1:] if "Example" in command.help else []
        lines = [l.strip() for l in examples if l.strip()]
        r = runner.invoke(app, [name, "--help"], env={"COLUMNS": "80"})
        shown = {l.strip() for l in r.stdout.splitlines()}
        assert lines and all(l in shown for l in lines), (name, lines, r.stdout)


def test_too_long_rows_name_the_longest_and_the_max_len_that_fits(tmp_path):
    pairs = write_pairs(tmp_path / "p.tsv", [("ab", "AB"), ("a" * 15, "A"), ("b", "B" * 19), ("c" * 14, "C")])
    r = invoke("train", pairs, "-m", tmp_path / "m", "--max-len", TINY_MAX_LEN)
    assert_clean_error(r, "line 2: input is 15 characters", "the longest row is 19 characters", "--max-len 19 fits it")


def test_a_string_given_as_predicts_file_points_to_stdin_and_explain(tiny_model):
    r = invoke("predict", tiny_model, "two hundred")
    assert_clean_error(r, "two hundred: no such file", f"echo 'two hundred' | transducer predict {tiny_model}",
                       f"transducer explain {tiny_model} 'two hundred'", code=2)
    assert r.stdout == ""


def test_summarize_lists_only_the_settings_that_apply(tiny_model):
    r = invoke("summarize", tiny_model)
    assert r.exit_code == 0, r.stderr
    training = r.stdout.split("training\n", 1)[1].split("final metrics")[0]
    assert "batch size" in training and "seed" in training
    for absent in ("lr patience", "lr factor", "member", "watch exact", "init from", "dropout", "distribute"):
        assert absent not in training, absent  # constant schedule, one model, no --init-from
    assert r.stdout.count("dropout") == 1  # the network's, in the config table
    summary = json.loads(invoke("summarize", tiny_model, "--json").stdout)
    assert summary["hyperparameters"]["lr_schedule"] == "constant"  # the JSON keeps every setting
