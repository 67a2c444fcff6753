"""The edit actions, the stochastic edit distance and the expert (transducer.core.edits),
checked against a brute-force enumeration of every monotonic alignment on tiny pairs."""

import json

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from transducer.core.edits import (
    COPY_ACTION,
    DELETE_ACTION,
    END_ACTION,
    PAD_ACTION,
    START_ACTION,
    TIE_TOLERANCE,
    EditActions,
    Expert,
    StochasticEditDistance,
)

SOURCE, TARGET = "abc", "abd"  # 'a' and 'b' can be copied, 'c' only rewritten, 'd' only written
inputs = st.text(alphabet=SOURCE, max_size=4)
outputs = st.text(alphabet=TARGET, max_size=4)
tiny_pairs = st.tuples(inputs, outputs)
SLOW_ENOUGH = settings(max_examples=60, deadline=None)
longer_pairs = st.tuples(st.text(alphabet=SOURCE, max_size=6), st.text(alphabet=TARGET, max_size=6))


def random_sed(seed: int, source: str = SOURCE, target: str = TARGET) -> StochasticEditDistance:
    """Parameters drawn from a Dirichlet: no structure, so any tie is a real one."""
    S, T = len(source) + 1, len(target) + 1
    p = np.random.default_rng(seed).dirichlet(np.full(S * T + S + T + 1, 0.7))
    logp = np.log(p)
    return StochasticEditDistance(
        tuple(source),
        tuple(target),
        logp[: S * T].reshape(S, T),
        logp[S * T : S * T + S],
        logp[S * T + S : -1],
        float(logp[-1]),
    )


def completions(x: str, y: str, i: int, j: int) -> list[list[tuple]]:
    """Every monotonic alignment of x[i:] with y[j:], as a list of edits ending in END."""
    if i == len(x) and j == len(y):
        return [[("end",)]]
    out = []
    if i < len(x) and j < len(y):
        out += [[("sub", x[i], y[j])] + rest for rest in completions(x, y, i + 1, j + 1)]
    if j < len(y):
        out += [[("ins", y[j])] + rest for rest in completions(x, y, i, j + 1)]
    if i < len(x):
        out += [[("del", x[i])] + rest for rest in completions(x, y, i + 1, j)]
    return out


def edit_logp(sed: StochasticEditDistance, edit: tuple) -> float:
    s = {c: k for k, c in enumerate(sed.source)}
    t = {c: k for k, c in enumerate(sed.target)}
    if edit[0] == "sub":
        return sed.log_sub[s[edit[1]], t[edit[2]]]
    if edit[0] == "ins":
        return sed.log_ins[t[edit[1]]]
    if edit[0] == "del":
        return sed.log_del[s[edit[1]]]
    return sed.log_end


def action_of(actions: EditActions, edit: tuple) -> int:
    if edit[0] == "sub":
        return COPY_ACTION if edit[1] == edit[2] else actions.substitute(edit[2])
    if edit[0] == "ins":
        return actions.insert(edit[1])
    return DELETE_ACTION if edit[0] == "del" else END_ACTION


def oracle_optimal(sed, actions, x, y, i, j) -> tuple[float, set[int]]:
    """(min cost over all completions from (i, j), the first actions of the min-cost ones)."""
    scored = [(-sum(edit_logp(sed, e) for e in c), c[0]) for c in completions(x, y, i, j)]
    best = min(cost for cost, _ in scored)
    return best, {action_of(actions, first) for cost, first in scored if cost <= best + TIE_TOLERANCE}


def expert_for(sed: StochasticEditDistance) -> Expert:
    return Expert(sed, EditActions(tuple(sed.target)))


# --- the action vocabulary


