"""Ensembles: combining members, the model directory's members, `train --ensemble N`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_pairs, write_pairs
from conftest import assert_clean_error, invoke
from conftest import RANDOM_WORDS, random_model_dir
from transducer.core import artifacts
from transducer.core.config import ModelConfig, TrainConfig
from transducer.inference.ensemble import EnsembleEngine, combine, load_engine
from transducer.inference.predict import Predictor


def make_ensemble(member_dirs, where):
    """An ensemble directory from model directories, laid out as `train --ensemble` does."""
    shutil.copytree(member_dirs[0], where)
    for k, src in enumerate(member_dirs[1:], 2):
        shutil.copytree(src, artifacts.member_dir(where, k))
    config = json.loads((where / artifacts.CONFIG).read_text())
    config["ensemble"] = {"members": len(member_dirs), "seeds": list(range(len(member_dirs)))}
    (where / artifacts.CONFIG).write_text(json.dumps(config))
    return where


def test_combine_is_the_renormalised_geometric_mean():
    a = np.array([1 / 2, 1 / 8, 3 / 8], np.float32)
    b = np.array([1 / 8, 1 / 2, 3 / 8], np.float32)
    # geometric means: sqrt(1/16) = 1/4, 1/4, 3/8; they sum to 7/8, so renormalised:
    np.testing.assert_allclose(combine([a, b]), [2 / 7, 2 / 7, 3 / 7], rtol=1e-6)
    # three members, batched over leading axes: the mean is over members only
    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]], np.float32)  # (2, V)
    q = np.array([[0.6, 0.1, 0.3], [0.2, 0.6, 0.2]], np.float32)
    r = np.array([[0.6, 0.3, 0.1], [0.6, 0.2, 0.2]], np.float32)
    got = combine([p, q, r])
    gm = np.cbrt(p * q * r)
    np.testing.assert_allclose(got, gm / gm.sum(axis=-1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-6)
    # a member's zero is clamped at 1e-30, not -inf: the symbol is unlikely, not impossible
    assert 0 < combine([np.array([0.5, 0.5, 0.0]), np.array([0.1, 0.1, 0.8])])[2] < 1e-9


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 4), st.integers(2, 6), st.integers(0, 2**32 - 1))
def test_combine_contract(n_members, V, seed):
    """A distribution; the members' order does not matter; copies give the member back."""
    rng = np.random.default_rng(seed)
    probs = [rng.dirichlet(np.ones(V), size=3).astype(np.float32) for _ in range(n_members)]  # (3, V) each
    got = combine(probs)
    assert got.shape == (3, V) and np.all(got >= 0)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(combine(probs[::-1]), got, rtol=1e-5)
    np.testing.assert_allclose(combine([probs[0]] * n_members), probs[0], rtol=1e-4, atol=1e-7)


# Every architecture both ways on the default engine; the Keras engine combines members by
# the same code whatever the encoder, so once per architecture (its decoding costs seconds).
COPIES = [(arch, bi, "numpy") for arch in ("seq2seq", "aligned", "edit") for bi in (False, True)]
COPIES += [(arch, True, "keras") for arch in ("seq2seq", "aligned", "edit")]


@pytest.mark.slow
@pytest.mark.parametrize("arch,bidirectional,engine", COPIES)
def test_copies_of_one_model_give_that_models_outputs(tmp_path, engine, arch, bidirectional):
    single, _ = random_model_dir(tmp_path, "single", arch=arch, bidirectional=bidirectional)
    ens = make_ensemble([single] * 3, tmp_path / "ensemble")
    predictor = Predictor(ens, engine=engine)
    assert isinstance(predictor.engine, EnsembleEngine) and len(predictor.engine.engines) == 3
    for beam, nbest in ((1, 1), (3, 3)):
        want = Predictor(single, engine=engine, beam=beam, nbest=nbest).predict_candidates(RANDOM_WORDS)
        got = Predictor(ens, engine=engine, beam=beam, nbest=nbest).predict_candidates(RANDOM_WORDS)
        assert [g[0] for g in got] == [w[0] for w in want]
        np.testing.assert_allclose([g[1] for g in got], [w[1] for w in want], rtol=1e-4, atol=1e-7)
        if nbest > 1:
            assert [[c[0] for c in g[2]] for g in got] == [[c[0] for c in w[2]] for w in want]


