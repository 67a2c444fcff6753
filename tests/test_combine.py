"""Ensembles combined by their outputs (`--combine vote | rescore`), forced scoring, and
ensembles assembled from existing model directories (members of mixed architectures).

Oracles on tiny random models: every forced score is recomputed by a direct loop over the
steps, one candidate at a time; votes are counted by hand; rescoring's winner is the
argmax of those recomputed sums over the members' own candidate lists."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from conftest import assert_clean_error, invoke, random_model_dir, write_pairs
from transducer.api import assemble, load
from transducer.core import artifacts
from transducer.core.config import PredictOptions, TransducerError
from transducer.core.edits import END_ACTION, START_ACTION
from transducer.core.vocab import END_ID, PAD_ID, START_ID, UNK_ID
from transducer.inference import combine, edit_decode, forced
from transducer.inference.ensemble import load_engine
from transducer.inference.forced import LOG_FLOOR
from transducer.inference.predict import Predictor

WORDS = ["abc", "cab", "a", "bbca", "eg", "gade", "ccccc", "xab"]  # 'x': never seen (<unk>)
EXTRA = ["", "ab", "zz", "abdabdab", "gggggggggg"]  # 'z': not an output character; 10 > max_len 8
MEMBERS = {  # name -> random_model_dir options: members that disagree
    "s2s": dict(seed=0, end_bias=1.0),
    "s2s-bi": dict(seed=1, end_bias=1.0, bidirectional=True),
    "s2s-bahdanau": dict(seed=2, end_bias=0.5, attention="bahdanau"),
    "aligned": dict(seed=3, arch="aligned"),
    "label": dict(seed=4, arch="label"),
    "edit": dict(seed=5, arch="edit", end_bias=-1.0, bidirectional=True),  # end_bias: INSERT's
}
STRING_MEMBERS = ["s2s", "s2s-bi", "s2s-bahdanau", "aligned", "edit"]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("combine")
    return {name: random_model_dir(root, name, **kw)[0] for name, kw in MEMBERS.items()}


# --- oracles -------------------------------------------------------------------------------


def loop_logp(engine, word: str, cand: str) -> float:
    """log P(cand | word) by a direct loop over the steps (one model, one candidate)."""
    info = engine.info
    arch = info.model.arch
    if arch == "label":
        i = info.output_vocab.id_of(cand)
        ids, _ = info.input_vocab.encode_batch([word], info.model.max_len)
        return float(np.log(max(engine.label_probs(ids)[0, i], 1e-30))) if i >= 0 else LOG_FLOOR
    if arch == "edit":
        return spelled_paths_logp(engine, word, cand)
    syms = [info.output_vocab.id_of(c) for c in cand]
    total = 0.0
    if arch == "aligned":
        ids, _ = info.input_vocab.encode_batch([word], info.model.max_len)
        probs = engine.aligned_probs(ids)[0]  # (T, V)
        T = len(probs)
        for t, s in enumerate(syms + ([END_ID] if len(syms) < T else [])):
            copied = t < len(word) and ids[0, t] == UNK_ID  # --unk copy: certain, its own character
            if copied:
                total += 0.0 if t < len(cand) and cand[t] == word[t] else LOG_FLOOR
            else:
                total += LOG_FLOOR if t >= T or s == UNK_ID else float(np.log(max(probs[t, s], 1e-30)))
        return total
    ids, _ = info.input_vocab.encode_batch([word], max(1, len(word)))
    enc, init, mask = engine.seq2seq_encode(ids)
    states, prev = [init] * engine.decoder_layers, START_ID
    for s in syms + [END_ID]:
        probs, states = engine.seq2seq_step(np.array([prev], np.int32), enc, mask, states)
        total += LOG_FLOOR if s == UNK_ID else float(np.log(max(probs[0, s], 1e-30)))
        prev = s
    return total


def spelled_paths_logp(engine, word: str, cand: str) -> float:
    """An edit model's forced score by exhaustion: every action path whose output is
    `cand`, each run step by step; the best one's log P. Characters no action can write
    (neither an output character nor in the input) cost the floor each, as forced.py says."""
    actions = engine.info.output_vocab
    writable = "".join(c for c in cand if c in actions.chars or c in word)
    penalty = LOG_FLOOR * (len(cand) - len(writable))
    ids, _ = engine.info.input_vocab.encode_batch([word], max(1, len(word)), fill=PAD_ID)
    x, n = edit_decode.with_end(ids)
    enc, n = engine.edit_encode(x), int(n[0])
    live = [((), "", 0, 0.0)]  # (path, output, pointer, log P)
    states, best = engine.edit_initial_states(1), -np.inf
    while live:
        rows = np.zeros(len(live), int)
        pointer = np.array([i for _, _, i, _ in live])
        prev = np.array([p[-1] if p else START_ACTION for p, _, _, _ in live])
        probs, states = engine.edit_step(enc, rows, pointer, prev, np.full(len(live), n), states)
        nxt, src = [], []
        for r, (path, out, i, lp) in enumerate(live):
            for a in range(len(actions)):
                if a == END_ACTION:
                    if i == n and out == writable:
                        best = max(best, lp + float(np.log(max(probs[r, a], 1e-30))))
                    continue
                try:
                    wrote, i2 = actions.step(a, word, i)
                except ValueError:  # <pad>, <s>, or not allowed at this pointer
                    continue
                if writable.startswith(out + wrote):
                    nxt.append((path + (a,), out + wrote, i2, lp + float(np.log(max(probs[r, a], 1e-30)))))
                    src.append(r)
        live, states = nxt, [s[src] for s in states]
    return best + penalty if np.isfinite(best) else LOG_FLOOR * (len(cand) + 1)


def ballots(member_dirs, words, beam=1):
    """Each member's own output (and its log P) per word: what it votes."""
    return [Predictor(d, beam=beam, cache=0).search(words) for d in member_dirs]