def test_action_ids_layout_names_and_json_round_trip():
    acts = EditActions.from_strings(["ba", "c"])
    assert acts.chars == ("a", "b", "c") and len(acts) == 11
    assert (PAD_ACTION, START_ACTION, END_ACTION, COPY_ACTION, DELETE_ACTION) == (0, 1, 2, 3, 4)
    assert [acts.substitute(c) for c in "abc"] == [5, 6, 7]
    assert [acts.insert(c) for c in "abc"] == [8, 9, 10]
    assert acts.names()[:5] == ("<pad>", "<s>", "END", "COPY", "DELETE")
    assert acts.names()[5:] == ("SUB(a)", "SUB(b)", "SUB(c)", "INS(a)", "INS(b)", "INS(c)")
    assert acts.advance.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0]
    assert acts.writes.tolist() == [False, False, False, True, False] + [True] * 6
    assert EditActions.from_json(json.loads(json.dumps(acts.to_json()))) == acts
    with pytest.raises(KeyError):
        acts.insert("z")
    with pytest.raises(ValueError):
        EditActions(("a", "a"))


def test_apply_runs_the_worked_example_and_copies_unseen_characters():
    acts = EditActions.from_strings(["flɒks"])
    sub, ins = acts.substitute, acts.insert
    script = [sub("f"), DELETE_ACTION, COPY_ACTION, sub("ɒ"), ins("k"), sub("s"), END_ACTION]
    assert acts.apply(script, "phlox") == "flɒks"
    padded = [COPY_ACTION, COPY_ACTION, END_ACTION, PAD_ACTION, PAD_ACTION]
    assert acts.apply(padded, "7Ω") == "7Ω"  # characters never seen, and padding after END
    assert acts.apply([END_ACTION], "") == ""
    assert acts.apply([acts.insert("k"), END_ACTION], "") == "k"


@pytest.mark.parametrize(
    "script, x, message",
    [
        ([COPY_ACTION, END_ACTION], "", "past the input"),
        ([DELETE_ACTION, DELETE_ACTION, END_ACTION], "a", "past the input"),
        ([END_ACTION], "a", "END with the pointer"),
        ([COPY_ACTION], "a", "no END"),
        ([PAD_ACTION, END_ACTION], "", "not an action"),
        ([START_ACTION, END_ACTION], "", "not an action"),
        ([99, END_ACTION], "", "outside the vocabulary"),
    ],
)
def test_apply_rejects_invalid_scripts(script, x, message):
    with pytest.raises(ValueError, match=message):
        EditActions(("k",)).apply(script, x)


@given(st.integers(0, 6), st.integers(0, 6), st.integers(0, 8), st.one_of(st.none(), st.integers(0, 8)))
def test_valid_mask_follows_the_pointer_rules(i, n, written, max_output):
    acts = EditActions(("a", "b"))
    if i > n:
        with pytest.raises(ValueError):
            acts.valid_mask(i, n, written, max_output)
        return
    mask = acts.valid_mask(i, n, written, max_output)
    room = max_output is None or written < max_output
    kinds = [acts.kind(a) for a in range(len(acts))]
    for a, kind in enumerate(kinds):
        expected = {
            "pad": False,
            "start": False,
            "end": i == n,
            "copy": i < n and room,
            "delete": i < n,
            "substitute": i < n and room,
            "insert": room,
        }[kind]
        assert mask[a] == expected, (kind, i, n, written, max_output)
    # one step of anything valid keeps the pointer within the input
    for a in np.flatnonzero(mask):
        if kinds[a] != "end":
            assert acts.step(a, "x" * n, i)[1] <= n


def test_valid_mask_broadcasts_over_a_batch():
    acts = EditActions(("a",))
    i, n = np.array([0, 2, 3]), np.array([2, 2, 5])
    batch = acts.valid_mask(i, n, np.array([0, 1, 4]), np.array([9, 9, 4]))
    assert batch.shape == (3, len(acts))
    for b in range(3):
        assert batch[b].tolist() == acts.valid_mask(i[b], n[b], [0, 1, 4][b], [9, 9, 4][b]).tolist()


