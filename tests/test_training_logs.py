"""Watching training: train's --log-format (plain, jsonl, rich) and summarize's curves."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

import pytest
from rich.console import Console
from typer.testing import CliRunner

from conftest import TINY_MAX_LEN
from conftest import subprocess_env
from transducer.cli import app
from transducer.ui.render import rounded

runner = CliRunner()
TINY = ["--hidden", "8", "--max-len", str(TINY_MAX_LEN), "--batch-size", "32"]
METRICS = ("loss", "char_acc", "exact_match", "val_loss", "val_char_acc", "val_exact_match", "learning_rate")


@pytest.mark.slow
@pytest.mark.graph  # many epochs: compiled steps are faster
def test_plain_lines_reach_a_log_file_as_each_epoch_ends_and_are_never_cut(pairs_file, tmp_path):
    """stderr to a file (as under nohup), a 40-column terminal setting: epoch 1's line is
    in the file before epoch 2's checkpoint exists, every line whole."""
    model_dir = tmp_path / "m"
    latest = tmp_path / "m.partial" / "checkpoint" / "latest.json"
    log = tmp_path / "train.log"
    env = dict(subprocess_env(), COLUMNS="40")
    epochs = 3
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "transducer", "train", str(pairs_file), "-m", str(model_dir),
             "--epochs", str(epochs), "--patience", "9", *TINY],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=env,
        )
    seen = {}  # checkpointed epoch -> the log's text at that moment
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            done = json.loads(latest.read_text())["epoch"]
        except (OSError, ValueError, KeyError):
            done = 0
        if done and done not in seen:
            seen[done] = log.read_text(encoding="utf-8")
        time.sleep(0.02)
    assert proc.wait(timeout=60) == 0, log.read_text()
    # Each epoch's line is flushed when the epoch ends, before its checkpoint is written.
    assert seen, "never saw a checkpoint while training ran"
    first = min(seen)
    assert first < epochs and f"epoch {first}/{epochs}" in seen[first], seen

    lines = log.read_text(encoding="utf-8").splitlines()
    epoch_lines = [l for l in lines if l.startswith("epoch ")]
    assert [l.split()[1] for l in epoch_lines] == [f"{e}/{epochs}" for e in range(1, epochs + 1)]
    metrics = json.loads((model_dir / "metrics.json").read_text())
    for e, line in enumerate(epoch_lines):
        assert len(line) > 40  # one line, however narrow the terminal says it is
        words = line.split()
        assert words[2].endswith("s")  # the epoch's elapsed time
        for name in METRICS:
            value = float(words[words.index(name) + 1])
            assert value == pytest.approx(metrics["history"][name][e], abs=6e-4, rel=1e-3)
    assert lines[0].startswith("training on ")
    assert any(l.startswith("final (epoch ") for l in lines)
    assert "training took" in lines[-1] and str(model_dir) in lines[-1]
    assert not any("━" in l or "…" in l for l in lines)  # no bar, nothing cut


@pytest.fixture(scope="module")
def jsonl_run(pairs_file, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("logs") / "m"
    r = runner.invoke(
        app, ["train", str(pairs_file), "-m", str(model_dir), "--epochs", "2", "--log-format", "jsonl", *TINY]
    )
    assert r.exit_code == 0, r.stderr
    return r, model_dir


@pytest.mark.slow
def test_jsonl_rows_parse_and_carry_the_metrics(jsonl_run):
    r, model_dir = jsonl_run
    assert r.stdout == ""
    rows = [json.loads(line) for line in r.stderr.splitlines() if line.strip()]
    assert [row["event"] for row in rows] == ["start", "epoch", "epoch", "end"]
    metrics = json.loads((model_dir / "metrics.json").read_text())
    start, *epochs, end = rows
    assert start["n_train"] + start["n_val"] == 300 and start["parameters"] > 0
    for e, row in enumerate(epochs):
        assert row["epoch"] == e + 1 and row["epochs"] == 2 and row["seconds"] > 0
        for name in METRICS:
            assert row[name] == rounded(metrics["history"][name][e])  # 6 significant digits, as --json
        assert row["learning_rate"] == 0.003  # not 0.003000000026077032
    assert end["best_epoch"] == metrics["best_epoch"] and end["epochs_run"] == 2
    assert end["train_seconds"] == rounded(metrics["train_seconds"]) and end["final"] == rounded(metrics["final"])
    assert rows == rounded(rows)  # every number in the stream is already rounded


def test_summarize_shows_the_curves_of_metrics_json(jsonl_run):
    _, model_dir = jsonl_run
    metrics = json.loads((model_dir / "metrics.json").read_text())
    config = json.loads((model_dir / "config.json").read_text())

    j = runner.invoke(app, ["summarize", str(model_dir), "--json"])
    assert j.exit_code == 0, j.stderr
    summary = json.loads(j.stdout)
    assert summary["curves"] == rounded(metrics["history"])  # --json numbers: 6 significant digits
    assert summary["best_epoch"] == metrics["best_epoch"] and summary["train_seconds"] == rounded(metrics["train_seconds"])
    assert summary["curve_names"]["val_exact_match"] == "validation exact match"
    assert summary["final_names"]["cer"] == "validation character error rate"
    hp = summary["hyperparameters"]
    for key in ("epochs", "batch_size", "learning_rate", "seed"):
        assert hp[key] == rounded(config["train"][key])
    assert hp["dropout"] == rounded(config["model"]["dropout"])

    r = runner.invoke(app, ["summarize", str(model_dir)])
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    for text in ("training time", "batch size", "learning rate", "dropout", "seed",
                 "validation exact match", "validation loss", "loss per epoch",
                 f"▲ best epoch ({metrics['best_epoch']})", "validation character error rate"):
        assert text in out, text
    assert "decoded_exact_match" not in out  # readable names only


def test_summarize_json_needs_a_model_directory():
    r = runner.invoke(app, ["summarize", "--json"])
    assert r.exit_code == 2 and "--json" in r.stderr


def test_log_format_is_checked_before_tensorflow_is_imported():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from transducer.cli import app\n"
        "r = CliRunner().invoke(app, ['train', 'x.tsv', '-m', 'm', '--log-format', 'xml'])\n"
        "assert 'tensorflow' not in sys.modules, 'imported TF'\n"
        "print(r.exit_code, '--log-format' in r.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "True"]


def test_rich_progress_keeps_each_finished_epochs_line_with_its_elapsed_time():
    import re

    from transducer.ui.progress import RichReporter

    buf = io.StringIO()
    reporter = RichReporter(Console(file=buf, force_terminal=True, width=200, color_system=None))
    reporter.start({"n_train": 10, "n_val": 2, "input_vocab": 5, "output_vocab": 5, "parameters": 100})
    for epoch in (1, 2):
        reporter.epoch_begin(epoch, 2, 3)
        for step in (1, 2, 3):
            reporter.batch_end(step, {"loss": 1.0, "char_acc": 0.5})
        reporter.epoch_end(epoch, {"loss": 1.0, "char_acc": 0.5, "val_loss": 0.9, "learning_rate": 0.003})
    reporter.close()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", buf.getvalue().replace("\r", "\n"))
    done = [l for l in text.splitlines() if l.startswith("epoch ") and "took " in l]
    assert [l.split()[1] for l in done] == ["1/2", "2/2"]  # each finished epoch once, printed for good
    assert all("3/3" in l and "val_loss 0.9000" in l and "lr 0.003" in l and "eta" not in l for l in done), done