def test_ensemble_steps_are_the_combined_member_steps(tmp_path):
    """Two different members: each decoder step's distribution is combine() of the members'
    own steps, and greedy output follows the combined argmax."""
    a, _ = random_model_dir(tmp_path, "a", seed=1)
    b, _ = random_model_dir(tmp_path, "b", seed=2)
    ens = load_engine(artifacts.read_info(make_ensemble([a, b], tmp_path / "ab")))
    ea, eb = (load_engine(artifacts.read_info(d)) for d in (a, b))
    ids, _ = ens.info.input_vocab.encode_batch(RANDOM_WORDS, ens.info.model.max_len)
    enc, init, mask = ens.seq2seq_encode(ids)
    (enc_a, init_a, mask_a), (enc_b, init_b, _) = ea.seq2seq_encode(ids), eb.seq2seq_encode(ids)
    prev = np.full(len(RANDOM_WORDS), 2, np.int32)  # <s>
    probs, states = ens.seq2seq_step(prev, enc, mask, [init] * ens.decoder_layers)
    pa, sa = ea.seq2seq_step(prev, enc_a, mask_a, [init_a])
    pb, sb = eb.seq2seq_step(prev, enc_b, mask_a, [init_b])
    np.testing.assert_allclose(probs, combine([pa, pb]), rtol=1e-6)
    np.testing.assert_allclose(states[0], np.concatenate([sa[0], sb[0]], axis=-1))
    assert not np.allclose(pa, pb)  # the members really differ


@pytest.mark.parametrize("bidirectional,layers", [(True, 1), (False, 2)])
def test_edit_ensemble_steps_are_the_combined_member_steps(tmp_path, bidirectional, layers):
    """An edit ensemble (numpy engine): each step is combine() of the members' own steps
    over the actions valid there, 0 elsewhere; states are the members' side by side."""
    from transducer.inference.edit_decode import with_end

    kw = dict(arch="edit", bidirectional=bidirectional, layers=layers, end_bias=-1.0)
    a, _ = random_model_dir(tmp_path, "a", seed=1, **kw)
    b, _ = random_model_dir(tmp_path, "b", seed=2, **kw)
    ens = load_engine(artifacts.read_info(make_ensemble([a, b], tmp_path / "ab")))
    ea, eb = (load_engine(artifacts.read_info(d)) for d in (a, b))
    ids, _ = ens.info.input_vocab.encode_batch(RANDOM_WORDS, ens.info.model.max_len)
    x, n = with_end(ids)
    rows = np.array([0, 3, 3, 5, 7])
    pointer = np.minimum([0, 1, 4, 2, 8], n[rows])
    prev = np.array([1, 3, 4, 2 + 3, 6])  # start, COPY, DELETE, and two others
    states = ens.edit_initial_states(len(rows))
    probs, new = ens.edit_step(ens.edit_encode(x), rows, pointer, prev, n[rows], states)
    (pa, sa), (pb, sb) = (e.edit_step(e.edit_encode(x), rows, pointer, prev, n[rows], e.edit_initial_states(len(rows)))
                          for e in (ea, eb))
    valid = ens.info.output_vocab.valid_mask(pointer, n[rows])
    np.testing.assert_allclose(probs, np.where(valid, combine([pa, pb]), 0.0), rtol=1e-6, atol=1e-12)
    for i in range(layers):
        np.testing.assert_allclose(new[i], np.concatenate([sa[i], sb[i]], axis=-1))
    assert not np.allclose(pa, pb)  # the members really differ
    got = Predictor(tmp_path / "ab", beam=3, nbest=2).predict_candidates(RANDOM_WORDS)
    assert all(len(nb) == 2 and nb[0][0] == out for out, _, nb in got)


@pytest.mark.parametrize("which", ["output_vocab", "input_vocab"])
def test_members_with_different_vocabularies_are_a_one_line_error(tmp_path, which):
    single, _ = random_model_dir(tmp_path, "single")
    ens = make_ensemble([single, single], tmp_path / "ensemble")
    cfg_path = artifacts.member_dir(ens, 2) / artifacts.CONFIG
    config = json.loads(cfg_path.read_text())
    vocab = config[which]
    vocab[-2], vocab[-1] = vocab[-1], vocab[-2]  # same size, different symbols
    cfg_path.write_text(json.dumps(config))
    words = tmp_path / "words.txt"
    words.write_text("abc\n")
    name = which.replace("_vocab", " vocabulary")
    for args in (["predict", ens, words], ["evaluate", ens, write_pairs(tmp_path / "t.tsv", [("abc", "ab")])], ["summarize", ens]):
        r = invoke(*args)
        assert_clean_error(r, f"ensemble members disagree on the {name}", "member 2", code=2)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_missing_member_is_a_one_line_error(tmp_path):
    single, _ = random_model_dir(tmp_path, "single")
    ens = make_ensemble([single, single], tmp_path / "ensemble")
    shutil.rmtree(artifacts.member_dir(ens, 2))
    words = tmp_path / "words.txt"
    words.write_text("abc\n")
    assert_clean_error(invoke("predict", ens, words), "ensemble member 2 is missing", code=2)


