"""Streaming training data and tf.distribute training (CPU only, tiny models).

Distribution tests run in subprocesses: logical CPU devices must be configured before
TensorFlow initialises its devices, and multi-worker training needs one process per worker
(all on 127.0.0.1).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import compiled_training, make_pairs, write_pairs, worker_env, worker_cmd, assert_same_weights, DISTRIBUTED_TRAIN, PER_REPLICA, GLOBAL

MAX_LEN = 10


def _decode_rows(ds, in_vocab, out_vocab):
    """(input, output) strings of every row a pipeline yields, in order."""
    rows = []
    for x, y in ds:
        x = x[0] if isinstance(x, tuple) else x
        for xi, yi in zip(np.argmax(x.numpy(), axis=-1), y.numpy()):
            rows.append((in_vocab.decode(xi), out_vocab.decode(yi)))
    return rows


def _scan(path, val_split=0.2, seed=0, skip_invalid=False):
    from transducer.training.stream import scan_pairs

    return scan_pairs(str(path), MAX_LEN, skip_invalid, val_split, seed)


def _dataset(scan, side, arch="aligned", batch=16, seed=0, shuffle=True):
    """One pass over `side`, shuffled with a seed of its own when `shuffle`."""
    from transducer.core.config import ModelConfig
    from transducer.training.stream import pairs_dataset

    in_vocab, out_vocab = scan.vocabs()
    cfg = ModelConfig(arch=arch, max_len=MAX_LEN, input_vocab_size=len(in_vocab), output_vocab_size=len(out_vocab))
    shuffle_seed = seed + 100 if shuffle else None
    return pairs_dataset(scan, cfg, in_vocab, out_vocab, side, batch, seed, shuffle_seed), in_vocab, out_vocab


def test_streamed_split_is_deterministic_disjoint_and_counted(tmp_path):
    pairs = make_pairs(200, seed=3)
    path = write_pairs(tmp_path / "p.tsv", pairs + pairs[:40])  # 40 duplicated lines
    scan = _scan(path)
    assert scan.n_rows == 240 and scan.duplicates == 40 + sum(1 for i, p in enumerate(pairs) if p in pairs[:i])
    assert 0 < scan.n_val < scan.n_rows
    train_ds, iv, ov = _dataset(scan, "train")
    val_ds, _, _ = _dataset(scan, "val")
    train_rows, val_rows = _decode_rows(train_ds, iv, ov), _decode_rows(val_ds, iv, ov)
    assert (len(train_rows), len(val_rows)) == (scan.n_train, scan.n_val)
    assert not set(train_rows) & set(val_rows)  # duplicates never straddle the split
    assert sorted(train_rows + val_rows) == sorted(pairs + pairs[:40])
    # The Python re-read (for decoded metrics) sees the same sides, in file order.
    from transducer.training.stream import iter_pairs

    assert sorted(iter_pairs(scan, "val")) == sorted(val_rows)
    assert list(iter_pairs(scan, "train", limit=5)) == [p for p in pairs if p not in val_rows][:5]
    # Same seed, same split (and the same in a second scan); another seed, another split.
    rescan = _scan(path)
    assert rescan.fingerprint == scan.fingerprint
    again = _decode_rows(_dataset(rescan, "val")[0], iv, ov)
    assert again == val_rows
    other = _scan(path, seed=1)
    assert other.fingerprint != scan.fingerprint  # same rows, another split
    other_val = _decode_rows(_dataset(other, "val", seed=1)[0], *other.vocabs())
    assert set(other_val) != set(val_rows)


def test_tiny_requested_split_is_never_empty(tmp_path):
    path = write_pairs(tmp_path / "p.tsv", make_pairs(4, seed=5))
    scan = _scan(path, val_split=0.01)
    assert scan.n_val >= 1 and scan.n_train >= 1
    assert len(_decode_rows(_dataset(scan, "val")[0], *scan.vocabs())) == scan.n_val


@pytest.mark.parametrize("arch", ["aligned", "seq2seq"])
def test_streamed_encoding_matches_the_in_memory_arrays(tmp_path, arch):
    if arch == "seq2seq":
        pytest.importorskip("transducer.networks.seq2seq")
    from transducer.core.config import ModelConfig
    from transducer.core.data import read_pairs
    from transducer.training.loop import training_arrays
    from transducer.core.vocab import END_ID, PAD_ID

    # BOM, CRLF, blank lines, an invalid row (skipped), non-ASCII characters, an empty output.
    text = "\ufeffabc\tABC\r\nжук\tЖУК\n\n  \nno tab here\né€\t😀x\nxyz\t\nab\tBA\n"
    path = tmp_path / "p.tsv"
    path.write_bytes(text.encode("utf-8"))
    scan = _scan(path, val_split=0.0, skip_invalid=True)
    mem = read_pairs(str(path), MAX_LEN, skip_invalid=True)
    assert (scan.n_rows, scan.n_invalid, scan.describe_invalid()) == (len(mem.pairs), 1, mem.describe_invalid())
    ds, in_vocab, out_vocab = _dataset(scan, "all", arch=arch, batch=4, shuffle=False)
    cfg = ModelConfig(arch=arch, max_len=MAX_LEN, input_vocab_size=len(in_vocab), output_vocab_size=len(out_vocab))
    feats, depths, y = training_arrays(cfg, mem.pairs, in_vocab, out_vocab)
    # Batches are length-bucketed (sorted within a window) and padded to their own
    # longest string: re-pad each row to the in-memory width and compare the rows.
    got = []
    for x, yb in ds:
        x = x if isinstance(x, tuple) else (x,)
        assert [int(t.shape[-1]) for t in x] == depths
        ids = [np.argmax(t.numpy(), axis=-1) for t in x]
        fills = [PAD_ID] + [END_ID] * (len(ids) - 1)  # encoder/aligned input <pad>; decoder input </s>
        padded = [np.pad(f, [(0, 0), (0, w.shape[1] - f.shape[1])], constant_values=c) for f, w, c in zip(ids, feats, fills)]
        padded.append(np.pad(yb.numpy(), [(0, 0), (0, y.shape[1] - yb.shape[1])], constant_values=END_ID))
        got += [tuple(tuple(part[i]) for part in padded) for i in range(len(yb))]
    want = [tuple(tuple(part[i]) for part in [*feats, y]) for i in range(len(y))]
    assert sorted(got) == sorted(want)


def test_invalid_row_is_reported_with_its_line_without_skip(tmp_path):
    from transducer.core.config import TransducerError

    path = tmp_path / "p.tsv"
    path.write_text("ab\tcd\nbad\n", encoding="utf-8")
    with pytest.raises(TransducerError, match="line 2: no tab"):
        _scan(path)


# --- distribution (subprocesses) ----------------------------------------------------------

MODEL = {"max_len": MAX_LEN, "hidden": 8}
INPUTS = ["abc", "XYZ", "dead", "a", "eXbY"]


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    """Mirrored training runs as users run it, compiled (eager replicas are slower), and
    its one-device reference likewise, so the two compare exactly."""
    with compiled_training():
        yield


@pytest.fixture(scope="module")
def small_pairs(tmp_path_factory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("dist") / "pairs.tsv", make_pairs(160, seed=7))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_pairs) -> dict:
    """One device, batch = the distributed runs' global batch: what they must reproduce."""
    return _one_device(small_pairs, tmp_path_factory.mktemp("ref") / "one")