@given(st.text(alphabet="ab", max_size=5), st.integers(0, 4), st.integers(0, 10**6))
def test_any_walk_through_valid_actions_ends_within_the_bound(x, max_output, seed):
    """Whatever a model picks among the valid actions, it ends within n + max_output + 1
    steps and the script applies cleanly."""
    acts = EditActions(("a", "b"))
    rng = np.random.default_rng(seed)
    i, out, script = 0, "", []
    for _ in range(len(x) + max_output + 1):
        a = int(rng.choice(np.flatnonzero(acts.valid_mask(i, len(x), len(out), max_output))))
        script.append(a)
        if a == END_ACTION:
            break
        written, i = acts.step(a, x, i)
        out += written
    assert script[-1] == END_ACTION
    assert acts.apply(script, x) == out and len(out) <= max_output


# --- the stochastic edit distance against the enumeration


@SLOW_ENOUGH
@given(tiny_pairs, st.integers(0, 2**32 - 1))
def test_forward_probability_is_the_sum_over_all_alignments(pair, seed):
    sed = random_sed(seed)
    x, y = pair
    brute = np.logaddexp.reduce([sum(edit_logp(sed, e) for e in c) for c in completions(x, y, 0, 0)])
    assert sed.log_probs([pair])[0] == pytest.approx(brute, rel=1e-9, abs=1e-9)


@SLOW_ENOUGH
@given(tiny_pairs, st.integers(0, 2**32 - 1))
def test_viterbi_costs_and_optimal_sets_match_the_enumeration_at_every_state(pair, seed):
    """At every state (i, j): the cost-to-go is the min over all completions, and the
    optimal set is the set of first actions of the min-cost completions."""
    sed = random_sed(seed)
    expert = expert_for(sed)
    x, y = pair
    V = sed.cost_to_go(x, y)
    assert V.shape == (len(x) + 1, len(y) + 1)
    for i in range(len(x) + 1):
        for j in range(len(y) + 1):
            best, expected = oracle_optimal(sed, expert.actions, x, y, i, j)
            assert V[i, j] == pytest.approx(best, rel=1e-9, abs=1e-9)
            assert set(expert.optimal_actions(x, y, i, j)) == expected
            assert set(expert.optimal_actions(x, y, i, y[:j])) == expected  # the written text says the same


@SLOW_ENOUGH
@given(tiny_pairs, st.integers(0, 2**32 - 1))
def test_the_expert_script_is_an_optimal_alignment_that_produces_the_output(pair, seed):
    sed = random_sed(seed)
    expert = expert_for(sed)
    x, y = pair
    path = expert.expert_actions(x, y)
    acts = expert.actions
    assert acts.apply(path.actions, x) == y
    assert path.actions[-1] == END_ACTION and len(path.actions) == len(path.pointers) == len(path.optimal)
    i, j, cost = 0, 0, 0.0
    for t, a in enumerate(path.actions):
        assert path.pointers[t] == i
        _, expected = oracle_optimal(sed, acts, x, y, i, j)
        assert set(path.optimal[t][path.optimal[t] >= 0].tolist()) == expected
        assert a == path.optimal[t][0] == expert.optimal_actions(x, y, i, j)[0]  # the preferred one
        kind = acts.kind(a)
        edit = {
            "copy": ("sub", x[i : i + 1], y[j : j + 1]),
            "substitute": ("sub", x[i : i + 1], y[j : j + 1]),
            "insert": ("ins", y[j : j + 1]),
            "delete": ("del", x[i : i + 1]),
        }.get(kind, ("end",))
        cost -= edit_logp(sed, edit)
        written, i = acts.step(a, x, i)
        j += len(written)
    assert cost == pytest.approx(sed.cost_to_go(x, y)[0, 0], rel=1e-9, abs=1e-9)  # a min-cost alignment
    assert (i, j) == (len(x), len(y))
    mask = path.optimal_mask(len(acts))
    assert mask.shape == (len(path.actions), len(acts)) and mask[np.arange(len(mask)), path.actions].all()