@pytest.mark.slow
def test_train_ensemble_end_to_end(tmp_path):
    pairs = write_pairs(tmp_path / "pairs.tsv", make_pairs(200))
    opts = ["--arch", "seq2seq", "--hidden", "8", "--max-len", "12", "--epochs", "1", "--seed", "3"]
    out = tmp_path / "ens"
    r = invoke("train", pairs, "-m", out, *opts, "--ensemble", "2")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    assert "ensemble member 2 of 2 (seed 4)" in r.stderr and "an ensemble of 2 members" in r.stderr
    config = json.loads((out / artifacts.CONFIG).read_text())
    assert config["ensemble"] == {"members": 2, "seeds": [3, 4]}
    assert "decoded_exact_match" in json.loads((out / artifacts.METRICS).read_text())["ensemble"]["final"]
    assert not artifacts.staging_dir(out).exists()

    # --log-format jsonl: every stderr line is one JSON object, members and the ensemble included
    r = invoke("train", pairs, "-m", out, *opts, "--ensemble", "2", "--force", "--log-format", "jsonl")
    assert r.exit_code == 0, r.stderr
    events = [json.loads(line)["event"] for line in r.stderr.splitlines()]
    assert events[0] == "member" and events.count("member") == 2 and events[-1] == "ensemble"
    assert not artifacts.staging_dir(out).exists()

    # Member 1 is exactly the model a plain run with the same seed trains; member 2 differs.
    plain = tmp_path / "plain"
    assert invoke("train", pairs, "-m", plain, *opts).exit_code == 0
    w = [np.load(d / artifacts.WEIGHTS) for d in (out, artifacts.member_dir(out, 2), plain)]
    assert all(np.array_equal(w[0][k], w[2][k]) for k in w[2].files)
    assert not all(np.array_equal(w[0][k], w[1][k]) for k in w[1].files)

    words = tmp_path / "words.txt"
    words.write_text("abc\nXYZde\n\nbad\n")
    outputs = {}
    for engine in ("numpy", "keras"):
        r = invoke("predict", out, words, "--engine", engine)
        assert r.exit_code == 0, r.stderr
        outputs[engine] = r.stdout
        assert len(r.stdout.split("\n")) == 5  # one line per input
    assert outputs["numpy"] == outputs["keras"]

    r = invoke("summarize", out)
    assert r.exit_code == 0, r.stderr
    text = " ".join((r.stdout + r.stderr).split())
    assert "ensemble of 2 members" in text and "members/2" in text

    (out / artifacts.WEIGHTS).unlink()
    (artifacts.member_dir(out, 2) / artifacts.WEIGHTS).unlink()
    r = invoke("export", out)
    assert r.exit_code == 0, r.stderr
    assert (out / artifacts.WEIGHTS).is_file() and (artifacts.member_dir(out, 2) / artifacts.WEIGHTS).is_file()
    assert invoke("predict", out, words).stdout == outputs["numpy"]


class SigintInMember:
    """A reporter that sends this process a real SIGINT when epoch 1 of member `k` ends."""

    def __init__(self, k: int):
        self.k, self.member = k, 0

    def on_member(self, k, n, seed, event, result):
        self.member = k

    def start(self, info): pass
    def epoch_begin(self, epoch, epochs, steps): pass
    def batch_end(self, step, logs): pass

    def epoch_end(self, epoch, logs):
        if self.member == self.k and epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow
