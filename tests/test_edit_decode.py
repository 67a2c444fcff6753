"""Decoding an edit model (`--arch edit`) without TensorFlow: the numpy engine's steps
against Keras's, and greedy and beam search against an exhaustive oracle.

Tiny random edit models (output characters a and b: 9 actions; inputs of at most 3
characters; an output cap of 4) are small enough to run every valid action path by
forced decoding: at most a few thousand per input. A beam that wide holds every prefix,
so it must return exactly the oracle's n best distinct strings, with their scores."""

from __future__ import annotations

import itertools
import json
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import model_or_ensemble, random_model_dir
from transducer.core.artifacts import CONFIG, read_info
from transducer.core.edits import COPY_ACTION, END_ACTION, START_ACTION
from transducer.core.vocab import PAD_ID
from transducer.inference import edit_decode
from transducer.inference.ensemble import load_engine
from transducer.inference.keras_engine import KerasEngine
from transducer.inference.numpy_engine import NumpyEngine
from transducer.inference.predict import Predictor

COMBOS = list(itertools.product([False, True], [1, 2], ["dense", "time-distributed"], [True, False]))
COMBO_IDS = [f"{'bi' if b else 'uni'}-L{l}-{h}-{'ra' if r else 'rb'}" for b, l, h, r in COMBOS]
OUT_CHARS = "ab"  # SUBSTITUTE and INSERT of 2 characters: 9 actions
CAP = 4  # most output characters: up to 4,216 valid paths for a 3-character input
WORDS = ["abc", "a", "cab", "", "eg", "gde"]
EVERY_PREFIX = 20_000  # a beam this wide never drops a path


def edit_model(tmp_path, name="m", seed=0, insert_bias=-1.0, **kw):
    """A random edit model directory (sharpened weights; INSERT's bias lowered so that
    outputs are not all at their cap)."""
    return random_model_dir(tmp_path, name, seed=seed, end_bias=insert_bias, arch="edit", out_chars=OUT_CHARS, **kw)


def input_ids(info, words) -> np.ndarray:
    return info.input_vocab.encode_batch(words, max(1, max(len(w) for w in words)), fill=PAD_ID)[0]  # (B, T)


# --- the numpy engine's step equals Keras's --------------------------------------------------


def in_memory_edit_model(tmp_path, **kw):
    """(ModelInfo, Keras model) of build_edit with random sharpened weights, its
    weights.npz written by networks/export.weight_arrays (no model.keras, no training)."""
    from transducer.core.artifacts import ModelInfo
    from transducer.core.config import ModelConfig
    from transducer.core.edits import EditActions
    from transducer.core.vocab import Vocab
    from transducer.networks.build import build_model
    from transducer.networks.export import weight_arrays
    from transducer.networks.tf import keras

    in_vocab, actions = Vocab.from_strings(["abcdeg"]), EditActions.from_strings([OUT_CHARS])
    cfg = ModelConfig(arch="edit", max_len=RANDOM_LEN, hidden=6, input_vocab_size=len(in_vocab),
                      output_vocab_size=len(actions), **kw)
    keras.utils.set_random_seed(0)
    model = build_model(cfg, variable_length=True)
    model.set_weights([w * 3.0 for w in model.get_weights()])
    np.savez(tmp_path / "weights.npz", **weight_arrays(model))
    return ModelInfo(tmp_path, cfg, in_vocab, actions, {}), model


