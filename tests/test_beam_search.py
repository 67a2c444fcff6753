"""Beam search against an exhaustive oracle, and the learned output length bound.

Tiny random seq2seq models (3 output characters, outputs of at most 4) are small enough
to score every possible output string by forced decoding. A beam of 3**4 holds every
prefix, so it must return exactly the oracle's n best, with the oracle's scores."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import RANDOM_WORDS, model_or_ensemble, random_model_dir
from transducer.core.artifacts import CONFIG, read_info
from transducer.core.config import OutputLength
from transducer.core.vocab import END_ID, PAD_ID, START_ID
from transducer.inference import decode
from transducer.inference.ensemble import load_engine
from transducer.inference.predict import Predictor

OUT_CHARS = "abd"  # 3 characters + </s>: 4 symbols to choose from at every step
LIMIT = 4  # longest output: 3**0 + ... + 3**4 = 121 strings per input
EVERY_PREFIX = len(OUT_CHARS) ** LIMIT  # a beam this wide never drops a prefix
WORDS = ["abc", "a", "cab", "bbca", "eg", "gade"]

VARIANTS = {
    "luong": {},
    "bahdanau": {"attention": "bahdanau"},
    "no attention": {"attention": "none"},
    "bidirectional": {"bidirectional": True},
    "2 layers": {"layers": 2},
    "ensemble of 2": {"members": 2},
}


def write_variant(tmp_path, name: str, kw: dict, end_bias: float = 1.0, **extra):
    """A random model directory for a variant; "members": N writes an ensemble."""
    kw = dict(kw)
    members = kw.pop("members", 1)
    return model_or_ensemble(tmp_path, name, members, lambda parent, n, seed: random_model_dir(
        parent, n, seed=seed, end_bias=end_bias, max_len=LIMIT, out_chars=OUT_CHARS, **kw, **extra)[0])


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    root = tmp_path_factory.mktemp("beam")
    return {name: write_variant(root / name.replace(" ", "_"), "m", kw) for name, kw in VARIANTS.items()}


def input_ids(info, words) -> np.ndarray:
    return info.input_vocab.encode_batch(words, max(len(w) for w in words), fill=PAD_ID)[0]  # (B, T)


def every_output(engine, ids: np.ndarray, limit: int) -> dict[tuple, float]:
    """Forced decoding of every string of at most `limit` characters for one input (1, T):
    {symbol ids: log P(string, </s>)}, the last step only allowing </s> as the search does."""
    enc, init, mask = engine.seq2seq_encode(ids)
    chars = range(END_ID + 1, engine.info.model.output_vocab_size)
    prefixes, logp, states = [()], np.zeros(1), [init] * engine.decoder_layers
    scored = {}
    for t in range(limit + 1):
        n = len(prefixes)
        prev = np.array([p[-1] if p else START_ID for p in prefixes], np.int32)
        rows = np.zeros(n, int)
        probs, states = engine.seq2seq_step(prev, enc[rows], None if mask is None else mask[rows], states)
        lp = np.log(np.maximum(probs.astype(np.float64), 1e-30))  # (n, V)
        scored.update({p: logp[i] + lp[i, END_ID] for i, p in enumerate(prefixes)})
        if t == limit:
            break
        src = np.repeat(np.arange(n), len(chars))
        sym = np.tile(list(chars), n)
        prefixes = [prefixes[i] + (int(c),) for i, c in zip(src, sym)]
        logp = logp[src] + lp[src, sym]
        states = [s[src] for s in states]
    return scored


def oracle_best(scored: dict[tuple, float], n: int) -> list[tuple[tuple, float]]:
    """The n best strings by the documented ranking, log P / (len + 1)."""
    ranked = sorted(((ids, lp / (len(ids) + 1)) for ids, lp in scored.items()), key=lambda x: -x[1])
    return ranked[:n]


@pytest.mark.parametrize("engine_name", ["numpy", "keras"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_beam_search_matches_the_exhaustive_oracle(variants, variant, engine_name):
    info = read_info(variants[variant])
    engine = load_engine(info, engine_name)
    ids = input_ids(info, WORDS)
    n = 5
    wide = decode.beam_search(engine, ids, LIMIT, beam=EVERY_PREFIX, nbest=n)
    narrow = decode.beam_search(engine, ids, LIMIT, beam=3, nbest=3)
    greedy = decode.greedy(engine, ids, LIMIT)
    one = decode.beam_search(engine, ids, LIMIT, beam=1)
    for b in range(len(WORDS)):
        scored = every_output(engine, ids[b : b + 1], LIMIT)
        want = oracle_best(scored, n)
        assert [c.ids for c in wide[b]] == [ids_ for ids_, _ in want]
        np.testing.assert_allclose([c.score for c in wide[b]], [s for _, s in want], rtol=1e-5, atol=1e-6)
        for c in wide[b] + narrow[b] + [greedy[b]]:  # every reported score is its string's
            assert c.logp == pytest.approx(scored[c.ids], rel=1e-5, abs=1e-6)
            assert c.score == pytest.approx(c.logp / (len(c.ids) + 1))
        assert one[b][0].ids == greedy[b].ids  # beam 1 is greedy
        assert narrow[b][0].score >= greedy[b].score - 1e-9  # and a beam never does worse


@pytest.fixture(scope="module")
def longer_models(tmp_path_factory):
    """Models with up to 8-character outputs, where ending early is tempting."""
    root = tmp_path_factory.mktemp("longer")
    return [random_model_dir(root, f"m{seed}", seed=seed, end_bias=bias)[0] for seed, bias in ((0, 0.5), (3, 1.5), (5, 2.5))]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    model=st.integers(0, 2), beam=st.integers(2, 6), nbest=st.integers(1, 6),
    words=st.lists(st.sampled_from(RANDOM_WORDS), min_size=1, max_size=4),
)
def test_the_best_of_a_beam_never_ranks_below_greedy(longer_models, model, beam, nbest, words):
    nbest = min(nbest, beam)
    info = read_info(longer_models[model])
    engine = load_engine(info)
    ids = input_ids(info, words)
    greedy = decode.greedy(engine, ids, info.model.max_len)
    found = decode.beam_search(engine, ids, info.model.max_len, beam, nbest)
    for g, cands in zip(greedy, found):
        assert cands[0].score >= g.score - 1e-9
        assert len(cands) == nbest and len({c.ids for c in cands}) == nbest
        assert [c.score for c in cands] == sorted((c.score for c in cands), reverse=True)


def with_output_length(model_dir, dest, output_length):
    """A copy of a model directory (members included) with data.output_length set."""
    shutil.copytree(model_dir, dest)
    cfg = json.loads((dest / CONFIG).read_text())
    cfg["data"] = {"output_length": output_length}
    (dest / CONFIG).write_text(json.dumps(cfg))
    return dest


@pytest.fixture(scope="module")
def looping(tmp_path_factory):
    """Models that never end their output (</s> has a huge negative bias): one, and an
    ensemble of 2, without data.output_length."""
    root = tmp_path_factory.mktemp("looping")
    return {n: write_variant(root / str(n), "m", {"members": n}, end_bias=-30.0) for n in (1, 2)}


@pytest.mark.parametrize("members,engines", [(1, ("numpy", "keras")), (2, ("numpy",))])
def test_the_learned_bound_stops_a_looping_model(tmp_path, looping, members, engines):
    old = looping[members]
    bounded = with_output_length(old, tmp_path / "b", {"ratio": 1.0, "extra": 1, "observed_ratio": 0.8})
    words = ["a", "ab", "abc"]
    for engine in engines:
        with_bound = Predictor(bounded, engine=engine)
        without = Predictor(old, engine=engine)
        for beam in (1, 3):
            got = with_bound.with_options(beam=beam).predict_batch(words)
            assert [len(out) for out, _ in got] == [2, 3, 4]  # len(input) + 1, within max_len 4
            before = without.with_options(beam=beam).predict_batch(words)
            assert [len(out) for out, _ in before] == [LIMIT] * 3  # runs to max_len, as before
            assert all(b.startswith(g) for (g, _), (b, _) in zip(got, before))


def test_an_old_model_directory_decodes_as_before(tmp_path, variants):
    """Without data.output_length a model decodes to max_len; a bound that never binds
    changes nothing."""
    old = variants["luong"]
    loose = with_output_length(old, tmp_path / "loose", {"ratio": 50, "extra": 3})
    words = ["abc", "a", "bbca"]
    info = read_info(old)
    ids = input_ids(info, words)
    for beam, nbest in ((1, 1), (3, 2)):
        want = [[(c.ids, c.score) for c in cands] for cands in decode.beam_search(load_engine(info), ids, LIMIT, beam, nbest)]
        for model in (old, loose):
            got = Predictor(model, beam=beam, nbest=nbest).predict_candidates(words)
            outs = [[o for o, _, _ in (nb or [(out, conf, conf)])] for out, conf, nb in got]
            assert outs == [["".join(info.output_vocab.symbols[i] for i in ids_) for ids_, _ in w] for w in want]


def test_explain_stops_at_the_learned_bound(tmp_path, looping):
    from transducer.inference.explain import explain

    bounded = with_output_length(looping[1], tmp_path / "b", {"ratio": 0.5, "extra": 0})
    e = explain(bounded, "abc")
    assert len(e.output) == 2 and len(e.steps) == 3  # ceil(0.5 * 3) characters, then </s>
    assert len(explain(looping[1], "abc").output) == LIMIT


def test_output_length_limits_and_config():
    bound = OutputLength.learned(1.2)
    assert (bound.ratio, bound.extra, bound.observed_ratio) == (1.5, 3, 1.2)
    assert bound.limits([0, 1, 2, 10, 40], max_len=50).tolist() == [5, 5, 6, 18, 50]
    assert OutputLength.from_dict(bound.to_dict()) == bound
    for bad in ([1], {"ratio": "x", "extra": 3}, {"ratio": 1.0, "extra": -1}, {"ratio": 1.0, "extra": 1.5}):
        with pytest.raises(ValueError):
            OutputLength.from_dict(bad)


def test_the_scan_records_the_largest_output_ratio(tmp_path):
    """Training rows only: a validation row's ratio does not count."""
    from transducer.training.stream import scan_pairs

    path = tmp_path / "p.tsv"
    path.write_text("ab\tabcde\nabcd\tab\na\txyz\nabc\tabcdef\n", encoding="utf-8")
    scan = scan_pairs(str(path), 16, skip_invalid=False, val_split=0.0, seed=0)
    assert scan.output_ratio == 3.0
    for limit, (src, tgt) in zip(OutputLength.learned(scan.output_ratio).limits([2, 4, 1, 3], 16), [("ab", "abcde"), ("abcd", "ab"), ("a", "xyz"), ("abc", "abcdef")]):
        assert len(tgt) <= limit  # every training output fits its bound


@pytest.mark.parametrize("seed", [0, 1])
def test_the_aligned_kbest_search_is_exact(seed):
    """The aligned k-best has no early-stop flaw: it equals enumerating every string,
    P(s) = prod p_t(s_t) * p_len(s)(</s>), with no </s> factor at full length."""
    import itertools

    rng = np.random.default_rng(seed)
    B, T, V = 3, 3, END_ID + 4  # 3 characters
    probs = rng.dirichlet(np.ones(V) * 0.5, size=(B, T)).astype(np.float32)  # (B, T, V)
    lp = decode._log_probs(probs).astype(np.float64)
    chars = range(END_ID + 1, V)
    for k in (1, 4, 9):
        found = decode.aligned_kbest(probs, k)
        for b in range(B):
            every = {
                s: sum(lp[b, t, c] for t, c in enumerate(s)) + (lp[b, len(s), END_ID] if len(s) < T else 0.0)
                for n in range(T + 1) for s in itertools.product(chars, repeat=n)
            }
            want = sorted(every.items(), key=lambda x: -x[1])[:k]
            assert [c.ids for c in found[b]] == [s for s, _ in want]
            np.testing.assert_allclose([c.logp for c in found[b]], [v for _, v in want], rtol=1e-5)
