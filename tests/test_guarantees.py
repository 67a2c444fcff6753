"""The README's Guarantees, one test (or property) each.

1. Prediction never loses or reorders a line.
2. Training is resumable and its output is never corrupt.
3. Loading is safe and checked.
4. Bad training data is handled or reported with file and line.

"Line" means what `wc -l` and the reader mean: bytes up to b"\\n" (a "\\r" before it is
part of the line ending). \\r alone, U+2028, U+0085 and friends are characters inside a
line, never line breaks.
"""

from __future__ import annotations

import errno
import hashlib
import io
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import TINY_MAX_LEN, make_pairs, write_pairs, ROOT, subprocess_env, documents, expected_raw_lines, CLI_SMALL, weights_of, SignalAfterEpoch, wait_for_checkpoint
from conftest import default_sigint, invoke, random_model_dir, runner
from transducer.cli import app
from transducer.ui.render import RENDERERS, write_batch
from transducer.core.config import ModelConfig, TrainConfig, TransducerError
from transducer.core.data import read_pairs
from transducer.inference.predict import PredictStats, Predictor, predict_stream


def assert_clean_error(result, *fragments, code=2):
    """Non-zero exit with `code`, a one-line error on stderr naming the problem, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for f in fragments:
        assert f in errors[0], errors[0]


# --- 1. prediction never loses or reorders a line ----------------------------------------

def text_of(x) -> str:
    return x if isinstance(x, str) else "".join(x.pieces())


@pytest.fixture(scope="module", params=["aligned", "edit"])
def predictor(request, tiny_model, tmp_path_factory) -> Predictor:
    """The trained tiny aligned model, or a random edit model (its own decoding: pointers,
    actions, COPY writing the input's characters) of the same max_len."""
    if request.param == "aligned":
        return Predictor(tiny_model, engine="numpy")
    model_dir, _ = random_model_dir(tmp_path_factory.mktemp("edit"), arch="edit", max_len=TINY_MAX_LEN, end_bias=-1.0)
    return Predictor(model_dir, engine="numpy")


def run_library(predictor, data: bytes, on_long: str, errors="strict", batch_size=3):
    """[(line_no, input, output)] and the rendered bytes per format, until done or an error."""
    rows, rendered = [], {fmt: io.BytesIO() for fmt in RENDERERS}
    error = None
    try:
        for batch in predict_stream(predictor.with_options(on_long=on_long, encoding_errors=errors, batch_size=batch_size), io.BytesIO(data), "<doc>", PredictStats()):
            for fmt, out in rendered.items():  # inside the loop: spooled lines live until the next batch
                write_batch(out, batch, RENDERERS[fmt])
            rows += [(p.line_no, text_of(p.input), text_of(p.output)) for p in batch]
    except TransducerError as e:
        error = e
    return rows, {fmt: out.getvalue() for fmt, out in rendered.items()}, error


def check_rendered(rows, rendered):
    """Every format has exactly one \\n-terminated line per row, in order."""
    n = len(rows)
    text = rendered["text"]
    assert text.count(b"\n") == n and (n == 0 or text.endswith(b"\n"))
    assert text.split(b"\n")[:-1] == [o.encode("utf-8") for _, _, o in rows]
    assert rendered["tsv"] == "".join(f"{i}\t{o}\n" for _, i, o in rows).encode("utf-8")
    jsonl = rendered["jsonl"].decode("utf-8")
    assert len(jsonl.splitlines()) == n  # safe even for readers splitting on U+2028, U+0085...
    assert [json.loads(l)["input"] for l in jsonl.split("\n")[:-1]] == [i for _, i, _ in rows]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=documents(), on_long=st.sampled_from(["truncate", "copy"]), batch_size=st.integers(1, 4))