def _one_device(pairs: Path, model_dir: Path) -> dict:
    from transducer.core.config import ModelConfig, TrainConfig
    from transducer.inference.predict import Predictor
    from transducer.training.loop import train

    r = train(str(pairs), model_dir, ModelConfig(**MODEL), TrainConfig(**DISTRIBUTED_TRAIN, batch_size=GLOBAL))
    assert r.counts["distribute"] == "none" and r.counts["global_batch"] == GLOBAL
    preds = [p for p, _ in Predictor(model_dir).predict_batch(INPUTS)]
    return {"written": model_dir, "final": r.final, "preds": preds, "counts": r.counts}


def _run_mirrored(pairs: Path, model_dir: Path) -> dict:
    """Train on two CPU devices with --batch-size PER_REPLICA (a global batch of GLOBAL)."""
    args = {
        "logical_cpus": 2,
        "pairs": str(pairs),
        "model": MODEL,
        "inputs": INPUTS,
        "runs": [{"model_dir": str(model_dir), "train": {**DISTRIBUTED_TRAIN, "batch_size": PER_REPLICA, "distribute": "mirrored"}}],
    }
    proc = subprocess.run(worker_cmd(args), capture_output=True, text=True, env=worker_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (two,) = json.loads(proc.stdout)
    assert two["counts"]["replicas"] == 2 and two["counts"]["global_batch"] == GLOBAL
    return two


def _assert_same_training(reference: dict, two: dict) -> None:
    """The distributed run trained one device's weights, predictions and final metrics."""
    assert_same_weights(reference["written"], two["written"])
    assert two["preds"] == reference["preds"]
    assert two["final"] == pytest.approx(reference["final"], rel=1e-4, abs=1e-5)


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_matches_one_device_with_the_global_batch(tmp_path, small_pairs, reference):
    two = _run_mirrored(small_pairs, tmp_path / "two")
    # 2 replicas x 8 sum their gradients to the mean over 16: the same training as one device.
    _assert_same_training(reference, two)


@pytest.mark.slow
def test_mirrored_with_a_validation_batch_that_does_not_split_evenly(tmp_path):
    """The validation pairs' only batch splits 7 + 6 across the replicas: Keras 3 failed
    when an iterator's first batch did not split evenly ("Inputs to operation AddN ...
    must have the same size and shape"; distribute.patch_for_strategy). Its metrics are
    kept as sums over rows, so they are still exactly one device's."""
    pairs = write_pairs(tmp_path / "pairs.tsv", make_pairs(149, seed=7))
    reference = _one_device(pairs, tmp_path / "one")
    n_train, n_val = reference["counts"]["n_train"], reference["counts"]["n_val"]
    assert (n_train % GLOBAL, n_val) == (8, 13)  # a short training batch of 4 + 4 rows; 7 + 6
    _assert_same_training(reference, _run_mirrored(pairs, tmp_path / "two"))


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.mark.slow
def test_multi_worker_on_localhost_trains_the_same_weights_and_only_the_chief_publishes(
    tmp_path, small_pairs, reference
):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    model_dir = tmp_path / "model"
    args = {
        "pairs": str(small_pairs),
        "model": MODEL,
        "inputs": INPUTS,
        "runs": [{"model_dir": str(model_dir), "train": {**DISTRIBUTED_TRAIN, "batch_size": PER_REPLICA, "distribute": "multi-worker"}}],
    }
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        procs.append(
            subprocess.Popen(
                worker_cmd(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=worker_env(TF_CONFIG=tf_config),
            )
        )
    results = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=300)
            assert p.returncode == 0, stderr[-3000:]
            results.append(json.loads(stdout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    chief, other = results
    assert chief["counts"]["is_chief"] and not other["counts"]["is_chief"]
    assert chief["counts"]["replicas"] == 2 and chief["counts"]["global_batch"] == GLOBAL
    assert Path(chief["written"]) == model_dir and Path(other["written"]) != model_dir
    assert_same_weights(chief["written"], other["written"])
    assert chief["final"] == pytest.approx(other["final"])

    # The chief's published model is a normal model directory, trained as one device with
    # the global batch would train it: same weights, same predictions.
    assert_same_weights(reference["written"], model_dir)
    from transducer.inference.predict import Predictor

    assert [p for p, _ in Predictor(model_dir).predict_batch(INPUTS)] == chief["preds"] == reference["preds"]
    assert chief["final"] == pytest.approx(reference["final"], rel=1e-4, abs=1e-5)


@pytest.mark.slow
def test_multi_worker_without_tf_config_is_a_clear_error(tmp_path, small_pairs):
    from transducer.core.config import ModelConfig, TrainConfig, TransducerError
    from transducer.training.loop import train

    env_before = os.environ.pop("TF_CONFIG", None)
    try:
        with pytest.raises(TransducerError, match="TF_CONFIG"):
            train(str(small_pairs), tmp_path / "m", ModelConfig(**MODEL), TrainConfig(distribute="multi-worker"))
    finally:
        if env_before is not None:
            os.environ["TF_CONFIG"] = env_before
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_cli_reports_the_global_batch_and_rejects_unknown_strategies(tmp_path, small_pairs):
    from conftest import invoke

    r = invoke("train", small_pairs, "--model-dir", tmp_path / "m", "--hidden", 4, "--epochs", 1,
               "--max-len", MAX_LEN, "--batch-size", 8, "--distribute", "mirrored")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    assert "distributed (mirrored): global batch 8 = 8 per replica x 1 replica(s)" in r.stderr
    bad = invoke("train", small_pairs, "--model-dir", tmp_path / "n", "--distribute", "tpu")
    assert bad.exit_code == 2 and "Traceback" not in bad.stderr
    assert bad.stderr == ("error: --distribute must be one of none, mirrored, multi-worker, got 'tpu'"
                          " (see 'transducer train --help')\n")
