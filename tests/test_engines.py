"""The numpy engine against Keras, `transducer export`, prediction without TensorFlow,
and streaming through a real pipe.

Models here are built with random (scaled-up) weights and saved through the library's
own `train.save_model_dir`, so every architecture variant is covered without training.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import make_pairs
from conftest import assert_clean_error, invoke, subprocess_env
from transducer.core import artifacts
from transducer.core.config import ModelConfig, TransducerError
from transducer.inference.keras_engine import KerasEngine
from transducer.inference.numpy_engine import SUB_BATCH, NumpyEngine
from transducer.inference.predict import Predictor
from transducer.core.vocab import END_ID, PAD_ID, START_ID, UNK_ID, Vocab, one_hot

MAX_LEN = 10
REPO = Path(__file__).resolve().parent.parent

VARIANTS = {
    "dense": dict(head="dense", reset_after=True),
    "time-distributed": dict(head="time-distributed", reset_after=True),
    "no-reset-after": dict(head="dense", reset_after=False),
    "bidirectional": dict(head="dense", bidirectional=True),
    "bidirectional-keras2": dict(head="time-distributed", bidirectional=True, reset_after=False),
    "two-layers": dict(head="dense", layers=2),
    "two-layers-keras2": dict(head="time-distributed", layers=2, reset_after=False),
    "two-bidirectional-layers": dict(head="dense", layers=2, bidirectional=True),
}


def save_random_model(model_dir: Path, seed: int = 0, **cfg_kw) -> Path:
    """An aligned model with random weights, saved as `train` saves one."""
    from transducer.core.names import HEAD_LAYER
    from transducer.networks.build import build_model
    from transducer.training.loop import save_model_dir

    words = [a for a, _ in make_pairs(50, seed=seed)]
    in_vocab = Vocab.from_strings(words)
    out_vocab = Vocab.from_strings(w.swapcase() for w in words)
    cfg = ModelConfig(
        max_len=MAX_LEN, hidden=8, input_vocab_size=len(in_vocab), output_vocab_size=len(out_vocab), **cfg_kw
    )
    model = build_model(cfg)
    rng = np.random.default_rng(seed)
    # Larger-than-initial weights and non-zero biases: outputs that vary with the input and
    # end (</s>) at different positions, so every code path of the engines is exercised.
    model.set_weights([rng.normal(0.0, 0.8, w.shape).astype(np.float32) for w in model.get_weights()])
    # Calibrate the head's bias: <pad>, <unk>, <s> never win, and </s> wins at about 15%
    # of positions, so outputs end (and rows leave the numpy engine's batch) at many
    # different positions.
    head = model.get_layer(HEAD_LAYER[cfg.head])
    kernel, bias = head.get_weights()
    bias[[PAD_ID, UNK_ID, START_ID, END_ID]] = -30.0
    head.set_weights([kernel, bias])
    ids, _ = in_vocab.encode_batch(random_inputs(200, seed=seed), MAX_LEN, fill=PAD_ID)
    logp = np.log(np.asarray(model.predict_on_batch(one_hot(ids, len(in_vocab)))))  # (B, T, V)
    end_logit = logp[..., END_ID] + 30.0  # without its bias
    margin = logp[..., 4:].max(axis=-1) - end_logit  # </s> wins where its bias exceeds this
    bias[END_ID] = np.quantile(margin, 0.15)
    head.set_weights([kernel, bias])
    cfg_json = artifacts.config_dict(cfg, in_vocab, out_vocab, train={}, data={})
    save_model_dir(model, cfg_json, {"final": {}}, model_dir)
    return model_dir


def random_inputs(n: int, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    chars = list("abcdeXYZ#")  # '#' is never in training data: <unk>
    return ["".join(rng.choice(chars, size=rng.integers(1, MAX_LEN + 1))) for _ in range(n)]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    return {name: save_random_model(root / name, seed=i, **kw) for i, (name, kw) in enumerate(VARIANTS.items())}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_numpy_and_keras_engines_agree(models, variant):
    info = artifacts.read_info(models[variant])
    strings = random_inputs(SUB_BATCH + 37)  # more than one sub-batch
    ids, _ = info.input_vocab.encode_batch(strings, MAX_LEN, fill=PAD_ID)
    np_engine, keras_engine = NumpyEngine(info), KerasEngine(info)

    probs_np, probs_k = np_engine.aligned_probs(ids), keras_engine.aligned_probs(ids)
    assert probs_np.shape == probs_k.shape == (len(strings), MAX_LEN, len(info.output_vocab))
    np.testing.assert_allclose(probs_np, probs_k, atol=1e-5, rtol=0)

    best_np, conf_np = np_engine.aligned_decode(ids)
    best_k, conf_k = keras_engine.aligned_decode(ids)
    out_np = info.output_vocab.decode_batch(best_np)
    out_k = info.output_vocab.decode_batch(best_k)
    assert out_np == out_k
    np.testing.assert_allclose(conf_np, conf_k, atol=1e-5, rtol=1e-4)
    # The random weights give outputs of many lengths: some rows emit </s> (and leave the
    # batch early in the numpy engine), others run to max_len.
    ended = (best_k == END_ID).any(axis=1)
    assert len({len(s) for s in out_np}) >= 3 and 0 < ended.mean() < 1

    # And through the public API, as `predict` uses it.
    got = Predictor(models[variant], engine="numpy").predict_batch(strings)
    want = Predictor(models[variant], engine="keras").predict_batch(strings)
    assert [o for o, _ in got] == [o for o, _ in want]
    np.testing.assert_allclose([c for _, c in got], [c for _, c in want], atol=1e-5, rtol=1e-4)


def test_gru_step_and_sequence_match_keras_gru_layer():
    """The shared GRU helpers (also used by the seq2seq engine) against keras.layers.GRU."""
    from transducer.inference.kernels import gru_sequence, gru_step
    from transducer.networks.tf import keras

    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 7, 6)).astype(np.float32)  # (B, T, F)
    h0 = rng.normal(size=(5, 4)).astype(np.float32)  # (B, H)
    for reset_after in (True, False):
        layer = keras.layers.GRU(4, return_sequences=True, reset_after=reset_after)
        layer.build((None, 7, 6))
        layer.set_weights([rng.normal(0, 0.7, w.shape).astype(np.float32) for w in layer.get_weights()])
        k, rk, b = (np.asarray(w) for w in layer.get_weights())
        want = np.asarray(layer(x, initial_state=h0))  # (B, T, H)
        np.testing.assert_allclose(gru_sequence(x @ k, rk, b, reset_after, h0=h0), want, atol=1e-5)
        np.testing.assert_allclose(gru_step(x[:, 0] @ k, h0, rk, b, reset_after), want[:, 0], atol=1e-5)


# --- transducer export ---------------------------------------------------------------------


@pytest.fixture()
def model_copy(models, tmp_path) -> Path:
    return Path(shutil.copytree(models["dense"], tmp_path / "m"))


def test_export_restores_missing_weights(model_copy):
    lines = "\n".join(random_inputs(20, seed=4)) + "\n"
    (model_copy / artifacts.WEIGHTS).unlink()
    r = invoke("predict", model_copy, input=lines)
    assert_clean_error(r, "weights.npz is missing", "transducer export")
    assert r.stdout == ""

    r = invoke("export", model_copy)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == f"{model_copy / artifacts.WEIGHTS}\n" and r.stderr == ""  # the path is the result
    assert (model_copy / artifacts.WEIGHTS).is_file()
    assert [p.name for p in model_copy.iterdir() if p.name.endswith(".tmp")] == []

    by_numpy = invoke("predict", model_copy, "--format", "jsonl", input=lines)
    by_keras = invoke("predict", model_copy, "--format", "jsonl", "--engine", "keras", input=lines)
    assert by_numpy.exit_code == by_keras.exit_code == 0, by_numpy.stderr + by_keras.stderr
    rows_np = [json.loads(l) for l in by_numpy.stdout.splitlines()]
    rows_k = [json.loads(l) for l in by_keras.stdout.splitlines()]
    assert [r["output"] for r in rows_np] == [r["output"] for r in rows_k] and len(rows_np) == 20
    assert np.allclose([r["confidence"] for r in rows_np], [r["confidence"] for r in rows_k], atol=1e-5)


def test_export_refreshes_stale_or_corrupt_weights(model_copy):
    (model_copy / artifacts.WEIGHTS).write_bytes(b"not a zip")
    assert_clean_error(invoke("predict", model_copy, input="abc\n"), "unreadable weights", "transducer export")
    assert invoke("export", model_copy).exit_code == 0
    assert invoke("predict", model_copy, input="abc\n").exit_code == 0


def test_export_errors_are_clear(model_copy, tmp_path):
    assert_clean_error(invoke("export", tmp_path / "nope"), "no such model directory")
    (model_copy / artifacts.MODEL).write_bytes(b"garbage")
    assert_clean_error(invoke("export", model_copy), "corrupt model file")
    (model_copy / artifacts.MODEL).unlink()
    assert_clean_error(invoke("export", model_copy), "model.keras is missing")


# --- without TensorFlow --------------------------------------------------------------------


def _blocked_tensorflow(tmp_path: Path) -> dict:
    """An environment where `import tensorflow` and `import keras` raise ImportError."""
    block = tmp_path / "block"
    for name in ("tensorflow", "keras"):
        (block / name).mkdir(parents=True)
        (block / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked by the test')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(block), str(REPO)])
    return env


@pytest.mark.parametrize("arch", ["aligned", "edit"])
def test_predict_works_where_tensorflow_cannot_be_imported(models, tmp_path, arch):
    model_dir = models["two-layers"] if arch == "aligned" else random_model_dir(
        tmp_path, arch="edit", layers=2, bidirectional=True, max_len=MAX_LEN, end_bias=-1.0)[0]
    strings = random_inputs(30, seed=6) + [""]
    env = _blocked_tensorflow(tmp_path)
    cmd = [sys.executable, "-m", "transducer", "predict", str(model_dir), "--format", "jsonl"]
    out = subprocess.run(cmd, input="\n".join(strings) + "\n", capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(l) for l in out.stdout.splitlines()]
    want = Predictor(model_dir, engine="keras").predict_batch(strings[:-1])
    assert [r["output"] for r in rows] == [o for o, _ in want] + [""]
    assert np.allclose([r["confidence"] for r in rows[:-1]], [c for _, c in want], atol=1e-5)

    # The keras engine says what is missing, in one line.
    out = subprocess.run(cmd + ["--engine", "keras"], input="abc\n", capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "needs TensorFlow" in out.stderr


# --- streaming -----------------------------------------------------------------------------


def test_first_batch_comes_out_before_stdin_is_closed(models):
    """With --batch-size 2, two lines in give two lines out while the pipe is still open."""
    cmd = [sys.executable, "-m", "transducer", "predict", str(models["dense"]), "--batch-size", "2"]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(l) for l in iter(p.stdout.readline, b"")], daemon=True)
    reader.start()
    try:
        p.stdin.write(b"abc\nXYZ\n")
        p.stdin.flush()
        first = [lines.get(timeout=120), lines.get(timeout=10)]  # stdin still open here
        assert p.poll() is None
        p.stdin.write(b"de\n")
        p.stdin.close()
        assert p.wait(timeout=60) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
    _assert_answers(models, first, lines, reader)


def _assert_answers(models, first: list, lines, reader) -> None:
    """The lines predict printed (`first`, then what the reader thread queued after them)
    are the dense model's outputs for abc, XYZ, de, in order."""
    reader.join(timeout=10)
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    want = Predictor(models["dense"]).predict_batch(["abc", "XYZ", "de"])
    assert [l.decode().rstrip("\n") for l in [*first, *rest]] == [o for o, _ in want]