def test_tied_insert_and_delete_are_both_optimal_and_the_script_writes_first():
    """a -> d: substituting is dear, so DELETE+INSERT and INSERT+DELETE tie; both are
    optimal at the start, and the script prefers INSERT (write before skipping)."""
    S, T = 2, 2  # source ('a',) + unknown, target ('d',) + unknown
    p = np.full(S * T + S + T + 1, 0.2)
    p[0] = 1e-6  # substitute a by d (cell (0, 0))
    p /= p.sum()
    logp = np.log(p)
    sed = StochasticEditDistance(("a",), ("d",), logp[:4].reshape(2, 2), logp[4:6], logp[6:8], float(logp[8]))
    expert = expert_for(sed)
    acts = expert.actions
    path = expert.expert_actions("a", "d")
    assert set(path.optimal[0][path.optimal[0] >= 0].tolist()) == {acts.insert("d"), DELETE_ACTION}
    assert [acts.name(a) for a in path.actions] == ["INS(d)", "DELETE", "END"]


def test_copy_is_preferred_over_identity_substitution_and_unseen_characters_are_copied():
    sed = StochasticEditDistance.fit([("abc", "abc"), ("ab", "ab"), ("ca", "ca")], iterations=5)
    acts = EditActions(("a", "b", "c", "z"))
    expert = Expert(sed, acts)
    path = expert.expert_actions("azb", "azb")  # 'z' is in neither of the aligner's alphabets
    assert path.actions.tolist() == [COPY_ACTION, COPY_ACTION, COPY_ACTION, END_ACTION]
    assert all(acts.substitute(c) not in row for row, c in zip(path.optimal, "azb"))
    assert np.isfinite(sed.log_probs([("qzq", "z"), ("", "")])).all()
    # an unseen character's copy costs the mean copy of the characters on both sides
    mean_copy = np.mean([sed.log_sub[sed.source.index(c), sed.target.index(c)] for c in "abc"])
    assert sed.cost_to_go("z", "z")[0, 0] == pytest.approx(-mean_copy - sed.log_end)


@pytest.mark.parametrize("x, y", [("", ""), ("", "ab"), ("ab", ""), ("a", "a")])
def test_empty_strings(x, y):
    sed = random_sed(3)
    expert = expert_for(sed)
    path = expert.expert_actions(x, y)
    assert expert.actions.apply(path.actions, x) == y
    diagonal = sum(expert.actions.kind(a) in ("copy", "substitute") for a in path.actions)
    assert len(path.actions) == len(x) + len(y) + 1 - diagonal
    brute = np.logaddexp.reduce([sum(edit_logp(sed, e) for e in c) for c in completions(x, y, 0, 0)])
    assert sed.log_probs([(x, y)])[0] == pytest.approx(brute)


@settings(max_examples=20, deadline=None)
@given(st.lists(longer_pairs, min_size=1, max_size=30))
def test_the_batch_gives_what_each_pair_gives_alone(pairs):
    expert = expert_for(random_sed(len(pairs)))
    for path, (x, y) in zip(expert.expert_batch(pairs), pairs):
        alone = expert.expert_actions(x, y)
        for a, b in zip(path, alone):
            assert a.tolist() == b.tolist()
    for V, (x, y) in zip(expert.aligner.costs_to_go(pairs), pairs):
        assert np.allclose(V, expert.aligner.cost_to_go(x, y))


def test_expert_refuses_outputs_it_has_no_action_for():
    expert = Expert(random_sed(0), EditActions(("a",)))
    with pytest.raises(ValueError, match="pair 1.*'d'"):
        expert.expert_batch([("a", "a"), ("a", "ad")])


# --- roll-in


