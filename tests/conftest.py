"""Shared fixtures and helpers: a tiny synthetic dataset, a tiny model trained once per
session, random models for search oracles, CLI and subprocess helpers. Test modules import
helpers from here only, never from one another."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from transducer.cli import app
from transducer.core.artifacts import config_dict
from transducer.core.config import ModelConfig, TrainConfig
from transducer.core.vocab import END_ID, Vocab

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Tiny test models train eagerly: tracing a training graph costs 5-10 s a model, more than
# its few steps (networks/tf.py, TRANSDUCER_EAGER). Tests marked `graph` train with the compiled graph, as
# users do; subprocesses inherit the setting.
os.environ.setdefault("TRANSDUCER_EAGER", "1")

# No per-example deadline: on a busy machine (CI's 2 cores, pytest & beside other work) a
# case's time says nothing about the property; each test still sets its max_examples.
hypothesis_settings.register_profile("transducer", deadline=None)
hypothesis_settings.load_profile("transducer")

TINY_MAX_LEN = 12


def make_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Same-length, causal toy task: swap case and map 'a'->'@'. Learnable by a GRU."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        word = "".join(rng.choice("abcdeXYZ") for _ in range(rng.randint(1, 8)))
        pairs.append((word, word.swapcase().replace("A", "@")))
    return pairs


def write_pairs(path: Path, pairs) -> Path:
    path.write_text("".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")
    return path


@contextlib.contextmanager
def compiled_training():
    """Train with the traced graph inside the block, in this process and those it starts."""
    os.environ["TRANSDUCER_EAGER"] = "0"
    try:
        yield
    finally:
        os.environ["TRANSDUCER_EAGER"] = "1"


@pytest.fixture(autouse=True)
def _graph_mode(request):
    """A test marked `graph` trains with the traced graph, not eagerly. (A module whose
    module-scoped fixtures train too uses compiled_training in a module fixture.)"""
    if request.node.get_closest_marker("graph") is None:
        yield
        return
    with compiled_training():
        yield


@pytest.fixture(scope="session")
def pairs_file(tmp_path_factory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("data") / "pairs.tsv", make_pairs(300))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, pairs_file) -> Path:
    """An aligned model trained for 2 epochs through the library (not the CLI)."""
    from transducer.training.loop import train

    model_dir = tmp_path_factory.mktemp("models") / "tiny"
    train(
        str(pairs_file),
        model_dir,
        ModelConfig(max_len=TINY_MAX_LEN, hidden=16),
        TrainConfig(epochs=2, batch_size=32, seed=1),
    )
    return model_dir


# --- helpers shared by several test modules ---------------------------------------------

runner = CliRunner()


def invoke(*args, input=None):
    # prog_name: the name a user types, so messages read `transducer train --help`
    return runner.invoke(app, [str(a) for a in args], input=input, prog_name="transducer")


def assert_clean_error(result, *fragments, code=None):
    """A user error: non-zero exit, one line on stderr naming the problem, no traceback."""
    assert result.exit_code != 0, result.stdout
    if code is not None:
        assert result.exit_code == code
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert any("error" in l for l in lines), result.stderr
    for f in fragments:
        assert f in " ".join(result.stderr.split()), result.stderr


def default_sigint():
    """For subprocesses that are sent SIGINT: a process started from a background job
    (`pytest &`, nohup) inherits SIGINT ignored, and Python then installs no handler for
    it. Restoring the default before exec makes the child behave as if run from a
    terminal, however pytest itself was started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


RANDOM_MAX_LEN = 8


RANDOM_WORDS = ["abc", "cab", "a", "bbca", "ccccc", "acbacbac", "ba", "cabbage"]


def model_or_ensemble(tmp_path, name: str, members: int, make) -> Path:
    """`make(parent, name, seed)` -> a model directory. members 1: that model, at
    tmp_path/name; more: that many (seeds 0, 1, ...) assembled into tmp_path/name as
    `transducer assemble` does."""
    from transducer.core.artifacts import assemble

    if members == 1:
        return make(tmp_path, name, 0)
    parts = [make(tmp_path / "members", str(k), k - 1) for k in range(1, members + 1)]
    return assemble(parts, tmp_path / name)