# --- forced scoring ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["s2s", "s2s-bi", "s2s-bahdanau", "aligned", "label"])
def test_forced_scores_equal_a_direct_loop_over_the_steps(dirs, name):
    p = Predictor(dirs[name], beam=3, nbest=3, cache=0)
    own = [[c for c, _, _ in cands] for cands in p.search(WORDS)]
    cands = [o + EXTRA for o in own]
    got = p.forced(WORDS, cands)
    for w, cs, g in zip(WORDS, cands, got):
        want = [loop_logp(p.engine, w, c) for c in cs]
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-4, err_msg=w)


EDIT_WORDS = ["abc", "a", "", "ba", "xa", "gd"]  # 'x': unseen, only COPY writes it
EDIT_CANDS = ["", "a", "b", "ab", "ba", "abd", "xa", "zb", "bab", "dg"]  # 'z': no action writes it


def test_edit_forced_scores_are_the_best_path_spelling_the_candidate(dirs):
    p = Predictor(dirs["edit"], cache=0)
    ids, _ = p.info.input_vocab.encode_batch(EDIT_WORDS, 3, fill=PAD_ID)
    cands = [EDIT_CANDS] * len(EDIT_WORDS)
    exact = forced.edit_logp(p.engine, ids, EDIT_WORDS, cands, p.info.output_vocab, beam=10_000)
    default = p.forced(EDIT_WORDS, cands)  # a beam of FORCED_BEAM paths per candidate
    for w, e, d in zip(EDIT_WORDS, exact, default):
        want = [spelled_paths_logp(p.engine, w, c) for c in EDIT_CANDS]
        np.testing.assert_allclose(e, want, rtol=1e-5, atol=1e-4, err_msg=w)
        assert np.all(d <= e + 1e-4), w  # a narrower search finds at best the best path


@pytest.mark.parametrize("name", STRING_MEMBERS + ["label"])
@pytest.mark.parametrize("beam", [1, 4])
def test_forced_score_of_the_searchs_own_output_is_its_log_probability(dirs, name, beam):
    p = Predictor(dirs[name], beam=beam, nbest=beam, cache=0)
    if name == "aligned" and beam == 1:
        pytest.skip("greedy aligned decoding may end a string on <pad>; its k-best search scores strings")
    found = p.search(WORDS)
    got = p.forced(WORDS, [[c for c, _, _ in cands] for cands in found])
    for cands, g in zip(found, got):
        own = np.array([lp for _, _, lp in cands])
        if name == "edit":  # the best path spelling the output is at least as probable as the one found
            assert np.all(g >= own - 1e-4)
        else:
            np.testing.assert_allclose(g, own, rtol=1e-5, atol=1e-4)


# --- vote ----------------------------------------------------------------------------------


@pytest.mark.parametrize("members", [["s2s", "s2s-bi", "s2s-bahdanau"], ["s2s", "s2s", "aligned", "s2s-bi"],
                                     ["s2s-bi", "aligned"], ["edit", "s2s-bi", "aligned"]])