@example(data="👍🏽\r".encode() * 20 + "\r\n\n\u2028\r\n".encode() + "é".encode() * 30, on_long="copy", batch_size=2)
@example(data="👍🏽".encode() * 20 + b"\r\nab\r", on_long="truncate", batch_size=1)
def test_every_line_comes_out_once_in_order(predictor, data, on_long, batch_size):
    lines = [l.decode("utf-8") for l in expected_raw_lines(data)]
    rows, rendered, error = run_library(predictor, data, on_long, batch_size=batch_size)
    assert error is None
    assert [r[0] for r in rows] == list(range(1, len(lines) + 1))
    assert [r[1] for r in rows] == lines
    for (_, inp, out) in rows:
        assert "\n" not in out
        if on_long == "copy" and len(inp) > TINY_MAX_LEN:
            assert out == inp
        if inp == "":
            assert out == ""
    check_rendered(rows, rendered)


@settings(max_examples=60, deadline=None)
@given(data=documents())
def test_long_line_error_stops_after_writing_every_earlier_line(predictor, data):
    lines = [l.decode("utf-8") for l in expected_raw_lines(data)]
    first_long = next((k for k, l in enumerate(lines, 1) if len(l) > TINY_MAX_LEN), None)
    rows, rendered, error = run_library(predictor, data, "error")
    if first_long is None:
        assert error is None and len(rows) == len(lines)
    else:
        assert error is not None and error.exit_code == 1
        assert str(error).startswith(f"<doc>:{first_long}: ") and "--on-long" in str(error)
        assert [r[1] for r in rows] == lines[: first_long - 1]
    check_rendered(rows, rendered)


@settings(max_examples=80, deadline=None)
@given(data=st.binary(max_size=200), errors=st.sampled_from(["strict", "replace"]))
def test_arbitrary_bytes_never_lose_a_line(predictor, data, errors):
    raw = expected_raw_lines(data)
    rows, rendered, error = run_library(predictor, data, "copy", errors=errors)
    if errors == "replace":
        assert error is None
        assert [r[1] for r in rows] == [l.decode("utf-8", "replace") for l in raw]
    else:
        bad = []
        for k, l in enumerate(raw, 1):
            try:
                l.decode("utf-8")
            except UnicodeDecodeError:
                bad.append(k)
        if not bad:
            assert error is None and len(rows) == len(raw)
        else:
            assert error.exit_code == 1 and f"<doc>:{bad[0]}: not valid UTF-8" in str(error)
            assert len(rows) == bad[0] - 1
    check_rendered(rows, rendered)


def test_unseen_characters_are_counted_not_dropped(predictor):
    stats = PredictStats()
    batches = list(predict_stream(predictor, io.BytesIO("a#b\n€€\n\x00\nab\n".encode()), stats=stats))
    assert [p.input for b in batches for p in b] == ["a#b", "€€", "\x00", "ab"]
    assert (stats.unknown_chars, stats.unknown_lines) == (4, 3)


def test_cli_exit_status_and_line_count_on_awkward_input(tiny_model):
    data = "ab\r\n\x00c\r\n\u2028\x85\rX\n\nlast without newline é👍🏽".encode()
    for fmt in ("text", "tsv", "jsonl"):
        r = runner.invoke(app, ["predict", str(tiny_model), "--format", fmt, "--on-long", "copy"], input=data)
        assert r.exit_code == 0, r.stderr
        assert r.stdout_bytes.count(b"\n") == 5  # what `wc -l` reports
    r = runner.invoke(app, ["predict", str(tiny_model), "--format", "tsv"], input=data)
    assert r.exit_code == 1 and r.stdout_bytes.count(b"\n") == 4  # line 5 is over max_len
    assert "<stdin>:5:" in r.stderr


def test_invalid_utf8_names_the_line_or_is_replaced(tiny_model):
    data = b"ab\ncd\n\xffe\nXY\n"
    r = runner.invoke(app, ["predict", str(tiny_model)], input=data)
    assert_clean_error(r, "<stdin>:3:", "UTF-8", code=1)
    assert r.stdout_bytes.count(b"\n") == 2
    r = runner.invoke(app, ["predict", str(tiny_model), "--encoding-errors", "replace", "--format", "tsv"], input=data)
    assert r.exit_code == 0 and r.stdout.split("\n")[2].startswith("\ufffde\t")
    # Inside a line too long to hold in memory, the error still names the line.
    huge = b"a" * 10_000 + b"\xff" + b"b" * 10
    r = runner.invoke(app, ["predict", str(tiny_model), "--on-long", "copy"], input=b"ab\n" + huge + b"\n")
    assert_clean_error(r, "<stdin>:2:", "byte 10001", code=1)