@pytest.mark.parametrize("bidirectional,layers,head,reset_after", COMBOS, ids=COMBO_IDS)
def test_numpy_edit_step_equals_keras(tmp_path, bidirectional, layers, head, reset_after):
    """Random lines, pointers, previous actions and states: the same probabilities (within
    1e-5), exactly 0 at the same (invalid) actions, and the same new states."""
    info, model = in_memory_edit_model(tmp_path, bidirectional=bidirectional, layers=layers, head=head, reset_after=reset_after)
    words = ["abc", "", "cabbage", "g", "eedd", "ba"]
    x, n = edit_decode.with_end(input_ids(info, words))
    engines = NumpyEngine(info), KerasEngine(info, model=model)
    encs = [e.edit_encode(x) for e in engines]
    rng = np.random.default_rng(1)
    N = 40
    rows = rng.integers(0, len(words), N)
    pointer = rng.integers(0, n[rows] + 1)  # anywhere from the first character to past the end
    prev = rng.integers(START_ACTION, len(info.output_vocab), N)
    states = [rng.normal(0, 0.5, (N, info.model.hidden)).astype(np.float32) for _ in range(layers)]
    (p_np, s_np), (p_k, s_k) = (e.edit_step(enc, rows, pointer, prev, n[rows], states) for e, enc in zip(engines, encs))
    assert p_np.shape == p_k.shape == (N, len(info.output_vocab))
    np.testing.assert_allclose(p_np, p_k, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(p_np == 0, p_k == 0)
    assert ((p_np == 0) == ~info.output_vocab.valid_mask(pointer, n[rows])).all()
    np.testing.assert_allclose(p_np.sum(-1), 1.0, rtol=1e-5)
    for a, b in zip(s_np, s_k, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


# --- the oracle ------------------------------------------------------------------------------


def every_path(engine, ids: np.ndarray, cap: int):
    """Forced decoding of every valid action path of one input (1, T) writing at most
    `cap` characters: ({path: log P}, {prefix: (A,) log-probabilities of its next
    action, invalid ones -inf})."""
    actions = engine.info.output_vocab
    x, n = edit_decode.with_end(ids)
    enc, n = engine.edit_encode(x), int(n[0])
    prefixes, logp, states = [()], np.zeros(1), engine.edit_initial_states(1)
    done, dists = {}, {}
    while prefixes:
        pointer = np.array([sum(actions.advance[a] for a in p) for p in prefixes])
        written = np.array([sum(actions.writes[a] for a in p) for p in prefixes])
        prev = np.array([p[-1] if p else START_ACTION for p in prefixes])
        rows = np.zeros(len(prefixes), int)
        probs, states = engine.edit_step(enc, rows, pointer, prev, np.full(len(prefixes), n), states)
        valid = actions.valid_mask(pointer, n, written, cap)  # (P, A)
        lp = np.where(valid, np.log(np.maximum(probs.astype(np.float64), 1e-30)), -np.inf)
        for i, p in enumerate(prefixes):
            dists[p] = lp[i]
            if valid[i, END_ACTION]:
                done[p + (END_ACTION,)] = logp[i] + lp[i, END_ACTION]
        valid[:, END_ACTION] = False
        src, act = np.nonzero(valid)
        prefixes = [prefixes[i] + (int(a),) for i, a in zip(src, act)]
        logp = logp[src] + lp[src, act]
        states = [s[src] for s in states]
    return done, dists


def oracle_best(done: dict, string: str, actions, n: int) -> list[tuple[str, float, float]]:
    """The n best distinct output strings, (string, best path's log P, score), ranked by
    score = log P / (len + 1); each string by its best path (core's EditActions.apply
    spells the paths)."""
    by_string: dict[str, float] = {}
    for path, lp in done.items():
        out = actions.apply(path, string)
        by_string[out] = max(by_string.get(out, -np.inf), lp)
    ranked = sorted(((s, lp, lp / (len(s) + 1)) for s, lp in by_string.items()), key=lambda x: -x[2])
    return ranked[:n]


def oracle_greedy(dists: dict) -> tuple:
    """The path that takes the most probable valid action at every step."""
    path = ()
    while not path or path[-1] != END_ACTION:
        path += (int(np.argmax(dists[path])),)
    return path


VARIANTS = {
    "unidirectional": {},
    "bidirectional": {"bidirectional": True},
    "2 layers": {"layers": 2, "reset_after": False},
    "bidirectional 2 layers": {"bidirectional": True, "layers": 2, "head": "time-distributed"},
    "ensemble of 2": {"members": 2},
}


def write_variant(tmp_path, name: str, kw: dict, **extra):
    """A random edit model directory for a variant; "members": N writes an ensemble."""
    kw = dict(kw)
    members = kw.pop("members", 1)
    return model_or_ensemble(tmp_path, name, members,
                             lambda parent, n, seed: edit_model(parent, n, seed=seed, max_len=RANDOM_LEN, **kw, **extra)[0])


RANDOM_LEN = 8  # max_len of the random models


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    root = tmp_path_factory.mktemp("edit_beam")
    return {name: write_variant(root / name.replace(" ", "_"), "m", kw) for name, kw in VARIANTS.items()}


# The Keras engine's steps equal numpy's (above) and the search is the same code: Keras
# runs one variant here (its many small steps are slow), numpy all of them.
SEARCHED = [(v, "numpy") for v in VARIANTS] + [("bidirectional 2 layers", "keras")]


@pytest.mark.parametrize("variant,engine_name", SEARCHED)
def test_searches_match_the_exhaustive_oracle(variants, variant, engine_name):
    info = read_info(variants[variant])
    actions = info.output_vocab
    engine = load_engine(info, engine_name)
    ids = input_ids(info, WORDS)
    n = 5
    wide = edit_decode.beam_search(engine, ids, WORDS, actions, CAP, beam=EVERY_PREFIX, nbest=n)
    greedy = edit_decode.greedy(engine, ids, WORDS, actions, CAP)
    searched = {(k, m): edit_decode.beam_search(engine, ids, WORDS, actions, CAP, beam=k, nbest=m)
                for k in (1, 2, 5) for m in (1, k)}
    for b, word in enumerate(WORDS):
        done, dists = every_path(engine, ids[b : b + 1], CAP)
        want = oracle_best(done, word, actions, n)
        assert [c.output for c in wide[b]] == [s for s, _, _ in want]
        np.testing.assert_allclose([c.score for c in wide[b]], [sc for _, _, sc in want], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose([c.logp for c in wide[b]], [lp for _, lp, _ in want], rtol=1e-5, atol=1e-6)
        assert greedy[b].actions == oracle_greedy(dists)
        assert searched[1, 1][b] == [greedy[b]]  # beam 1 is greedy
        for (k, m), found in searched.items():
            cands = found[b]
            assert 1 <= len(cands) <= m and len({c.output for c in cands}) == len(cands)
            assert [c.score for c in cands] == sorted((c.score for c in cands), reverse=True)
            assert cands[0].score >= greedy[b].score - 1e-9  # a beam never does worse than greedy
            best_of = {s: sc for s, _, sc in oracle_best(done, word, actions, len(done))}
            for c in cands:
                assert c.logp == pytest.approx(done[c.actions], rel=1e-5, abs=1e-6)  # its path's, by forced decoding
                assert c.output == actions.apply(c.actions, word)
                assert c.score == pytest.approx(c.logp / (len(c.output) + 1))
                assert c.score <= best_of[c.output] + 1e-6


def test_merged_strings_keep_their_best_path(variants):
    """Several paths spell one string (COPY or SUBSTITUTE by the same character, DELETE
    then INSERT): the wide beam lists each string once, with its best path."""
    info = read_info(variants["unidirectional"])
    engine = load_engine(info)
    ids = input_ids(info, ["ab"])
    done, _ = every_path(engine, ids, CAP)
    paths_of: dict[str, list] = {}
    for path, lp in done.items():
        paths_of.setdefault(info.output_vocab.apply(path, "ab"), []).append(lp)
    assert max(len(v) for v in paths_of.values()) > 1
    [found] = edit_decode.beam_search(engine, ids, ["ab"], info.output_vocab, CAP, beam=EVERY_PREFIX, nbest=len(paths_of))
    assert sorted(c.output for c in found) == sorted(paths_of)
    for c in found:
        assert c.logp == pytest.approx(max(paths_of[c.output]), rel=1e-6)


@pytest.fixture(scope="module")
def longer_models(tmp_path_factory):
    """Random edit models with inputs up to 8 characters, where inserting is tempting."""
    root = tmp_path_factory.mktemp("edit_longer")
    return [edit_model(root, f"m{seed}", seed=seed, insert_bias=bias, bidirectional=seed % 2 == 1)[0]
            for seed, bias in ((0, 0.5), (3, -0.5), (5, -2.0))]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    model=st.integers(0, 2), beam=st.integers(2, 6), nbest=st.integers(1, 6),
    words=st.lists(st.sampled_from(["abc", "cab", "a", "bbca", "ccccc", "acbacbac", "", "cabbage"]), min_size=1, max_size=4),
)
def test_the_best_of_a_beam_never_ranks_below_greedy(longer_models, model, beam, nbest, words):
    nbest = min(nbest, beam)
    info = read_info(longer_models[model])
    engine = load_engine(info)
    ids = input_ids(info, words)
    greedy = edit_decode.greedy(engine, ids, words, info.output_vocab, info.model.max_len)
    found = edit_decode.beam_search(engine, ids, words, info.output_vocab, info.model.max_len, beam, nbest)
    for g, cands in zip(greedy, found):
        assert cands[0].score >= g.score - 1e-9
        assert 1 <= len(cands) <= nbest and len({c.output for c in cands}) == len(cands)
        assert [c.score for c in cands] == sorted((c.score for c in cands), reverse=True)
        assert all(len(c.output) <= info.model.max_len for c in cands)


# --- through Predictor -------------------------------------------------------------------------


def test_copy_writes_the_inputs_own_characters(tmp_path):
    """A model that always copies gives back its input, characters never seen in training
    included (they are read as <unk>, and COPY writes the input's own character)."""
    model_dir, model = edit_model(tmp_path, max_len=RANDOM_LEN)
    head = model.get_layer("dense")
    kernel, bias = head.get_weights()
    bias[[COPY_ACTION, END_ACTION]] = 100.0
    head.set_weights([kernel, bias])
    from transducer.networks.export import export_weights

    export_weights(model, model_dir / "weights.npz")
    model.save(model_dir / "model.keras")
    words = ["a#b", "ünï", "", "gg€"]
    for engine in ("numpy", "keras"):
        got = Predictor(model_dir, engine=engine).predict_batch(words)
        assert [o for o, _ in got] == words
        assert all(c == pytest.approx(1.0) for _, c in got)


def test_the_cap_stops_a_model_that_always_inserts(tmp_path):
    """INSERT far more probable than anything: each line writes its cap (the learned bound
    in config.json, else max_len), then deletes what is left and ends."""
    model_dir, _ = edit_model(tmp_path, max_len=6, insert_bias=30.0)
    words = ["a", "abc", "", "abcdeg"]
    got = Predictor(model_dir).predict_batch(words)
    assert [len(o) for o, _ in got] == [6] * 4
    cfg = json.loads((model_dir / CONFIG).read_text())
    cfg["data"] = {"output_length": {"ratio": 1.0, "extra": 1}}
    bounded = tmp_path / "bounded"
    shutil.copytree(model_dir, bounded)
    (bounded / CONFIG).write_text(json.dumps(cfg))
    for beam in (1, 3):
        for engine in ("numpy", "keras"):
            got = Predictor(bounded, engine=engine, beam=beam).predict_batch(words)
            assert [len(o) for o, _ in got] == [2, 4, 2, 6]  # min(max_len, max(n, 1) + 1)


@pytest.mark.parametrize("variant", ["bidirectional", "ensemble of 2"])
def test_predict_gives_the_same_nbest_with_both_engines(variants, variant):
    words = ["abc", "gade", "", "a#", "cabbage"]
    got = {e: Predictor(variants[variant], engine=e, beam=4, nbest=3).predict_candidates(words) for e in ("numpy", "keras")}
    for (out_n, conf_n, nb_n), (out_k, conf_k, nb_k) in zip(got["numpy"], got["keras"]):
        assert out_n == out_k and [c for c, _, _ in nb_n] == [c for c, _, _ in nb_k]
        np.testing.assert_allclose([p for _, _, p in nb_n], [p for _, _, p in nb_k], rtol=1e-4, atol=1e-7)
        assert conf_n == pytest.approx(nb_n[0][2]) and out_n == nb_n[0][0]


def test_the_api_the_cli_and_evaluate_run_an_edit_model(variants):
    """transducer.load(...).predict, `predict -f jsonl/tsv` and `evaluate` give predict's
    own outputs for an edit model, n-best included; evaluate scores them, both engines."""
    import transducer

    from conftest import invoke

    model_dir = variants["bidirectional"]
    words = ["abc", "gade", "a#", "cab"]
    want = Predictor(model_dir, beam=3, nbest=2).predict_candidates(words)
    model = transducer.load(model_dir, beam=3, nbest=2)
    got = model.predictions(words)
    assert [p.output for p in got] == [w[0] for w in want]
    assert [[c.output for c in p.candidates] for p in got] == [[c for c, _, _ in w[2]] for w in want]
    text = "".join(w + "\n" for w in words)
    r = invoke("predict", model_dir, "--beam", 3, "--nbest", 2, "-f", "jsonl", input=text)
    assert r.exit_code == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["output"] for row in rows] == [w[0] for w in want]
    assert [[c["output"] for c in row["nbest"]] for row in rows] == [[c for c, _, _ in w[2]] for w in want]
    greedy = [out for out, _ in Predictor(model_dir).predict_batch(words)]
    r = invoke("predict", model_dir, "-f", "tsv", input=text)
    assert r.stdout.splitlines() == [f"{w}\t{o}" for w, o in zip(words, greedy)]
    refs = [(w, o if i % 2 else o + "x") for i, (w, o) in enumerate(zip(words, greedy))]  # every other one right
    for engine in ("numpy", "keras"):
        report = model.evaluate(refs, engine=engine, beam=1, nbest=1)
        assert (report.n, report.exact_match) == (4, 0.5)