@pytest.mark.parametrize("beam", [1, 3])
def test_vote_is_the_majority_ties_to_the_voters_summed_log_probability(dirs, tmp_path, members, beam):
    paths = [dirs[m] for m in members]
    ens = assemble(paths, tmp_path / "ens")
    found = ballots(paths, WORDS, beam)
    preds = Predictor(ens, combine="vote", beam=beam, nbest=beam).predict_candidates(WORDS)
    for b, (out, conf, nbest) in enumerate(preds):
        votes = Counter(f[b][0][0] for f in found)
        logp = {o: sum(f[b][0][2] for f in found if f[b][0][0] == o) for o in votes}
        most = max(votes.values())
        tied = [o for o in votes if votes[o] == most]
        assert out == max(tied, key=lambda o: logp[o]), (WORDS[b], votes, logp)
        assert conf == pytest.approx(most / len(members))
        if beam > 1:  # the distinct votes, most first, then by their voters' log P
            ranked = sorted(votes, key=lambda o: (-votes[o], -logp[o]))[:beam]
            assert nbest == [(o, votes[o] / len(members), votes[o] / len(members)) for o in ranked]


def test_a_vote_of_copies_is_the_model_unanimous(dirs, tmp_path):
    ens = assemble([dirs["s2s-bi"]] * 3, tmp_path / "three")
    single = Predictor(dirs["s2s-bi"]).predict_batch(WORDS)
    voted = Predictor(ens, combine="vote").predict_batch(WORDS)
    assert [o for o, _ in voted] == [o for o, _ in single]
    assert all(c == 1.0 for _, c in voted)


def test_one_model_ignores_the_rule(dirs):
    for rule in ("vote", "rescore"):
        assert Predictor(dirs["s2s"], combine=rule).predict_batch(WORDS) == Predictor(dirs["s2s"]).predict_batch(WORDS)


# --- rescore -------------------------------------------------------------------------------


@pytest.mark.parametrize("members", [["s2s", "s2s-bi", "s2s-bahdanau"], ["s2s-bi", "aligned"], ["label", "label"],
                                     ["edit", "s2s", "aligned"]])
@pytest.mark.parametrize("nbest", [1, 3])
def test_rescore_is_the_best_sum_of_every_members_forced_log_probability(dirs, tmp_path, monkeypatch, members, nbest):
    monkeypatch.setattr(forced, "FORCED_BEAM", 10_000)  # an edit member's forced search, exact
    words = [w for w in EDIT_WORDS if w] if "edit" in members else WORDS  # short: the oracle enumerates paths
    paths = [dirs[m] for m in members]
    ens = assemble(paths, tmp_path / "ens")
    k = combine.rescore_k(nbest, nbest)
    proposals = [Predictor(d, beam=k, nbest=k, cache=0).search(words) for d in paths]
    engines = [load_engine(artifacts.read_info(d)) for d in paths]
    preds = Predictor(ens, combine="rescore", nbest=nbest).predict_candidates(words)
    for b, (out, conf, nb) in enumerate(preds):
        union = list(dict.fromkeys(c for f in proposals for c, _, _ in f[b]))
        total = {c: sum(loop_logp(e, words[b], c) for e in engines) for c in union}
        per_symbol = {c: total[c] / (len(c) + 1) for c in union}  # the rule: summed log P per symbol
        best = max(union, key=lambda c: per_symbol[c])
        assert per_symbol[out] == pytest.approx(per_symbol[best], abs=1e-3), (words[b], out, best)
        assert conf == pytest.approx(np.exp(total[out] / len(paths)), rel=1e-4)
        if nbest > 1:  # the union's best, best first
            assert len(nb) == min(nbest, len(union)) and len({c for c, _, _ in nb}) == len(nb)
            assert [s for _, s, _ in nb] == pytest.approx([per_symbol[c] / len(paths) for c, _, _ in nb], abs=1e-4)
            assert all(x[1] >= y[1] for x, y in zip(nb, nb[1:]))
            assert nb[-1][1] >= sorted(per_symbol.values())[-len(nb)] / len(paths) - 1e-4