def test_each_line_is_answered_while_a_slow_producer_pauses(models, tmp_path):
    """A real producer process writes one line, then waits (here: until the test has
    seen the first answer) before writing the next. predict must answer the first line
    while the second has not been sent: with the default --batch-size 8192 that means
    flushing on a pause, not on a full batch or the end of input."""
    go_on = tmp_path / "go_on"
    producer_code = (
        "import os, sys, time\n"
        "sys.stdout.write('abc\\n'); sys.stdout.flush()\n"
        f"while not os.path.exists({str(go_on)!r}): time.sleep(0.05)\n"
        "sys.stdout.write('XYZ\\nde\\n')\n"
    )
    producer = subprocess.Popen([sys.executable, "-c", producer_code], stdout=subprocess.PIPE)
    cmd = [sys.executable, "-m", "transducer", "predict", str(models["dense"])]
    p = subprocess.Popen(cmd, stdin=producer.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    producer.stdout.close()  # only predict holds the pipe's read end
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(l) for l in iter(p.stdout.readline, b"")], daemon=True)
    reader.start()
    try:
        first = lines.get(timeout=120)  # would wait forever if predict waited for more lines
        assert producer.poll() is None and not go_on.exists()  # the second line is not sent yet
        go_on.touch()
        assert producer.wait(timeout=60) == 0
        assert p.wait(timeout=60) == 0, p.stderr.read()
    finally:
        for proc in (producer, p):
            if proc.poll() is None:
                proc.kill()
    _assert_answers(models, [first], lines, reader)