def test_an_interrupted_ensemble_resumes_to_the_uninterrupted_result(tmp_path):
    """SIGINT in member 2: DIR untouched, member 1 and member 2's checkpoint kept; a new run
    without --resume refuses; --resume skips member 1, continues member 2 from its
    checkpoint, and ends with exactly the weights of an uninterrupted run."""
    from transducer.training.ensemble import train_ensemble

    pairs = write_pairs(tmp_path / "pairs.tsv", make_pairs(150))
    mcfg = ModelConfig(arch="aligned", hidden=8, max_len=12)
    tcfg = TrainConfig(epochs=2, batch_size=32, patience=100, ensemble=2)
    whole = tmp_path / "whole"
    train_ensemble(str(pairs), whole, mcfg, tcfg)

    out = tmp_path / "ens"
    stopper = SigintInMember(2)
    result = train_ensemble(str(pairs), out, mcfg, tcfg, reporter=stopper, on_member=stopper.on_member)
    assert result.interrupted and result.signal == "SIGINT" and len(result.members) == 2
    assert not out.exists()
    assert (artifacts.staging_dir(out) / "members" / "2.partial" / "checkpoint").is_dir()

    cli = ["--hidden", "8", "--max-len", "12", "--epochs", "2", "--batch-size", "32", "--patience", "100"]
    assert_clean_error(invoke("train", pairs, "-m", out, *cli, "--ensemble", "2"), "holds an interrupted run", "--resume", code=2)
    r = invoke("train", pairs, "-m", out, *cli, "--ensemble", "2", "--resume")
    assert r.exit_code == 0, r.stderr
    assert "member 1 of 2 (seed 0): already trained, kept" in r.stderr and "resuming after epoch 1" in r.stderr
    for k in (1, 2):
        a, b = (np.load(artifacts.member_dir(d, k) / artifacts.WEIGHTS) for d in (whole, out))
        assert all(np.array_equal(a[key], b[key]) for key in a.files)
    assert not artifacts.staging_dir(out).exists()

    # --resume after a finished run: nothing to resume
    assert_clean_error(invoke("train", pairs, "-m", out, "--ensemble", "2", "--resume"), "cannot --resume", code=2)


@pytest.mark.slow
def test_ctrl_c_in_a_real_ensemble_run_says_how_to_resume(tmp_path):
    from conftest import CLI_SMALL, wait_for_checkpoint, subprocess_env

    pairs = write_pairs(tmp_path / "pairs.tsv", make_pairs(120, seed=3))
    model_dir = tmp_path / "m"
    args = ["train", pairs, "--model-dir", model_dir, *CLI_SMALL, "--epochs", 1000, "--ensemble", 2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "transducer", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env(),
    )
    wait_for_checkpoint(artifacts.staging_dir(model_dir) / "members" / "1.partial", proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    err = " ".join(err.decode().split())
    assert proc.returncode == 130, err
    assert out == b"" and "Traceback" not in err
    assert "stopped while training ensemble member 1" in err and "--resume" in err
    assert not model_dir.exists()  # an ensemble is published whole or not at all


def test_bad_data_leaves_nothing_to_resume(tmp_path):
    """An error before any member finished (here: an invalid row) leaves no staging area,
    so the corrected command runs without --force."""
    bad = tmp_path / "pairs.tsv"
    bad.write_text("abc\tABC\nno tab here\n")
    out = tmp_path / "ens"
    r = invoke("train", bad, "-m", out, "--hidden", "8", "--max-len", "12", "--ensemble", "2")
    assert_clean_error(r, "line 2", code=2)
    assert not out.exists() and not artifacts.staging_dir(out).exists()


@pytest.mark.slow
def test_an_ensemble_run_scans_its_pairs_once(tmp_path, monkeypatch):
    """The training and validation files are read (validated, split, counted) once per
    ensemble run, not once per member and once more for the ensemble's own validation."""
    from transducer.training import stream
    from transducer.training.ensemble import train_ensemble

    scanned = []
    scan_pairs = stream.scan_pairs
    monkeypatch.setattr(stream, "scan_pairs", lambda path, *a, **kw: scanned.append(path) or scan_pairs(path, *a, **kw))
    pairs = write_pairs(tmp_path / "pairs.tsv", make_pairs(40))
    val = write_pairs(tmp_path / "val.tsv", make_pairs(10, seed=1))
    cfg = ModelConfig(arch="seq2seq", hidden=4, max_len=12)
    result = train_ensemble(str(pairs), tmp_path / "ens", cfg, TrainConfig(epochs=1, ensemble=2), val_path=str(val))
    assert len(result.members) == 2 and result.final
    assert scanned == [str(pairs), str(val)]
