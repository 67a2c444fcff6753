"""The encoder-decoder: building, decoding (greedy, beam, n-best), both engines, the CLI."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import write_pairs, RANDOM_MAX_LEN, RANDOM_WORDS, random_model_dir
from transducer.inference import decode
from transducer.core.artifacts import read_info
from transducer.core.config import ModelConfig
from transducer.inference.keras_engine import KerasEngine
from transducer.inference.numpy_engine import NumpyEngine
from transducer.inference.predict import Predictor
from transducer.core.vocab import END_ID, Vocab

runner = CliRunner()
def reverse_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """An unaligned toy task: the input reversed, without its c's."""
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(list("abcdeg"), size=rng.integers(1, RANDOM_MAX_LEN + 1))) for _ in range(n)]
    return [(w, w[::-1].replace("c", "")) for w in words]


def candidates(model_dir, engine="numpy", beam=1, nbest=1, words=RANDOM_WORDS):
    return Predictor(model_dir, engine=engine, beam=beam, nbest=nbest).predict_candidates(words)


@pytest.fixture(scope="module")
def s2s_dir(tmp_path_factory):
    return random_model_dir(tmp_path_factory.mktemp("s2s"))[0]


# --- the network ------------------------------------------------------------------------


@pytest.mark.parametrize("attention", ["luong", "bahdanau", "none"])
def test_network_has_encoder_decoder_attention_and_head(attention):
    from transducer.networks.build import build_model
    from transducer.networks.introspect import layer_rows

    cfg = ModelConfig(arch="seq2seq", max_len=RANDOM_MAX_LEN, hidden=4, attention=attention, bidirectional=True,
                      input_vocab_size=10, output_vocab_size=9)
    rows = {name: (shape, params) for name, _, shape, params in layer_rows(build_model(cfg))}
    assert rows["chars"][0] == f"(None, {RANDOM_MAX_LEN}, 10)"
    assert rows["prev_chars"][0] == f"(None, {RANDOM_MAX_LEN + 1}, 9)"  # <s> + up to max_len chars
    assert rows["encoder_bidirectional_1"][1] > 0 and rows["decoder_gru_1"][1] > 0
    assert rows["softmax"][0] == f"(None, {RANDOM_MAX_LEN + 1}, 9)"
    assert ("attention" in rows) == (attention != "none")
    if attention == "bahdanau":
        assert rows["attention"][1] == 8  # AdditiveAttention's scale, one per unit of 2*hidden


def test_training_arrays_shift_the_target_by_one():
    from transducer.networks.seq2seq import seq2seq_arrays

    v = Vocab.from_strings(["abc"])
    (enc, dec_in), depths, y = seq2seq_arrays([("ab", "cba")], v, v, 4)
    assert depths == [len(v), len(v)]
    assert enc.shape == (1, 4) and dec_in.shape == y.shape == (1, 5)
    assert v.decode(y[0]) == "cba" and (y[0, 3:] == END_ID).all()
    assert dec_in[0, 0] == 2 and (dec_in[0, 1:4] == y[0, :3]).all()


# --- decoding ---------------------------------------------------------------------------


def test_beam_of_one_is_greedy(s2s_dir):
    engine = NumpyEngine(read_info(s2s_dir))
    ids, _ = engine.info.input_vocab.encode_batch(RANDOM_WORDS, RANDOM_MAX_LEN)
    greedy = decode.greedy(engine, ids, RANDOM_MAX_LEN)
    beam = decode.beam_search(engine, ids, RANDOM_MAX_LEN, beam=1)
    assert [g.ids for g in greedy] == [b[0].ids for b in beam]
    assert np.allclose([g.logp for g in greedy], [b[0].logp for b in beam])
    # and a wider beam never finds a worse best hypothesis by its own score
    wide = decode.beam_search(engine, ids, RANDOM_MAX_LEN, beam=4)
    assert all(w[0].score >= g.score - 1e-9 for w, g in zip(wide, greedy))