def test_rollin_after_a_wrong_character_aims_at_the_closest_target_prefix():
    """The published expert's example: nothing left to read, 7 b's written for abbbbbbb:
    the written text is closest to the whole target (one character missing), so END."""
    sed = StochasticEditDistance.fit([("ab", "ab"), ("bab", "bab"), ("b", "bb")], iterations=5)
    expert = Expert(sed, EditActions(("a", "b")))
    assert expert.optimal_actions("", "abbbbbbb", 0, "bbbbbbb") == (END_ACTION,)
    # a wrong first character: the expert continues as if it were the right one
    assert expert.optimal_actions("ab", "ab", 1, "x") == (COPY_ACTION,)
    # the output is full: nothing may be written, so skip the rest of the input, then end
    assert expert.optimal_actions("ab", "ab", 1, "a", max_output=1) == (DELETE_ACTION,)
    assert expert.optimal_actions("ab", "ab", 2, "a", max_output=1) == (END_ACTION,)


@SLOW_ENOUGH
@given(tiny_pairs, st.integers(0, 4), st.integers(0, 2**32 - 1))
def test_following_the_expert_from_any_reachable_state_produces_the_rest(pair, i, seed):
    x, y = pair
    i = min(i, len(x))
    expert = expert_for(random_sed(seed))
    table = expert.aligner.cost_to_go(x, y)
    for j in range(len(y) + 1):
        pos, out, script = i, y[:j], []
        while not script or script[-1] != END_ACTION:
            a = expert.optimal_actions(x, y, pos, out, table=table)[0]
            script.append(a)
            written, pos = expert.actions.step(a, x, pos)
            out += written
            assert len(script) <= len(x) + len(y) + 1
        assert out == y


def levenshtein(a: str, b: str) -> int:
    if not a or not b:
        return len(a) + len(b)
    return min(levenshtein(a[1:], b) + 1, levenshtein(a, b[1:]) + 1, levenshtein(a[1:], b[1:]) + (a[0] != b[0]))


@SLOW_ENOUGH
@given(tiny_pairs, st.integers(0, 4), st.text(alphabet="abdz", max_size=4), st.integers(0, 2**32 - 1))
@example(("", "abd"), 0, "ad", 0)  # "ad" is as close to "abd" (b skipped) as to "a" and "ab": END is optimal
def test_rollin_from_any_written_text_matches_the_enumeration(pair, i, written, seed):
    """Off the reference path: the target prefixes closest to the written text (Levenshtein),
    and over them, the first actions of the cheapest completions."""
    x, y = pair
    i = min(i, len(x))
    sed = random_sed(seed)
    expert = expert_for(sed)
    distances = [levenshtein(written, y[:j]) for j in range(len(y) + 1)]
    scored = [oracle_optimal(sed, expert.actions, x, y, i, j) for j, d in enumerate(distances) if d == min(distances)]
    best = min(cost for cost, _ in scored)
    expected = set().union(*(firsts for cost, firsts in scored if cost <= best + TIE_TOLERANCE))
    assert set(expert.optimal_actions(x, y, i, written)) == expected


# --- EM


@settings(max_examples=15, deadline=None)
@given(st.lists(tiny_pairs, min_size=1, max_size=8), st.sampled_from([0.0, 0.5]))
def test_em_never_decreases_its_objective_and_keeps_parameters_normalised(pairs, smoothing):
    """With no smoothing, the likelihood; with smoothing s (a Dirichlet prior), the
    likelihood plus s times the sum of all log-probabilities (MAP-EM)."""

    def objective(sed, ll):
        logs = np.concatenate([sed.log_sub.ravel(), sed.log_del, sed.log_ins, [sed.log_end]])
        return ll + smoothing * logs.sum()

    sed = StochasticEditDistance.initial(pairs)
    scores = []
    for _ in range(6):
        new, ll = sed.em_step(pairs, smoothing=smoothing)
        assert ll == pytest.approx(sed.log_likelihood(pairs))
        scores.append(objective(sed, ll))
        total = np.logaddexp.reduce(np.concatenate([new.log_sub.ravel(), new.log_del, new.log_ins, [new.log_end]]))
        assert total == pytest.approx(0.0, abs=1e-9)
        sed = new
    assert all(b >= a - 1e-7 * max(1.0, abs(a)) for a, b in zip(scores, scores[1:])), scores


