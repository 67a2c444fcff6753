"""Ensembles: combining members, the model directory's members, `train --ensemble N`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import make_pairs, write_pairs
from test_cli import assert_clean_error, invoke
from test_seq2seq import WORDS, random_model_dir
from transducer import artifacts
from transducer.config import ModelConfig, TrainConfig
from transducer.ensemble import EnsembleEngine, combine, load_engine
from transducer.predict import Predictor


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


@pytest.mark.parametrize("engine", ["numpy", "keras"])
@pytest.mark.parametrize("arch,bidirectional", [("seq2seq", False), ("seq2seq", True), ("aligned", False), ("aligned", True)])
def test_copies_of_one_model_give_that_models_outputs(tmp_path, engine, arch, bidirectional):
    single, _ = random_model_dir(tmp_path, "single", arch=arch, bidirectional=bidirectional)
    ens = make_ensemble([single] * 3, tmp_path / "ensemble")
    predictor = Predictor(ens, engine=engine)
    assert isinstance(predictor.engine, EnsembleEngine) and len(predictor.engine.engines) == 3
    for beam, nbest in ((1, 1), (3, 3)):
        want = Predictor(single, engine=engine, beam=beam, nbest=nbest).predict_candidates(WORDS)
        got = Predictor(ens, engine=engine, beam=beam, nbest=nbest).predict_candidates(WORDS)
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
    ids, _ = ens.info.input_vocab.encode_batch(WORDS, ens.info.model.max_len)
    enc, init = ens.seq2seq_encode(ids)
    (enc_a, init_a), (enc_b, init_b) = ea.seq2seq_encode(ids), eb.seq2seq_encode(ids)
    prev = np.full(len(WORDS), 2, np.int32)  # <s>
    probs, states = ens.seq2seq_step(prev, enc, [init] * ens.decoder_layers)
    pa, sa = ea.seq2seq_step(prev, enc_a, [init_a])
    pb, sb = eb.seq2seq_step(prev, enc_b, [init_b])
    np.testing.assert_allclose(probs, combine([pa, pb]), rtol=1e-6)
    np.testing.assert_allclose(states[0], np.concatenate([sa[0], sb[0]], axis=-1))
    assert not np.allclose(pa, pb)  # the members really differ


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
        assert_clean_error(invoke(*args), f"ensemble members disagree on the {name}", "member 2", code=2)


def test_a_missing_member_is_a_one_line_error(tmp_path):
    single, _ = random_model_dir(tmp_path, "single")
    ens = make_ensemble([single, single], tmp_path / "ensemble")
    shutil.rmtree(artifacts.member_dir(ens, 2))
    words = tmp_path / "words.txt"
    words.write_text("abc\n")
    assert_clean_error(invoke("predict", ens, words), "ensemble member 2 is missing", code=2)


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


def test_an_interrupted_ensemble_resumes_keeping_finished_members(tmp_path):
    """A run that dies after member 1 (here: an exception at member 2's start) leaves member 1
    in DIR.partial; a new run without --resume refuses, --resume trains member 2 only."""
    from transducer.train_ensemble import train_ensemble

    pairs = write_pairs(tmp_path / "pairs.tsv", make_pairs(150))
    out = tmp_path / "ens"
    mcfg = ModelConfig(arch="aligned", hidden=8, max_len=12)
    tcfg = TrainConfig(epochs=1, batch_size=32, ensemble=2)
    events = []

    def die_at_member_2(k, n, seed, event, result):
        events.append((k, event))
        if (k, event) == (2, "start"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_ensemble(str(pairs), out, mcfg, tcfg, on_member=die_at_member_2)
    assert not out.exists()
    member_1 = artifacts.staging_dir(out) / "members" / "1" / artifacts.WEIGHTS
    before = member_1.read_bytes()

    r = invoke("train", pairs, "-m", out, "--hidden", "8", "--max-len", "12", "--epochs", "1", "--batch-size", "32", "--ensemble", "2")
    assert_clean_error(r, "holds an interrupted run", "--resume", code=2)

    events.clear()
    result = train_ensemble(str(pairs), out, mcfg, tcfg, resume=True, on_member=lambda k, n, s, e, r: events.append((k, e)))
    assert events == [(1, "skip"), (2, "start"), (2, "end")]
    assert result.skipped == [1] and not result.interrupted
    assert (out / artifacts.WEIGHTS).read_bytes() == before
    assert len(artifacts.read_members(artifacts.read_info(out))) == 2

    # --resume after a finished run: nothing to resume
    assert_clean_error(invoke("train", pairs, "-m", out, "--ensemble", "2", "--resume"), "cannot --resume", code=2)