def random_model_dir(tmp_path, name="m", gain=3.0, seed=0, end_bias=None, out_chars="abdeg", data=None, **cfg_kw):
    """A seq2seq (or aligned, label, edit) model with random, sharpened weights, written
    like `train` does.

    Untrained Keras weights give nearly uniform distributions, where near-ties make any
    comparison fragile; scaling them by `gain` gives peaked, distinct probabilities.
    out_chars: the output characters (an edit model's: those of its SUBSTITUTE and INSERT
    actions); end_bias: the head's bias of </s> (an edit model's: of every INSERT action,
    so that a random model does not insert up to its cap); data: config.json's "data"
    (e.g. an output_length).
    """
    from transducer.core.edits import EditActions
    from transducer.networks.build import build_model
    from transducer.networks.tf import keras
    from transducer.training.loop import save_model_dir

    edit = cfg_kw.get("arch") == "edit"
    in_vocab = Vocab.from_strings(["abcdeg"])
    out_vocab = EditActions.from_strings([out_chars]) if edit else Vocab.from_strings([out_chars])
    cfg = ModelConfig(
        **{"arch": "seq2seq", "max_len": RANDOM_MAX_LEN, "hidden": 6, **cfg_kw},
        input_vocab_size=len(in_vocab),
        output_vocab_size=len(out_vocab),
    )
    keras.utils.set_random_seed(seed)
    model = build_model(cfg, cfg.variable_length) if edit else build_model(cfg)
    model.set_weights([w * gain for w in model.get_weights()])
    if end_bias is not None:
        head = model.get_layer("time_distributed" if cfg.head == "time-distributed" else "dense")
        kernel, bias = head.get_weights()
        bias[[5 + len(out_vocab.chars) + k for k in range(len(out_vocab.chars))] if edit else END_ID] = end_bias
        head.set_weights([kernel, bias])
    model_dir = tmp_path / name
    cfg_json = config_dict(cfg, in_vocab, out_vocab, train=TrainConfig().to_dict(), data=data or {})
    save_model_dir(model, cfg_json, {"final": {}}, model_dir)
    return model_dir, model


ROOT = Path(__file__).resolve().parents[1]


def subprocess_env() -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT), COLUMNS="200")
    return env


# Runs CLI invocations (JSON on stdin: [{"args": [...], "input": str | None}, ...]) with
# CliRunner, in order, in a fresh process; prints one JSON result per invocation, with
# whether TensorFlow had been imported once it returned.
_CLI_IN_FRESH_PROCESS = """
import json, sys
from typer.testing import CliRunner
from transducer.cli import app
out = []
for case in json.load(sys.stdin):
    r = CliRunner().invoke(app, case["args"], input=case.get("input"))
    out.append({"exit_code": r.exit_code, "stdout": r.stdout, "stderr": r.stderr,
                "tensorflow": "tensorflow" in sys.modules or "keras" in sys.modules})
print(json.dumps(out))
"""