@pytest.mark.parametrize(
    "variant,beam,members",
    [("dense", 1, 1), ("bidirectional", 1, 1), ("bidirectional", 3, 1), ("two-layers", 1, 2)],
    ids=["greedy", "bidirectional", "beam", "ensemble"],
)
def test_a_call_of_many_lines_gives_each_line_what_small_calls_give(models, tmp_path, variant, beam, members):
    """predict hands the engine a whole chunk (--batch-size, 8,192 lines by default): the
    numpy engine sorts it by length and shares it out to its threads, costliest first, and
    whatever holds (B, T, V) probabilities does it probs.CALL_ROWS rows at a time. Every
    line still gets what calls of 100 lines give it, in order (2,500 lines: three slices,
    the last one partial)."""
    model = models[variant] if members == 1 else artifacts.assemble([models[variant]] * members, tmp_path / "ens")
    predictor = Predictor(model, beam=beam, nbest=beam, cache=0)
    lines = random_inputs(2500, seed=7)
    whole = predictor.predict_candidates(lines)
    pieces = [r for i in range(0, len(lines), 100) for r in predictor.predict_candidates(lines[i : i + 100])]
    assert [out for out, _, _ in whole] == [out for out, _, _ in pieces]
    np.testing.assert_allclose([c for _, c, _ in whole], [c for _, c, _ in pieces], rtol=1e-5)
    if beam > 1:
        assert [[c for c, _, _ in nb] for _, _, nb in whole] == [[c for c, _, _ in nb] for _, _, nb in pieces]