@settings(max_examples=15, deadline=None)
@given(st.lists(tiny_pairs, min_size=1, max_size=4), st.sampled_from([0.0, 0.25]), st.integers(0, 2**32 - 1))
def test_em_step_is_the_normalised_expected_counts_of_the_enumeration(pairs, smoothing, seed):
    """The M-step re-estimates each edit from its expected count over all alignments,
    weighted by their posterior, plus the smoothing pseudo-count."""
    sed = random_sed(seed)
    counts: dict[tuple, float] = {}
    for x, y in pairs:
        alignments = completions(x, y, 0, 0)
        logps = np.array([sum(edit_logp(sed, e) for e in c) for c in alignments])
        for c, post in zip(alignments, np.exp(logps - np.logaddexp.reduce(logps))):
            for e in c:
                counts[e] = counts.get(e, 0.0) + post
    S, T = len(SOURCE) + 1, len(TARGET) + 1
    total = sum(counts.values()) + smoothing * (S * T + S + T + 1)
    new, _ = sed.em_step(pairs, smoothing=smoothing)
    every_edit = [("end",)] + [("del", a) for a in SOURCE] + [("ins", b) for b in TARGET]
    for e in every_edit + [("sub", a, b) for a in SOURCE for b in TARGET]:
        expected = (counts.get(e, 0.0) + smoothing) / total
        assert np.exp(edit_logp(new, e)) == pytest.approx(expected, rel=1e-7, abs=1e-12), e


def test_fit_learns_the_obvious_alignment_and_reports_progress():
    pairs = [("kat", "cat"), ("kot", "cot"), ("ka", "ca"), ("tak", "tac"), ("kit", "cit")] * 3
    seen = []
    sed = StochasticEditDistance.fit(pairs, iterations=8, progress=lambda it, ll: seen.append((it, ll)))
    assert [it for it, _ in seen] == list(range(len(seen))) and 1 <= len(seen) <= 8
    assert all(b >= a for (_, a), (_, b) in zip(seen, seen[1:]))
    expert = Expert(sed, EditActions.from_strings(y for _, y in pairs))
    script = [expert.actions.name(a) for a in expert.expert_actions("kita", "cita").actions]
    assert script == ["SUB(c)", "COPY", "COPY", "COPY", "END"]


def test_fit_stops_when_the_gain_is_tiny():
    pairs = [("ab", "ab")] * 4
    seen = []
    StochasticEditDistance.fit(pairs, iterations=50, tolerance=1e-3, progress=lambda it, ll: seen.append(ll))
    assert len(seen) < 50


# --- serialisation


def test_to_dict_round_trip_through_json_gives_the_same_expert():
    pairs = [("phone", "fon"), ("phlox", "flɒks"), ("box", "boks"), ("", "a"), ("ab", "")]
    sed = StochasticEditDistance.fit(pairs, iterations=4)
    back = StochasticEditDistance.from_dict(json.loads(json.dumps(sed.to_dict())))
    for name in ("log_sub", "log_del", "log_ins"):
        assert np.array_equal(getattr(sed, name), getattr(back, name))
    assert (back.source, back.target, back.log_end) == (sed.source, sed.target, sed.log_end)
    acts = EditActions.from_strings(y for _, y in pairs)
    for a, b in zip(Expert(sed, acts).expert_batch(pairs), Expert(back, acts).expert_batch(pairs)):
        assert all(u.tolist() == v.tolist() for u, v in zip(a, b))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(kind="other"), "not a stochastic edit distance"),
        (lambda d: d.pop("log_ins"), "incomplete"),
        (lambda d: d.update(log_del=d["log_del"][:-1]), "shapes"),
        (lambda d: d.update(log_end=0.0), "sum to"),
    ],
)
def test_from_dict_rejects_broken_parameters(change, message):
    d = random_sed(1).to_dict()
    change(d)
    with pytest.raises(ValueError, match=message):
        StochasticEditDistance.from_dict(d)