def _peak_rss_kb(args: list[str], stdout_path: Path) -> tuple[int, str]:
    """Run `python -m transducer ARGS > stdout_path` and return its peak RSS (KiB) and stderr."""
    wrapper = (
        "import resource, subprocess, sys\n"
        f"with open({str(stdout_path)!r}, 'wb') as out:\n"
        f"    p = subprocess.run([sys.executable, '-m', 'transducer', *{args!r}], stdout=out, stderr=subprocess.PIPE)\n"
        "sys.stderr.write(p.stderr.decode())\n"
        "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=300, env=subprocess_env())
    code, rss = out.stdout.split()
    assert int(code) == 0, out.stderr
    return int(rss), out.stderr


@pytest.mark.slow
def test_a_huge_line_is_streamed_not_held_in_memory(tiny_model, tmp_path):
    size = 50 * 2**20
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.write(b"ab\n")
        for _ in range(size // 2**20):
            f.write(b"aXb\x00" * 2**18)
        f.write(b"\r\ncd\n")
    small = tmp_path / "small.txt"
    small.write_bytes(b"ab\n" + b"aXb\x00" * 100 + b"\ncd\n")
    base, _ = _peak_rss_kb(["predict", str(tiny_model), str(small), "--on-long", "copy", "--format", "tsv"], tmp_path / "o1")
    peak, err = _peak_rss_kb(["predict", str(tiny_model), str(big), "--on-long", "copy", "--format", "tsv"], tmp_path / "o2")
    # Read whole, the line would cost >= 100 MB (its bytes and its str, twice for tsv).
    assert peak - base < 30 * 1024, (base, peak)
    out = (tmp_path / "o2").read_bytes()
    lines = out.split(b"\n")
    assert len(lines) == 4 and lines[3] == b""
    line = b"aXb\x00" * (size // 4)
    assert lines[1] == line + b"\t" + line  # echoed whole, "\r\n" ending removed
    assert "copied unchanged" in err
    peak, _ = _peak_rss_kb(["predict", str(tiny_model), str(big), "--on-long", "truncate"], tmp_path / "o3")
    assert peak - base < 30 * 1024, (base, peak)
    assert (tmp_path / "o3").read_bytes().count(b"\n") == 3


@pytest.mark.slow
def test_broken_pipe_downstream_exits_quietly(tiny_model, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("abc\nXYZ\n" * 20_000, encoding="utf-8")
    producer = subprocess.Popen(
        [sys.executable, "-m", "transducer", "predict", str(tiny_model), str(big), "--batch-size", "256"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env(),
    )
    head = subprocess.Popen(["head", "-1"], stdin=producer.stdout, stdout=subprocess.PIPE)
    producer.stdout.close()  # only `head` holds the pipe's read end now
    first, _ = head.communicate(timeout=120)
    stderr = producer.stderr.read().decode()
    assert producer.wait(timeout=120) == 141  # 128 + SIGPIPE, as shells report a closed pipe
    assert first.count(b"\n") == 1
    assert "Traceback" not in stderr and "Error" not in stderr, stderr


# --- 2. training is resumable and never corrupt --------------------------------------------

SMALL = dict(max_len=TINY_MAX_LEN, hidden=8)
def files_digest(model_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(model_dir.iterdir())}


@pytest.fixture(scope="module")
def small_pairs(tmp_path_factory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("small") / "pairs.tsv", make_pairs(120, seed=3))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, small_pairs) -> Path:
    from transducer.training.loop import train

    model_dir = tmp_path_factory.mktemp("runs") / "whole"
    train(str(small_pairs), model_dir, ModelConfig(**SMALL), TrainConfig(epochs=3, batch_size=16, patience=100, seed=7))
    return model_dir


@pytest.mark.slow
def test_same_seed_and_data_give_identical_weights(uninterrupted, small_pairs, tmp_path):
    from transducer.training.loop import train

    train(str(small_pairs), tmp_path / "again", ModelConfig(**SMALL), TrainConfig(epochs=3, batch_size=16, patience=100, seed=7))
    a, b = weights_of(uninterrupted), weights_of(tmp_path / "again")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.slow
def test_interrupted_then_resumed_equals_uninterrupted(uninterrupted, small_pairs, tmp_path):
    """SIGTERM here; the real-process test below sends SIGINT (both take the same path)."""
    sig = signal.SIGTERM
    from transducer.training import checkpoint
    from transducer.training.loop import train

    model_dir = tmp_path / "m"
    mcfg, tcfg = ModelConfig(**SMALL), TrainConfig(epochs=3, batch_size=16, patience=100, seed=7)
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN under `pytest &`
    stopped = train(str(small_pairs), model_dir, mcfg, tcfg, reporter=SignalAfterEpoch(1, sig))
    assert stopped.interrupted and stopped.signal == sig.name and stopped.epochs_run == 1
    # The best model so far is published, and the checkpoint is kept for --resume.
    assert json.loads((model_dir / "metrics.json").read_text())["epochs_run"] == 1
    assert checkpoint.load(tmp_path / "m.partial").epoch == 1
    assert signal.getsignal(signal.SIGINT) == before  # handlers restored

    with pytest.raises(TransducerError, match="--resume"):  # a fresh run would throw the checkpoint away
        train(str(small_pairs), model_dir, mcfg, tcfg)
    done = train(str(small_pairs), model_dir, mcfg, tcfg, resume=True)
    assert done.resumed_from == 1 and done.epochs_run == 3 and not done.interrupted
    a, b = weights_of(uninterrupted), weights_of(model_dir)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["history"] == json.loads((uninterrupted / "metrics.json").read_text())["history"]
    assert not (tmp_path / "m.partial").exists()
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "metrics.json", "model.keras", "weights.npz"]


CHECKPOINT_COMBINATIONS = [
    *itertools.product(("aligned", "seq2seq", "edit"), (False, True), (1, 2), ("dense", "time-distributed"), (True, False)),
    *itertools.product(("label",), (False, True), (1, 2), ("dense",), (True, False)),
    *itertools.product(("edit",), (False, True), (1, 2), ("dense", "time-distributed"), (True, False)),
]


@pytest.mark.parametrize("arch,bidirectional,layers,head,reset_after", CHECKPOINT_COMBINATIONS)
def test_a_checkpoint_restores_every_weight_and_optimizer_slot(tmp_path, arch, bidirectional, layers, head, reset_after):
    """What --resume relies on, for every architecture: a checkpoint written from one model
    and restored into a freshly built one gives each layer its own weights and each Adam
    slot its own values (matched by name, not only by position), and keeps the best
    weights. The interrupted-then-resumed test above checks the whole run for one of them."""
    from transducer.training import checkpoint
    from transducer.networks.build import build_model, compile_model
    from transducer.training.loop import NullReporter, _BestKeeper

    cfg = ModelConfig(
        arch=arch, bidirectional=bidirectional, layers=layers, head=head, reset_after=reset_after,
        max_len=5, hidden=3, input_vocab_size=7, output_vocab_size=6,
    )
    rng = np.random.default_rng(0)

    def fresh():
        model = build_model(cfg, cfg.variable_length)
        compile_model(model, 1e-3, cfg.masked)
        model.optimizer.build(model.trainable_variables)
        return model, _BestKeeper(TrainConfig(), "val_loss", NullReporter(), 3, 1)

    saved, keeper = fresh()
    for v in [*saved.variables, *saved.optimizer.variables]:  # distinct values everywhere
        v.assign(rng.normal(size=v.shape).astype(v.dtype) if "float" in str(v.dtype) else np.full(v.shape, 5, v.dtype))
    keeper.best_weights = [w + 1 for w in saved.get_weights()]
    keeper.progress.best_epoch = 1
    checkpoint.save(tmp_path, 1, {"model": cfg.to_dict()}, saved, keeper)

    restored, keeper2 = fresh()
    assert checkpoint.restore(checkpoint.load(tmp_path), restored, keeper2) == 1
    for layer in saved.layers:
        for a, b in zip(layer.get_weights(), restored.get_layer(layer.name).get_weights(), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=layer.name)

    def slot(v):  # "adam_1/gru_1_gru_cell_kernel_momentum": the optimizer's name is numbered per process
        return v.path.split("/", 1)[1]

    slots = {slot(v): v.numpy() for v in restored.optimizer.variables}
    for v in saved.optimizer.variables:
        np.testing.assert_array_equal(slots[slot(v)], v.numpy(), err_msg=v.path)
    assert keeper2.best_epoch == 1
    for a, b in zip(keeper.best_weights, keeper2.best_weights, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_resume_refuses_a_different_run_or_a_missing_checkpoint(small_pairs, tmp_path):
    from transducer.training.loop import train

    model_dir = tmp_path / "m"
    with pytest.raises(TransducerError, match="no checkpoint"):
        train(str(small_pairs), model_dir, ModelConfig(**SMALL), TrainConfig(epochs=2), resume=True)
    train(str(small_pairs), model_dir, ModelConfig(**SMALL), TrainConfig(epochs=3, batch_size=16), reporter=SignalAfterEpoch(1))
    r = invoke("train", small_pairs, "--model-dir", model_dir, *CLI_SMALL[:4], "--hidden", 4, "--resume")
    assert_clean_error(r, "cannot --resume", "hidden was 8, now 4")
    other = write_pairs(tmp_path / "other.tsv", make_pairs(120, seed=4))
    # Options are compared before TensorFlow loads; the data (its scan's fingerprint) after.
    r = invoke("train", other, "--model-dir", model_dir, "--max-len", TINY_MAX_LEN, "--hidden", 8, "--batch-size", 16, "--resume")
    assert_clean_error(r, "pairs differ")


def _start_training(pairs: Path, model_dir: Path, *extra) -> subprocess.Popen:
    args = ["train", pairs, "--model-dir", model_dir, *CLI_SMALL, "--epochs", 1000, *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "transducer", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env(), preexec_fn=default_sigint,
    )


@pytest.mark.slow
def test_ctrl_c_in_a_real_process_saves_and_says_how_to_resume(small_pairs, tmp_path):
    model_dir = tmp_path / "m"
    proc = _start_training(small_pairs, model_dir)
    wait_for_checkpoint(tmp_path / "m.partial", proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 130, err
    assert out == b"" and "Traceback" not in err
    assert "--resume" in " ".join(err.split())
    assert (model_dir / "model.keras").is_file()  # the best model so far, usable at once
    done_epochs = json.loads((tmp_path / "m.partial" / "checkpoint" / "latest.json").read_text())["epoch"]

    # --epochs at the checkpoint: nothing left to train, the best model so far is published.
    r = invoke("train", small_pairs, "--model-dir", model_dir, *CLI_SMALL, "--epochs", done_epochs, "--resume")
    assert r.exit_code == 0, r.stderr
    assert f"resuming after epoch {done_epochs}" in r.stderr
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["epochs_run"] == done_epochs and metrics["resumed_from_epoch"] == done_epochs


@pytest.mark.slow
def test_kill_9_mid_training_leaves_the_previous_model_and_a_resumable_checkpoint(tiny_model, small_pairs, tmp_path):
    from transducer.training import checkpoint

    model_dir = tmp_path / "m"
    shutil.copytree(tiny_model, model_dir)
    before = files_digest(model_dir)
    proc = _start_training(small_pairs, model_dir, "--force")
    wait_for_checkpoint(tmp_path / "m.partial", proc)
    time.sleep(0.3)  # into a later epoch, or in the middle of writing its checkpoint
    proc.kill()
    proc.communicate(timeout=60)
    assert files_digest(model_dir) == before  # the previous final model, untouched
    ckpt = checkpoint.load(tmp_path / "m.partial")  # the last complete checkpoint reads back
    assert ckpt.epoch >= 1

    r = invoke("train", small_pairs, "--model-dir", model_dir, *CLI_SMALL, "--epochs", ckpt.epoch, "--resume", "--force")
    assert r.exit_code == 0, r.stderr
    assert files_digest(model_dir) != before
    assert json.loads((model_dir / "config.json").read_text())["model"]["hidden"] == 8
    assert not (tmp_path / "m.partial").exists()


@pytest.mark.slow
def test_full_disk_is_one_clear_line_and_no_half_written_model(tiny_model, small_pairs, tmp_path, monkeypatch):
    model_dir = tmp_path / "m"
    shutil.copytree(tiny_model, model_dir)
    before = files_digest(model_dir)
    real_replace = os.replace

    def full_disk_at_metrics(src, dst, *a, **kw):
        if Path(dst).name == "metrics.json":  # the final save, after every checkpoint
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(os, "replace", full_disk_at_metrics)
    r = invoke("train", small_pairs, "--model-dir", model_dir, *CLI_SMALL, "--epochs", 1, "--force")
    assert_clean_error(r, "cannot write the model", "No space left on device")
    assert files_digest(model_dir) == before
    assert not (tmp_path / "m.partial" / "final").exists()
    monkeypatch.setattr(os, "replace", real_replace)
    # The checkpoint survived, so the run can still be finished without retraining.
    r = invoke("train", small_pairs, "--model-dir", model_dir, *CLI_SMALL, "--epochs", 1, "--force", "--resume")
    assert r.exit_code == 0, r.stderr
    assert files_digest(model_dir) != before

    def full_disk(src, dst, *a, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full_disk)  # now the first checkpoint cannot be written
    before = files_digest(model_dir)
    r = invoke("train", small_pairs, "--model-dir", model_dir, *CLI_SMALL, "--epochs", 1, "--force")
    assert_clean_error(r, "cannot write the checkpoint", "No space left on device")
    assert files_digest(model_dir) == before


def test_unwritable_model_dir_is_a_clear_error_before_training(small_pairs, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    r = invoke("train", small_pairs, "--model-dir", blocker / "m", *CLI_SMALL)
    assert_clean_error(r, "cannot create directory")
    r = invoke("train", small_pairs, "--model-dir", blocker, *CLI_SMALL, "--force")
    assert_clean_error(r, "not a directory")


# --- 3. loading is safe and checked --------------------------------------------------------


def _edit_config(model_dir: Path, change) -> None:
    cfg = json.loads((model_dir / "config.json").read_text())
    change(cfg)
    (model_dir / "config.json").write_text(json.dumps(cfg))


def _grow_input_vocab(cfg):
    cfg["input_vocab"].append("☃")
    cfg["model"]["input_vocab_size"] += 1


def _shrink_output_vocab(cfg):
    cfg["output_vocab"].pop()
    cfg["model"]["output_vocab_size"] -= 1


BREAKAGES = {
    "no config": (lambda d: (d / "config.json").unlink(), "config.json is missing"),
    "no model.keras": (lambda d: (d / "model.keras").unlink(), "model.keras is missing"),
    "no weights.npz": (lambda d: (d / "weights.npz").unlink(), "weights.npz is missing"),
    "corrupt zip": (lambda d: (d / "model.keras").write_bytes(b"PK\x03\x04 this is not a zip"), "corrupt model file"),
    "truncated zip": (lambda d: (d / "model.keras").write_bytes((d / "model.keras").read_bytes()[:-300]), "model.keras"),
    "corrupt weights": (lambda d: (d / "weights.npz").write_bytes(b"garbage"), "unreadable weights"),
    "newer schema": (lambda d: _edit_config(d, lambda c: c.update(schema_version=99)), "schema_version 99 is newer"),
    "bad json": (lambda d: (d / "config.json").write_text("{"), "unreadable config"),
    "input vocab vs weights": (lambda d: _edit_config(d, _grow_input_vocab), "vocabularies"),
    "output vocab vs weights": (lambda d: _edit_config(d, _shrink_output_vocab), "vocabularies"),
}
USES = {  # which commands read which file (summarize: config.json and weights.npz, not model.keras)
    "no model.keras": ("keras",), "corrupt zip": ("keras",), "truncated zip": ("keras",),
    "no weights.npz": ("numpy",), "corrupt weights": ("numpy", "summarize"),
}


def _broken_copy(tiny_model: Path, tmp_path: Path, breaker) -> Path:
    """A copy of the tiny model directory with `breaker` applied to it."""
    model_dir = tmp_path / "m"
    shutil.copytree(tiny_model, model_dir)
    breaker(model_dir)
    return model_dir


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_a_broken_model_directory_is_a_one_line_error(tiny_model, tmp_path, breakage):
    breaker, fragment = BREAKAGES[breakage]
    model_dir = _broken_copy(tiny_model, tmp_path, breaker)
    for use in USES.get(breakage, ("summarize", "keras", "numpy")):
        if use == "summarize":
            r = invoke("summarize", model_dir)
        else:
            r = invoke("predict", model_dir, "--engine", use, input="abc\n")
            assert r.stdout == ""
        assert_clean_error(r, fragment, code=2)


def _rewrite_weights(model_dir: Path, change) -> None:
    arrays = weights_of(model_dir)
    np.savez(model_dir / "weights.npz", **change(arrays))


WEIGHT_BREAKAGES = {
    "truncated": (lambda d: (d / "weights.npz").write_bytes((d / "weights.npz").read_bytes()[:1000]), "truncated or corrupt"),
    "empty": (lambda d: (d / "weights.npz").write_bytes(b""), "empty file"),
    "random bytes": (lambda d: (d / "weights.npz").write_bytes(np.random.default_rng(0).bytes(5000)), "not a .npz archive"),
    "object array": (lambda d: _rewrite_weights(d, lambda a: {**a, "dense/bias": np.array([{}], dtype=object)}), "object arrays"),
    "text array": (lambda d: _rewrite_weights(d, lambda a: {**a, "dense/bias": np.array(["x"])}), "not a numeric array"),
    "renamed array": (lambda d: _rewrite_weights(d, lambda a: {k.replace("gru_1", "gru_9"): v for k, v in a.items()}), "no weight 'gru_1/gru_cell/kernel'"),
    "wrong shape": (lambda d: _rewrite_weights(d, lambda a: {**a, "gru_1/gru_cell/kernel": np.zeros((3, 3), np.float32)}), "weights do not fit"),
}


@pytest.mark.parametrize("breakage", list(WEIGHT_BREAKAGES))
def test_a_damaged_weights_file_is_a_one_line_error_that_never_advises_pickle(tiny_model, tmp_path, breakage):
    breaker, fragment = WEIGHT_BREAKAGES[breakage]
    model_dir = _broken_copy(tiny_model, tmp_path, breaker)
    test = write_pairs(tmp_path / "t.tsv", make_pairs(3))
    for r in (invoke("predict", model_dir, input="abc\n"), invoke("evaluate", model_dir, test)):
        assert_clean_error(r, fragment, "weights", f"transducer export {model_dir}", code=2)
        assert r.stdout == "" and "pickle" not in r.stderr.replace("never loaded", "")
    assert invoke("export", model_dir).exit_code == 0  # the advice works
    assert invoke("predict", model_dir, input="abc\n").exit_code == 0


def test_a_model_file_that_would_run_code_is_refused(tiny_model, tmp_path):
    from transducer.networks.tf import keras

    model_dir = tmp_path / "m"
    shutil.copytree(tiny_model, model_dir)
    marker = tmp_path / "code_ran"

    payload = lambda x, p=str(marker): (open(p, "w").close(), x)[1]  # noqa: E731: serialized as bytecode
    info = json.loads((model_dir / "config.json").read_text())["model"]
    inputs = keras.Input(shape=(info["max_len"], info["input_vocab_size"]), name="chars")
    hijack = keras.layers.Lambda(payload, name="softmax")(inputs)
    out = keras.layers.Dense(info["output_vocab_size"], name="dense")(hijack)
    keras.Model(inputs, out).save(model_dir / "model.keras")
    marker.unlink()  # building the model above called it once
    r = invoke("predict", model_dir, "--engine", "keras", input="abc\n")
    assert_clean_error(r, "refused", "Lambda", code=2)
    assert invoke("summarize", model_dir).exit_code == 0  # its table never reads model.keras
    assert not marker.exists()
    # Keras's own safe mode, the second line of defence, refuses it too.
    with pytest.raises(ValueError, match="safe_mode"):
        keras.saving.load_model(model_dir / "model.keras", safe_mode=True)
    assert not marker.exists()


def test_no_pickle_anywhere():
    for path in (ROOT / "transducer").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "import pickle" not in text and "allow_pickle=True" not in text, path
        for line in text.splitlines():
            if "np.load(" in line:
                assert "allow_pickle=False" in line, (path, line)


# --- 4. bad training data ------------------------------------------------------------------


@pytest.mark.parametrize(
    "row,reason",
    [
        (b"no tab here", "line 3: no tab"),
        (b"a\tb\tc", "line 3: 2 tabs"),
        (b"\tempty", "line 3: empty input"),
        (b"x" * (TINY_MAX_LEN + 1) + b"\tshort", "line 3: input is 13 characters"),
        (b"ok\t" + b"y" * (TINY_MAX_LEN + 1), "line 3: output is 13 characters"),
        (b"caf\xe9\tCAFE", "line 3: not valid UTF-8 (byte 4 of the line)"),
    ],
)
def test_each_bad_row_is_reported_with_file_and_line(tmp_path, row, reason):
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"ab\tAB\ncd\tCD\n" + row + b"\nef\tEF\n")
    with pytest.raises(TransducerError) as e:
        read_pairs(str(path), TINY_MAX_LEN)
    assert str(e.value).startswith(f"{path}: 1 invalid row(s): {reason}")
    skipped = read_pairs(str(path), TINY_MAX_LEN, skip_invalid=True)
    assert skipped.pairs == [("ab", "AB"), ("cd", "CD"), ("ef", "EF")]
    assert [r.line_no for r in skipped.invalid] == [3]


def test_bom_crlf_duplicates_and_conflicts(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_bytes(b"\xef\xbb\xbfab\tAB\r\ncd\tCD\r\n\r\nab\tAB\nab\tXX\ncd\tCD")
    data = read_pairs(str(path), TINY_MAX_LEN)
    assert data.pairs == [("ab", "AB"), ("cd", "CD"), ("ab", "AB"), ("ab", "XX"), ("cd", "CD")]
    assert data.line_nos == [1, 2, 4, 5, 6]
    assert (data.duplicates, data.first_duplicate) == (2, 4)
    assert data.conflicts == 1 and data.first_conflict == "line 5: input 'ab' has output 'XX', line 1 has 'AB'"


@pytest.mark.slow
def test_skip_invalid_summarises_by_reason(tmp_path):
    rows = [f"{a}\t{b}" for a, b in make_pairs(30)] + ["bad", "worse", "a\tb\tc", "\tx", "ab\tAB", "ab\tBA"]
    path = tmp_path / "some_bad.tsv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    r = invoke("train", path, "--model-dir", tmp_path / "m", "--skip-invalid", "--hidden", 4, "--epochs", 1, "--max-len", TINY_MAX_LEN)
    assert r.exit_code == 0, r.stderr
    text = " ".join(r.stderr.split())
    assert "skipped 4 invalid row(s) (2 no tab, 1 more than one tab, 1 empty input): line 31: no tab" in text
    assert "input(s) have more than one output" in text and "line 36: input 'ab'" in text


def test_tiny_data_and_empty_validation(tmp_path):
    # One pair: fewer rows than a batch, and a validation split that leaves zero rows.
    one = write_pairs(tmp_path / "one.tsv", make_pairs(1))
    r = invoke("train", one, "--model-dir", tmp_path / "c", "--max-len", TINY_MAX_LEN, "--hidden", 4, "--epochs", 1)
    assert r.exit_code == 0, r.stderr
    assert "training on 1 pairs, validating on 0" in r.stderr
    data = json.loads((tmp_path / "c" / "config.json").read_text())["data"]
    assert data["final_on"] == "training"  # early stopping and final metrics use the training loss
    empty_val = tmp_path / "empty_val.tsv"
    empty_val.write_text("\n\n")
    r = invoke("train", one, "--model-dir", tmp_path / "d", "--val-file", empty_val, "--max-len", TINY_MAX_LEN)
    assert_clean_error(r, "empty_val.tsv: no pairs")