@pytest.mark.parametrize("arch", ["seq2seq", "aligned"])
def test_nbest_lists_are_sorted_distinct_and_k_long(tmp_path, arch):
    model_dir, _ = random_model_dir(tmp_path, arch=arch, gain=1.5)
    for out, conf, nbest in candidates(model_dir, beam=5, nbest=4):
        assert len(nbest) == 4
        strings = [c for c, _, _ in nbest]
        assert len(set(strings)) == 4
        scores = [s for _, s, _ in nbest]
        assert scores == sorted(scores, reverse=True)
        assert out == strings[0] and conf == pytest.approx(nbest[0][2])
        assert all(0.0 < p <= 1.0 for _, _, p in nbest)


def test_aligned_kbest_is_exact_against_brute_force():
    rng = np.random.default_rng(3)
    T, V = 3, 7  # 4 reserved ids + 3 characters
    probs = rng.dirichlet(np.ones(V) * 0.7, size=(2, T))  # (B, T, V)
    for b, got in enumerate(decode.aligned_kbest(probs, 6)):
        every = []
        for L in range(T + 1):
            for chars in itertools.product(range(4, V), repeat=L):
                p = np.prod([probs[b, t, c] for t, c in enumerate(chars)])
                every.append((p * (probs[b, L, END_ID] if L < T else 1.0), chars))
        every.sort(key=lambda x: -x[0])
        assert [c.ids for c in got] == [c for _, c in every[:6]]
        assert np.allclose([np.exp(c.logp) for c in got], [p for p, _ in every[:6]])


@pytest.mark.parametrize("beam", [1, 3])
def test_a_model_that_cannot_end_stops_at_max_len(tmp_path, beam):
    model_dir, _ = random_model_dir(tmp_path, end_bias=-1e9)
    for engine in ("numpy", "keras"):
        for out, conf, _ in candidates(model_dir, engine, beam=beam, nbest=1):
            assert len(out) == RANDOM_MAX_LEN
            assert conf < 1e-20  # </s> was forced: the model gives this string no probability


# --- engines and saving ---------------------------------------------------------------


@pytest.mark.parametrize(
    "cfg",
    [
        dict(attention="luong"),
        dict(attention="bahdanau", head="time-distributed"),
        dict(attention="none", bidirectional=True),
        dict(attention="luong", head="time-distributed", layers=2, bidirectional=True, reset_after=False),
        dict(attention="bahdanau", layers=2),
        dict(attention="none", head="time-distributed"),
    ],
)
def test_numpy_and_keras_engines_agree(tmp_path, cfg):
    model_dir, _ = random_model_dir(tmp_path, **cfg)
    a = candidates(model_dir, "numpy", beam=3, nbest=3)
    b = candidates(model_dir, "keras", beam=3, nbest=3)
    for (out_a, conf_a, nb_a), (out_b, conf_b, nb_b) in zip(a, b):
        assert out_a == out_b and [c for c, _, _ in nb_a] == [c for c, _, _ in nb_b]
        assert conf_a == pytest.approx(conf_b, abs=1e-5)
        assert np.allclose([p for *_, p in nb_a], [p for *_, p in nb_b], atol=1e-5)


@pytest.mark.graph  # the compiled training step, as users run it
def test_save_load_predict_gives_identical_outputs(tmp_path):
    model_dir, model = random_model_dir(tmp_path, attention="bahdanau", bidirectional=True)
    info = read_info(model_dir)
    in_memory = Predictor(model_dir, engine=KerasEngine(info, model=model), beam=3, nbest=2).predict_candidates(RANDOM_WORDS)
    for engine in ("keras", "numpy"):
        loaded = candidates(model_dir, engine, beam=3, nbest=2)
        assert [r[0] for r in loaded] == [r[0] for r in in_memory]
        assert np.allclose([r[1] for r in loaded], [r[1] for r in in_memory], atol=1e-5)


# --- the CLI end to end -----------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_s2s(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("s2s_cli")
    pairs = write_pairs(tmp / "pairs.tsv", reverse_pairs(200))
    from transducer.cli import app

    r = runner.invoke(app, ["train", str(pairs), "--model-dir", str(tmp / "m"), "--arch", "seq2seq",
                            "--hidden", "8", "--epochs", "1", "--max-len", str(RANDOM_MAX_LEN), "--attention", "bahdanau"])
    assert r.exit_code == 0, r.stderr
    assert "character error rate" in r.stderr and "exact match (decoded strings)" in r.stderr
    return tmp / "m", pairs