# --- export -> predict, every combination ------------------------------------------------

from conftest import random_model_dir

COMBINATIONS = list(itertools.product(("aligned", "seq2seq", "edit"), (False, True), (1, 2), ("dense", "time-distributed"), (True, False)))


@pytest.mark.parametrize("arch,bidirectional,layers,head,reset_after", COMBINATIONS)
def test_export_then_predict_matches_the_model_before_export(tmp_path, arch, bidirectional, layers, head, reset_after):
    """`transducer export` reads model.keras (loaded, its variables lose their wrappers'
    names) and writes weights.npz; the numpy engine then gives the strings of the model
    before export, probabilities within 1e-5."""
    model_dir, model = random_model_dir(
        tmp_path, arch=arch, bidirectional=bidirectional, layers=layers, head=head, reset_after=reset_after,
        max_len=6, hidden=4, attention="bahdanau" if layers == 2 else "luong",
    )
    words = ["abc", "cab", "a", "bbcag", "eeee", "gd"]
    info = artifacts.read_info(model_dir)
    before = Predictor(model_dir, engine=KerasEngine(info, model=model)).predict_batch(words)
    written_by_train = set(np.load(model_dir / artifacts.WEIGHTS, allow_pickle=False).files)
    (model_dir / artifacts.WEIGHTS).unlink()
    r = invoke("export", model_dir)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == f"{model_dir / artifacts.WEIGHTS}\n"  # the result, on stdout
    assert set(np.load(model_dir / artifacts.WEIGHTS, allow_pickle=False).files) == written_by_train
    engine, read = NumpyEngine(info), set()
    get = engine.get
    engine.get = lambda key: read.add(key) or get(key)
    after = Predictor(model_dir, engine=engine).predict_batch(words)
    assert [o for o, _ in after] == [o for o, _ in before]
    np.testing.assert_allclose([c for _, c in after], [c for _, c in before], atol=1e-5)
    assert read == written_by_train  # core/names.py's names: every weight the network has is read


