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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import TINY_MAX_LEN, make_pairs, write_pairs
from transducer.cli import _RENDER, _write_batch, app
from transducer.config import ModelConfig, TrainConfig, TransducerError
from transducer.data import read_pairs
from transducer.predict import PredictStats, Predictor, SpooledLine, predict_stream

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def invoke(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


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


def subprocess_env() -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT), COLUMNS="200")
    return env


# --- 1. prediction never loses or reorders a line ----------------------------------------

SPECIAL = ["\r", "\x00", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\t", "\u0301",
           "e\u0301", "👍🏽", "שלום", "\u202e", "\ufeff", "a", "b", "X", "Z", "€"]
CHAR = st.one_of(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), st.sampled_from(SPECIAL))
LINE = st.lists(CHAR, max_size=3 * TINY_MAX_LEN).map("".join)  # up to ~40 chars: some over max_len, some over its byte bound


@st.composite
def documents(draw) -> bytes:
    """Lines joined by \\n or \\r\\n, with or without a final line ending."""
    lines = draw(st.lists(LINE, max_size=10))
    ends = [draw(st.sampled_from(["\n", "\r\n"])) for _ in lines]
    text = "".join(l + e for l, e in zip(lines, ends))
    if lines and not draw(st.booleans()):
        text = text[: -len(ends[-1])]
    return text.encode("utf-8")


def expected_raw_lines(data: bytes) -> list[bytes]:
    """The lines of `data` as `wc -l` counts them (plus a last one without \\n)."""
    if not data:
        return []
    parts = data.split(b"\n")
    last = parts.pop()  # after the final \n: empty, or a last line without a newline
    lines = [p[:-1] if p.endswith(b"\r") else p for p in parts] + ([last] if last else [])
    if lines and lines[0].startswith(b"\xef\xbb\xbf"):
        lines[0] = lines[0][3:]
    return lines


def text_of(x) -> str:
    return x if isinstance(x, str) else "".join(x.pieces())


@pytest.fixture(scope="module")
def predictor(tiny_model) -> Predictor:
    return Predictor(tiny_model, engine="numpy")


def run_library(predictor, data: bytes, on_long: str, errors="strict", batch_size=3):
    """[(line_no, input, output)] and the rendered bytes per format, until done or an error."""
    rows, rendered = [], {fmt: io.BytesIO() for fmt in _RENDER}
    error = None
    try:
        for batch in predict_stream(predictor, io.BytesIO(data), "<doc>", on_long, errors, batch_size, PredictStats()):
            for fmt, out in rendered.items():  # inside the loop: spooled lines live until the next batch
                _write_batch(out, batch, _RENDER[fmt])
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