INPUTS = ["abc", "", "gea", "a", "deed", "ba", "", "ccgc"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["text", "tsv", "jsonl"])
@pytest.mark.parametrize("beam,nbest", [(1, 1), (3, 2)])
def test_cli_predicts_one_line_per_input_in_order(trained_s2s, fmt, beam, nbest):
    from transducer.cli import app

    r = runner.invoke(app, ["predict", str(trained_s2s[0]), "--format", fmt, "--beam", str(beam),
                            "--nbest", str(nbest), "--batch-size", "3"], input="\n".join(INPUTS) + "\n")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[-1] == "" and len(lines[:-1]) == len(INPUTS)
    lines = lines[:-1]
    if fmt == "text":
        assert lines[1] == "" and lines[6] == ""
        assert all(len(l.split("\t")) == nbest for l, i in zip(lines, INPUTS) if i)
    if fmt == "tsv":
        assert [l.split("\t")[0] for l in lines] == INPUTS
        if nbest > 1:
            assert all(len(l.split("\t")) == 1 + 2 * nbest for l, i in zip(lines, INPUTS) if i)
    if fmt == "jsonl":
        rows = [json.loads(l) for l in lines]
        assert [row["input"] for row in rows] == INPUTS
        for row in rows:
            if row["input"]:
                assert 0.0 < row["confidence"] <= 1.0
                assert ("nbest" in row) == (nbest > 1)
                if nbest > 1:
                    assert row["nbest"][0]["output"] == row["output"] and len(row["nbest"]) == nbest


def test_cli_nbest_larger_than_beam_is_an_argument_error(trained_s2s):
    from transducer.cli import app

    r = runner.invoke(app, ["predict", str(trained_s2s[0]), "--nbest", "3", "--beam", "2"], input="ab\n")
    assert r.exit_code == 2 and "--beam" in r.stderr
    # --nbest alone searches with a beam that wide.
    r = runner.invoke(app, ["predict", str(trained_s2s[0]), "--nbest", "3", "--format", "jsonl"], input="ab\n")
    assert r.exit_code == 0, r.stderr
    assert len(json.loads(r.stdout)["nbest"]) == 3


def test_cli_summarize_shows_the_whole_network(trained_s2s):
    from transducer.cli import app

    r = runner.invoke(app, ["summarize", str(trained_s2s[0])])
    assert r.exit_code == 0, r.stderr
    for fragment in ("encoder_gru_1", "decoder_gru_1", "attention", "AdditiveAttention", "dense", "softmax", "bahdanau"):
        assert fragment in r.stdout
    r = runner.invoke(app, ["summarize", "--arch", "seq2seq", "--attention", "luong", "--bidirectional"])
    assert r.exit_code == 0, r.stderr
    assert "encoder_bidirectional_1" in r.stdout and "attention_combine" in r.stdout


def test_cli_evaluate_a_seq2seq_model(trained_s2s):
    from transducer.cli import app

    model_dir, pairs = trained_s2s
    r = runner.invoke(app, ["evaluate", str(model_dir), str(pairs), "--json", "--beam", "2"])
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["n"] == 200 and 0.0 <= report["cer"] and 0.0 <= report["exact_match"] <= 1.0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), T=st.integers(1, 6), n_chars=st.integers(1, 5), k=st.integers(1, 6))
def test_aligned_kbest_contract(seed, T, n_chars, k):
    """Any distributions: k (or all possible) distinct strings, best first, none beaten by greedy."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(4 + n_chars), size=(1, T))  # (1, T, V)
    found = decode.aligned_kbest(probs, k)[0]
    possible = sum(n_chars**L for L in range(T + 1))
    assert len(found) == min(k, possible)
    assert len({c.ids for c in found}) == len(found)
    assert [c.logp for c in found] == sorted((c.logp for c in found), reverse=True)
    greedy_p = 1.0  # the per-position argmax string (characters only) and its probability
    for t in range(T):
        best_char = probs[0, t, 4:].max()
        if probs[0, t, END_ID] >= best_char:
            greedy_p *= probs[0, t, END_ID]
            break
        greedy_p *= best_char
    assert np.exp(found[0].logp) >= greedy_p * (1 - 1e-9)