def test_every_engine_has_the_engine_interface():
    """NumpyEngine, KerasEngine and EnsembleEngine offer every member of engine.Engine,
    the methods with the protocol's parameters."""
    import inspect

    from transducer.inference.engine import Engine
    from transducer.inference.ensemble import EnsembleEngine

    members = [m for m in vars(Engine) if not m.startswith("_")] + list(Engine.__annotations__)
    assert {"name", "info", "decoder_layers", "aligned_probs", "aligned_decode", "label_probs",
            "seq2seq_encode", "seq2seq_step"} <= set(members)
    for cls in (NumpyEngine, KerasEngine, EnsembleEngine):
        for m in members:
            want = getattr(Engine, m, None)
            if inspect.isfunction(want):
                got = getattr(cls, m)
                assert list(inspect.signature(got).parameters) == list(inspect.signature(want).parameters), (cls, m)


@pytest.mark.parametrize("arch", ["aligned", "seq2seq", "edit"])
def test_weights_exported_by_older_versions_still_load(tmp_path, arch):
    """Older `export`s named arrays by Keras's variable paths after loading, e.g.
    `forward_gru_1/gru_cell/kernel` and `dense/kernel` for a bidirectional model with a
    time-distributed head; the numpy engine accepts those names too."""
    from transducer.networks.tf import keras

    model_dir, _ = random_model_dir(tmp_path, arch=arch, bidirectional=True, head="time-distributed", max_len=6, hidden=4)
    words = ["abc", "cab", "eeee"]
    want = Predictor(model_dir, engine="numpy").predict_batch(words)
    loaded = keras.saving.load_model(model_dir / artifacts.MODEL, compile=False)
    old = {w.path: np.asarray(w.numpy()) for w in loaded.weights}
    assert any(k.startswith("forward_") for k in old) and "dense/kernel" in old  # the old scheme
    np.savez(model_dir / artifacts.WEIGHTS, **old)
    got = Predictor(model_dir, engine="numpy").predict_batch(words)
    assert [o for o, _ in got] == [o for o, _ in want]
    np.testing.assert_allclose([c for _, c in got], [c for _, c in want], atol=1e-6)


# --- unseen characters --------------------------------------------------------------------


def expected_copy(probs: np.ndarray, string: str, out_vocab: Vocab) -> tuple[str, float]:
    """--unk copy by hand from one line's (T, V) probabilities: the argmax symbol per
    position, the input character where the input is unseen (never the end there), up
    to the first </s>; the probability of the modelled positions."""
    chars, p = [], 1.0
    for t, row in enumerate(probs):
        if t < len(string) and string[t] == "#":  # '#' is never in training: <unk>
            chars.append("#")
            continue
        i = int(row.argmax())
        p *= float(row[i])
        if i in (END_ID, PAD_ID):
            break
        chars.append(out_vocab.symbols[i])
    return "".join(chars), p


@pytest.mark.parametrize("variant", ["dense", "bidirectional", "two-layers-keras2"])
@pytest.mark.parametrize("engine", ["numpy", "keras"])
def test_unseen_characters_are_copied_through_at_their_position(models, variant, engine):
    strings = [s for s in random_inputs(200, seed=8) if "#" in s]
    info = artifacts.read_info(models[variant])
    ids, _ = info.input_vocab.encode_batch(strings, MAX_LEN, fill=PAD_ID)
    probs = KerasEngine(info).aligned_probs(ids)  # (B, T, V): what the model says
    got = Predictor(models[variant], engine=engine).predict_batch(strings)  # --unk copy: the default
    want = [expected_copy(pr, s, info.output_vocab) for pr, s in zip(probs, strings)]
    assert [o for o, _ in got] == [o for o, _ in want]
    np.testing.assert_allclose([c for _, c in got], [c for _, c in want], atol=1e-5, rtol=1e-4)
    # Today's behaviour with --unk model: the model reads <unk>, and often ends the line there.
    model = Predictor(models[variant], engine=engine, unk="model").predict_batch(strings)
    assert all("#" not in o for o, _ in model) and [o for o, _ in model] != [o for o, _ in got]
    # n-best candidates keep the copied characters too.
    for (best, _, cands), s in zip(Predictor(models[variant], engine=engine, beam=3, nbest=3).predict_candidates(strings), strings):
        for c, _, _ in cands:
            assert all(c[t] == "#" for t, ch in enumerate(s) if ch == "#" and t < len(c))


# --- BLAS threads ----------------------------------------------------------------------------

