"""Roll-in for edit models (training/rollin.py): the paths an epoch trains on are walked by
the model itself, and at every state they reach the target is the expert's answer there,
checked against the expert asked afresh at the replayed state."""

import numpy as np
import pytest

from conftest import assert_clean_error, invoke, random_model_dir
from transducer.core.artifacts import read_info
from transducer.core.edits import END_ACTION, START_ACTION, Expert, StochasticEditDistance
from transducer.inference.numpy_engine import NumpyEngine
from transducer.networks.edit import edit_arrays
from transducer.training.rollin import RollIn, expert_probability

PAIRS = [("abc", "abd"), ("bad", "bbad"), ("ca", "aad"), ("geb", "ea"), ("a", ""), ("dd", "ade")]
CAP = 8  # the model's max_len in these tests: no path writes more


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    model_dir, _ = random_model_dir(tmp_path_factory.mktemp("rollin"), arch="edit", out_chars="abde",
                                    end_bias=-1.0, bidirectional=True)
    info = read_info(model_dir)
    expert = Expert(StochasticEditDistance.fit(PAIRS * 3), info.output_vocab)
    base = edit_arrays(PAIRS, info.input_vocab, info.output_vocab, expert, info.model.max_len)
    return NumpyEngine(info), RollIn(PAIRS, base, expert, CAP), expert, info


def replay(roll, arrays, r):
    """Walk row r's recorded path again: the taken action at step t is prev[t + 1] (END last)."""
    x, y = roll.pairs[r]
    pointer, written, steps = 0, "", int(arrays.steps[r])
    for t in range(steps):
        action = int(arrays.prev[r, t + 1]) if t + 1 < steps else END_ACTION
        yield t, x, y, pointer, written, action
        if action != END_ACTION:
            char, pointer = roll.actions.step(action, x, pointer)
            written += char


def test_the_schedule_is_the_published_inverse_sigmoid():
    assert expert_probability(12, 0) == 1.0  # an untrained model shows nothing
    assert expert_probability(12, 1) == pytest.approx(12 / (12 + np.exp(1 / 12)))
    assert expert_probability(12, 30) == pytest.approx(12 / (12 + np.exp(2.5)))
    assert expert_probability(0, 30) == 1.0  # off
    assert all(expert_probability(3, e) > expert_probability(3, e + 1) for e in range(1, 20))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_model_paths_are_labelled_with_the_experts_answer_at_every_state_they_reach(setup, seed):
    engine, roll, expert, info = setup
    arrays = roll.arrays(engine, p_expert=0.0, seed=seed)
    assert arrays.chars is roll.base.chars  # the inputs are the pairs' own
    strayed = 0  # states whose written text has left the reference
    for r in range(len(PAIRS)):
        steps = int(arrays.steps[r])
        assert arrays.prev[r, 0] == START_ACTION and steps <= len(PAIRS[r][0]) + CAP + 1
        enc = engine.edit_encode(arrays.chars[r : r + 1, : int(arrays.in_lengths[r]) + 1])
        states = engine.edit_initial_states(1)
        prev = START_ACTION
        for t, x, y, pointer, written, action in replay(roll, arrays, r):
            assert arrays.pointers[r, t] == pointer
            strayed += not y.startswith(written)
            wanted = expert.optimal_actions(x, y, pointer, written, max_output=CAP)
            got = [a for a in arrays.optimal[r, t] if a >= 0]
            assert got == list(wanted[: len(got)]) and got[0] == wanted[0]
            probs, states = engine.edit_step(enc, np.array([0]), np.array([pointer]), np.array([prev]),
                                             arrays.in_lengths[r : r + 1], states)
            # Not following the expert, the path took an action the model gives mass to.
            assert probs[0, action] > 0 or (len(written) >= CAP and action == wanted[0])
            prev = action
        assert pointer == len(x)  # ended with the pointer past the input
    assert strayed > 0  # the random model does leave the reference: those states were checked too


def test_always_following_the_expert_walks_the_experts_own_paths(setup):
    engine, roll, _, _ = setup
    assert roll.arrays(engine, p_expert=1.0, seed=0) is roll.base
    walked = roll.arrays(engine, p_expert=1.0 - 1e-12, seed=0)
    base = roll.base
    np.testing.assert_array_equal(walked.steps, base.steps)
    for r in range(len(PAIRS)):
        s = int(base.steps[r])
        np.testing.assert_array_equal(walked.pointers[r, :s], base.pointers[r, :s])
        np.testing.assert_array_equal(walked.prev[r, :s], base.prev[r, :s])
        np.testing.assert_array_equal(walked.optimal[r, :s, 0], base.optimal[r, :s, 0])


def test_the_walk_is_seeded(setup):
    engine, roll, _, _ = setup
    a, b = roll.arrays(engine, 0.5, seed=7), roll.arrays(engine, 0.5, seed=7)
    np.testing.assert_array_equal(a.prev, b.prev)
    np.testing.assert_array_equal(a.optimal, b.optimal)


def test_rollin_is_refused_for_other_architectures_before_training(tmp_path, pairs_file):
    result = invoke("train", str(pairs_file), "-m", str(tmp_path / "m"), "--rollin", "12")
    assert_clean_error(result, "--rollin applies to --arch edit only", code=2)
    result = invoke("train", str(pairs_file), "-m", str(tmp_path / "m"), "--arch", "edit", "--rollin", "-1")
    assert_clean_error(result, "--rollin must be 0")
    result = invoke("train", str(pairs_file), "-m", str(tmp_path / "m"), "--arch", "edit", "--rollin", "12",
                    "--distribute", "mirrored")
    assert_clean_error(result, "--rollin cannot be combined with --distribute")