def invoke_in_fresh_process(cases: list[dict], timeout: float = 300) -> list[dict]:
    """`cases` (each {"args": [...], "input": optional stdin text}) through the CLI in one
    new Python process, which has imported neither TensorFlow nor anything else: each
    result has exit_code, stdout, stderr and `tensorflow`, True once any case so far
    imported it (so the first case showing True is the one that did)."""
    import subprocess

    payload = json.dumps([{"args": [str(a) for a in c["args"]], "input": c.get("input")} for c in cases])
    done = subprocess.run([sys.executable, "-c", _CLI_IN_FRESH_PROCESS], input=payload, capture_output=True,
                          text=True, env=subprocess_env(), timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


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


CLI_SMALL = ["--max-len", TINY_MAX_LEN, "--hidden", 8, "--batch-size", 16, "--patience", 100]


def weights_of(model_dir: Path) -> dict[str, np.ndarray]:
    with np.load(model_dir / "weights.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class SignalAfterEpoch:
    """A reporter that sends this process `sig` when epoch `at` ends: a real signal,
    delivered while fit is running, as Ctrl-C or `kill` would."""

    def __init__(self, at: int, sig=signal.SIGINT):
        self.at, self.sig = at, sig

    def start(self, info): pass
    def epoch_begin(self, epoch, epochs, steps): pass
    def batch_end(self, step, logs): pass

    def epoch_end(self, epoch, logs):
        if epoch == self.at:
            os.kill(os.getpid(), self.sig)


def wait_for_checkpoint(staging: Path, proc, timeout=240) -> int:
    latest = staging / "checkpoint" / "latest.json"
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()
        if latest.is_file():
            return json.loads(latest.read_text())["epoch"]
        time.sleep(0.2)
    raise AssertionError("no checkpoint was written")


DISTRIBUTED_WORKER = r"""
import json, sys
args = json.loads(sys.argv[1])
from transducer.networks.tf import tf
if args.get("logical_cpus"):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args["logical_cpus"])
from transducer.training import distribute
from transducer.core.config import ModelConfig, TrainConfig
from transducer.inference.predict import Predictor
from transducer.training.loop import train

# Keep every worker's copy of the model (a non-chief's is normally discarded) to compare.
written, output_dir = [], distribute.output_dir
distribute.output_dir = lambda plan, d: written.append(output_dir(plan, d)) or written[-1]
distribute.discard = lambda plan, path: None
out = []
for run in args["runs"]:
    r = train(args["pairs"], run["model_dir"], ModelConfig(**args["model"]), TrainConfig(**run["train"]), force=True)
    preds = [p for p, _ in Predictor(written[-1]).predict_batch(args["inputs"])]
    out.append({"counts": r.counts, "written": str(written[-1]), "final": r.final, "preds": preds})
print(json.dumps(out))
"""


def worker_env(**extra):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def worker_cmd(args: dict) -> list[str]:
    return [sys.executable, "-c", DISTRIBUTED_WORKER, json.dumps(args)]


def _weights(model_dir) -> dict:
    with np.load(Path(model_dir) / "weights.npz") as z:
        return {k: z[k] for k in z.files}


def assert_same_weights(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=1e-4, atol=1e-5, err_msg=k)


DISTRIBUTED_TRAIN = {"epochs": 2, "seed": 1, "learning_rate": 0.01}


PER_REPLICA, GLOBAL = 8, 16


# --- optional cost log: CPU seconds per test (load-independent, for choosing `slow` marks) ---
# Columns: CPU seconds, test id, then the worker and the wall-clock start and end (epoch
# seconds): a timeline of the run, which shows a worker left alone at the end.

if os.environ.get("TRANSDUCER_TEST_COST_LOG"):
    import resource
    import time

    def _cpu_seconds() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        start, wall = _cpu_seconds(), time.time()
        yield
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(os.environ["TRANSDUCER_TEST_COST_LOG"], "a") as log:
            log.write(f"{_cpu_seconds() - start:.2f}\t{item.nodeid}\t{worker}\t{wall:.1f}\t{time.time():.1f}\n")


def run_in_pty(argv: list[str], columns: int, stdin: bytes | None = None, timeout: float = 120) -> str:
    """Run `argv` with stdout and stderr on a pseudo-terminal `columns` wide (stdin a pipe,
    or nothing); return everything it wrote there, as a terminal user would see it raw.
    rich and the CLI take the terminal's width from the pty itself (COLUMNS is unset)."""
    import fcntl
    import pty
    import struct
    import subprocess
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in subprocess_env().items() if k not in ("COLUMNS", "LINES", "TERMINAL_WIDTH")}
    env["TERM"] = "xterm"
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    if stdin is not None:
        proc.stdin.write(stdin)
        proc.stdin.close()
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    proc.wait(timeout=10)
    return b"".join(chunks).decode("utf-8", errors="replace")


def screen_lines(raw: str) -> list[str]:
    """A terminal's output as the lines it draws: escape sequences and carriage returns
    end a line (a redraw), so each piece is what one row shows at a time."""
    import re

    return [l for l in re.split(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n", raw) if l.strip()]