BLAS_PROBE = """
import json, sys

def blas_threads():
    import threadpoolctl
    return max(i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas")

seen = {}
def install_probe():  # imports numpy; every engine path reads the head's weights inside its call
    from transducer.inference.numpy_engine import NumpyEngine
    seen["before"], seen["inside"] = blas_threads(), []
    head_params = NumpyEngine.head_params
    def probe(self):
        seen["inside"].append(blas_threads())
        return head_params(self)
    NumpyEngine.head_params = probe

how, model_dir = sys.argv[1:3]
if how.startswith("cli"):
    import transducer.cli as cli
    if how == "cli":  # the `transducer` command: nothing has loaded numpy before main()
        start = cli.api.start_with_one_blas_thread
        def start_then_probe():  # main() starts with this, before its command loads numpy
            start()
            install_probe()
        cli.api.start_with_one_blas_thread = start_then_probe
    else:  # main() called from a process that has numpy loaded already
        install_probe()
    sys.argv = ["transducer", "predict", model_dir]
    try:
        cli.main()
    except SystemExit as e:
        assert not e.code, e.code
else:
    install_probe()
    import transducer
    transducer.load(model_dir).predict(["abc", "ba"])
print(json.dumps({"before": seen["before"], "inside": sorted(set(seen["inside"])), "after": blas_threads()}), file=sys.stderr)
"""


@pytest.mark.parametrize("how", ["cli", "cli-after-numpy", "api"])
@pytest.mark.parametrize("user", [{}, {"OPENBLAS_NUM_THREADS": "2"}, {"TRANSDUCER_BLAS_THREADS": "2"}], ids=["default", "openblas-env", "transducer-env"])
def test_predict_runs_with_one_blas_thread_unless_the_user_asks(models, how, user):
    """Counted inside the engine's call (threadpoolctl's view of the loaded BLAS), in a
    fresh process: as shipped, one thread, and the process's own setting back afterwards;
    a user's OPENBLAS_NUM_THREADS is left as it is; TRANSDUCER_BLAS_THREADS is obeyed.
    The `transducer` command has OpenBLAS start with one thread when the user chose none
    (no idle BLAS threads spinning in a short process); called from a process that loaded
    numpy first, the engine's limit still holds."""
    env = {k: v for k, v in subprocess_env().items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "TRANSDUCER_BLAS_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", BLAS_PROBE, how, str(models["two-layers"])], input="abc\nba\n",
        capture_output=True, text=True, timeout=120, env={**env, **user},
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stderr.splitlines()[-1])
    assert seen["inside"] and seen["after"] == seen["before"]
    if not user:
        assert seen["inside"] == [1]
        if how == "cli":
            assert seen["before"] == 1  # OpenBLAS started with one thread
    elif "OPENBLAS_NUM_THREADS" in user:
        assert seen["inside"] == [seen["before"]]
    else:
        assert seen["inside"] == [min(2, seen["before"])]


def test_a_bad_blas_thread_count_is_one_line_through_the_command(models):
    """The `transducer` command reads the BLAS variables before anything else (to start
    OpenBLAS with one thread): a bad TRANSDUCER_BLAS_THREADS is still the command's own
    one-line error, not a traceback from that early read."""
    env = {**subprocess_env(), "TRANSDUCER_BLAS_THREADS": "two"}
    code = "import sys\nfrom transducer.cli import main\nsys.argv = ['transducer', *sys.argv[1:]]\nmain()\n"
    out = subprocess.run([sys.executable, "-c", code, "predict", str(models["two-layers"])], input="abc\n",
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2 and out.stdout == ""
    assert "Traceback" not in out.stderr
    assert [l for l in out.stderr.splitlines() if l.strip()] == [
        "error: TRANSDUCER_BLAS_THREADS must be a whole number of threads, at least 1; got 'two'"]


def test_the_blas_thread_setting():
    from transducer.core.blas import blas_threads

    assert blas_threads({}) == 1
    assert blas_threads({"OMP_NUM_THREADS": "4"}) is None and blas_threads({"OPENBLAS_NUM_THREADS": "1"}) is None
    assert blas_threads({"TRANSDUCER_BLAS_THREADS": "3", "OPENBLAS_NUM_THREADS": "1"}) == 3
    for bad in ("0", "two", "-1"):
        with pytest.raises(TransducerError, match="TRANSDUCER_BLAS_THREADS"):
            blas_threads({"TRANSDUCER_BLAS_THREADS": bad})