def test_rescoring_copies_of_one_model_gives_its_beam_search_back(dirs, tmp_path):
    ens = assemble([dirs["s2s-bi"]] * 3, tmp_path / "three")
    k = combine.rescore_k(1, 1)
    got = Predictor(ens, combine="rescore").predict_batch(WORDS)
    want = Predictor(dirs["s2s-bi"], beam=k).predict_batch(WORDS)
    assert [o for o, _ in got] == [o for o, _ in want]
    assert [c for _, c in got] == pytest.approx([c for _, c in want], rel=1e-4)


# --- assembled and mixed ensembles ---------------------------------------------------------


def test_assemble_copies_members_in_order_and_flattens_ensembles(dirs, tmp_path):
    two = assemble([dirs["s2s"], dirs["s2s-bi"]], tmp_path / "two")
    three = assemble([two, dirs["aligned"]], tmp_path / "three")
    info = artifacts.read_info(three)
    assert info.raw["ensemble"]["members"] == 3 and info.raw["ensemble"]["assembled"] is True
    assert info.raw["ensemble"]["sources"] == [str(two.resolve()), str(dirs["aligned"].resolve())]
    members = artifacts.read_members(info)
    assert [m.model.arch for m in members] == ["seq2seq", "seq2seq", "aligned"]
    assert [m.model.bidirectional for m in members] == [False, True, False]
    for k, src in enumerate([dirs["s2s"], dirs["s2s-bi"], dirs["aligned"]], 1):
        d = artifacts.member_dir(three, k)
        assert (d / artifacts.WEIGHTS).read_bytes() == (src / artifacts.WEIGHTS).read_bytes()
        assert k == 1 or "ensemble" not in json.loads((d / artifacts.CONFIG).read_text())
        assert not (d / artifacts.MEMBERS).exists() or k == 1


def test_an_assembled_ensemble_of_one_architecture_runs_the_mean(dirs, tmp_path):
    a, _ = random_model_dir(tmp_path, "a", seed=5, end_bias=1.0)
    b, _ = random_model_dir(tmp_path, "b", seed=6, end_bias=1.0)
    ens = assemble([a, b], tmp_path / "ens")
    mean = Predictor(ens).predict_batch(WORDS)
    assert mean != Predictor(a).predict_batch(WORDS)
    members = [load_engine(artifacts.read_info(d)) for d in (a, b)]
    from transducer.inference.ensemble import EnsembleEngine

    assert mean == Predictor(ens, engine=EnsembleEngine(members)).predict_batch(WORDS)


MIXED_WORDS = ["abc", "", "cab", "xab", "bbca" * 5, "gade", "a"]  # "" and a long line skip the model


def predict_tsv(ens, rule: str, engine: str) -> list[str]:
    """`predict --combine rule -f tsv` of MIXED_WORDS: the output column, checked to hold
    one line per input line, in order."""
    r = invoke("predict", ens, "--combine", rule, "--engine", engine, "--on-long", "copy", "-f", "tsv",
               input="".join(w + "\n" for w in MIXED_WORDS))
    assert r.exit_code == 0, r.stderr
    rows = r.stdout.split("\n")
    assert rows[-1] == "" and [row.split("\t")[0] for row in rows[:-1]] == MIXED_WORDS
    return [row.split("\t")[1] for row in rows[:-1]]


@pytest.fixture(scope="module")
def mixed(dirs, tmp_path_factory):
    """An ensemble assembled by the CLI from a seq2seq, an aligned, an edit and another
    seq2seq model."""
    ens = tmp_path_factory.mktemp("mixed") / "mixed"
    r = invoke("assemble", dirs["s2s-bi"], dirs["aligned"], dirs["edit"], dirs["s2s"], "-m", ens)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == f"{ens}\n"
    return ens


@pytest.mark.parametrize("rule", ["vote", "rescore"])
def test_a_mixed_ensemble_predicts_one_line_per_input_line_in_order(mixed, rule):
    outputs = predict_tsv(mixed, rule, "numpy")
    assert outputs == load(mixed, combine=rule, on_long="copy").predict(MIXED_WORDS)
    assert outputs[1] == "" and outputs[4] == MIXED_WORDS[4]


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["vote", "rescore"])
def test_a_mixed_ensemble_gives_the_same_outputs_on_both_engines(mixed, rule):
    assert predict_tsv(mixed, rule, "keras") == predict_tsv(mixed, rule, "numpy")


def test_evaluate_combines_as_predict_does(dirs, tmp_path):
    ens = assemble([dirs["s2s"], dirs["s2s-bi"], dirs["aligned"]], tmp_path / "ens")
    for rule in ("vote", "rescore"):
        model = load(ens, combine=rule)
        pairs = list(zip(WORDS, model.predict(WORDS)))
        report = model.evaluate(pairs)
        assert report.exact_match == 1.0
        r = invoke("evaluate", ens, write_pairs(tmp_path / "t.tsv", pairs), "--combine", rule, "--json")
        assert r.exit_code == 0, r.stderr
        assert json.loads(r.stdout)["exact_match"] == 1.0


def test_the_mean_of_a_mixed_ensemble_is_a_one_line_error_naming_vote_and_rescore(dirs, tmp_path):
    ens = assemble([dirs["s2s"], dirs["aligned"]], tmp_path / "ens")
    words = write_pairs(tmp_path / "w.tsv", [("abc", "ab")])
    for args in (["predict", ens, words, "--combine", "mean"], ["evaluate", ens, words, "--combine", "mean"]):
        r = invoke(*args)
        assert_clean_error(r, "different architectures (seq2seq and aligned)", "--combine vote", "--combine rescore", code=2)
        assert len(r.stderr.strip().splitlines()) == 1
    with pytest.raises(TransducerError, match="combine='vote'"):
        load(ens, combine="mean")
    assert len(load(ens, combine="vote").predict(WORDS)) == len(WORDS)


def test_the_default_rule_is_the_mean_where_members_allow_it_else_rescore(dirs, tmp_path):
    """--combine auto (the default): one architecture and vocabulary, the per-step mean;
    a mixed ensemble, rescoring; the CLI and the API alike."""
    other, _ = random_model_dir(tmp_path, "other", seed=7, end_bias=1.0)  # dirs["s2s"]'s architecture
    same = assemble([dirs["s2s"], other], tmp_path / "same")
    mixed = assemble([dirs["s2s"], dirs["aligned"], dirs["edit"]], tmp_path / "mixed")
    inputs = tmp_path / "in.txt"
    inputs.write_text("\n".join(WORDS) + "\n")
    for ens, rule in ((same, "mean"), (mixed, "rescore")):
        assert load(ens).predict(WORDS) == load(ens, combine=rule).predict(WORDS)
        assert load(ens, nbest=2).predict(WORDS) == load(ens, combine=rule, nbest=2).predict(WORDS)
        r = invoke("predict", ens, inputs)
        assert r.exit_code == 0, r.stderr
        assert r.stdout == invoke("predict", ens, inputs, "--combine", rule).stdout


def test_assemble_refuses_inconsistent_inputs_with_one_line(dirs, tmp_path):
    nfd, _ = random_model_dir(tmp_path, "nfd", normalize="nfd")
    short, _ = random_model_dir(tmp_path, "short", max_len=6)
    cases = [
        ([dirs["s2s"], nfd], "normalization form (--normalize): none and nfd"),
        ([dirs["s2s"], dirs["label"]], "output kind (labels or strings): strings and labels"),
        ([dirs["s2s"], short], "max_len: 8 and 6"),
        ([dirs["s2s"]], "at least 2 models (members), got 1"),
        ([dirs["s2s"], tmp_path / "nope"], "no such model directory"),
    ]
    for sources, fragment in cases:
        with pytest.raises(TransducerError, match="^[^\n]*$") as e:
            assemble(sources, tmp_path / "out")
        assert fragment in str(e.value)
        r = invoke("assemble", *sources, "-m", tmp_path / "out")
        assert_clean_error(r, fragment, code=2)
        assert not (tmp_path / "out").exists()
    assemble([dirs["s2s"], dirs["aligned"]], tmp_path / "out")
    r = invoke("assemble", dirs["s2s"], dirs["aligned"], "-m", tmp_path / "out")
    assert_clean_error(r, "already exists; pass --force", code=2)
    assert invoke("assemble", dirs["s2s"], dirs["s2s"], "-m", tmp_path / "out", "--force").exit_code == 0
    assert artifacts.read_info(tmp_path / "out").raw["ensemble"]["members"] == 2


def test_the_rule_is_checked_once_for_every_entry_point():
    with pytest.raises(TransducerError, match="--combine must be one of auto, mean, vote, rescore, got 'sum'"):
        PredictOptions(combine="sum")
    r = invoke("predict", "m", "--combine", "sum")
    assert r.exit_code == 2 and "sum" in r.stderr and "Traceback" not in r.stderr
