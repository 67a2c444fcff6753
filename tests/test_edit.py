"""The edit-action transducer (`--arch edit`): the network, its mask, loss and metrics,
its training data, and training end to end."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from transducer.core.config import ModelConfig
from transducer.core.vocab import END_ID, PAD_ID, one_hot

COMBOS = list(itertools.product([False, True], [1, 2], ["dense", "time-distributed"], [True, False]))
COMBO_IDS = [f"{'bi' if b else 'uni'}-L{l}-{h}-{'ra' if r else 'rb'}" for b, l, h, r in COMBOS]
VIN, A = 7, 11  # input symbols; actions (canonical layout: 3 output characters)


def edit_cfg(bidirectional=True, layers=1, head="dense", reset_after=True, **kw) -> ModelConfig:
    return ModelConfig(
        arch="edit", max_len=6, hidden=8, layers=layers, bidirectional=bidirectional, head=head,
        reset_after=reset_after, input_vocab_size=VIN, output_vocab_size=A, **kw,
    )


def random_batch(rng, lengths, steps):
    """One-hot chars with </s> at each n, in-range pointers, random previous actions."""
    B, T = len(lengths), max(lengths) + 1
    ids = np.full((B, T), PAD_ID)
    for b, n in enumerate(lengths):
        ids[b, :n] = rng.integers(4, VIN, n)
        ids[b, n] = END_ID
    pointers = np.minimum(rng.integers(0, T, (B, steps)), np.array(lengths)[:, None]).astype(np.int32)
    prev = one_hot(rng.integers(0, A, (B, steps)), A)
    return one_hot(ids, VIN), pointers, prev


@pytest.mark.parametrize("bidirectional,layers,head,reset_after", COMBOS, ids=COMBO_IDS)
def test_build_shapes_and_mask(bidirectional, layers, head, reset_after):
    """Every combination builds with the named layers and shapes of the spec, and an
    action invalid where the pointer stands gets probability exactly 0 (others above 0)."""
    from transducer.networks.build import build_model
    from transducer.networks.edit import ActionKinds, decoder_steps, input_len

    cfg = edit_cfg(bidirectional, layers, head, reset_after)
    fixed = build_model(cfg)
    W = 16 if bidirectional else 8
    assert fixed.get_layer("pointed").output.shape == (None, decoder_steps(6), W)
    assert fixed.get_layer("decoder_input").output.shape == (None, decoder_steps(6), W + A)
    assert fixed.inputs[0].shape == (None, input_len(6), VIN)
    assert fixed.output.shape == (None, decoder_steps(6), A)
    assert fixed.get_layer("time_distributed" if head == "time-distributed" else "dense")
    for i in range(1, layers + 1):
        fixed.get_layer(f"encoder_{'bidirectional' if bidirectional else 'gru'}_{i}")
        fixed.get_layer(f"decoder_gru_{i}")

    model = build_model(cfg, variable_length=True)
    rng = np.random.default_rng(0)
    lengths = [2, 4, 0]
    x, pointers, prev = random_batch(rng, lengths, steps=7)
    probs = model.predict_on_batch([x, pointers, prev])  # (B, S, A)
    assert probs.shape == (3, 7, A)
    valid = ActionKinds.canonical(A).valid(pointers, np.array(lengths)[:, None])
    assert (probs[~valid] == 0).all()
    assert (probs[valid] > 0).all()
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_canonical_kinds():
    from transducer.networks.edit import ActionKinds

    k = ActionKinds.canonical(A)  # pad, start, END, COPY, DELETE, SUB x3, INS x3
    assert k.never == (True, True) + (False,) * 9
    assert k.ends == (False, False, True) + (False,) * 8
    assert k.consumes == (False,) * 3 + (True,) * 5 + (False,) * 3
    # before the end: COPY, DELETE, SUB, INS; at the end: END and INS only
    assert k.valid(np.array(0), np.array(2)).tolist() == [0, 0, 0] + [1] * 8
    assert k.valid(np.array(2), np.array(2)).tolist() == [0, 0, 1] + [0] * 5 + [1] * 3


def test_padding_does_not_change_outputs():
    """A row's probabilities do not depend on how far its input and its steps are padded."""
    from transducer.networks.build import build_model

    model = build_model(edit_cfg(), variable_length=True)
    rng = np.random.default_rng(1)
    x, pointers, prev = random_batch(rng, [3, 5], steps=6)
    both = model.predict_on_batch([x, pointers, prev])
    alone = model.predict_on_batch([x[:1, :4], pointers[:1, :4], prev[:1, :4]])
    np.testing.assert_allclose(alone[0], both[0, :4], atol=1e-6)


def test_loss_and_metrics_against_numpy():
    """loss = mean over real steps of -log sum_{optimal} p; char_acc and exact_match over
    the steps whose argmax is optimal; all-zero target rows (padding) are not counted."""
    from transducer.networks.edit import char_acc, edit_loss, exact_match

    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(5), size=(2, 4)).astype(np.float32)  # (B, S, A)
    y = np.zeros_like(p)
    best = p.argmax(-1)
    y[0, 0, best[0, 0]] = 1  # hit
    y[0, 1, [best[0, 1], (best[0, 1] + 1) % 5]] = 1  # hit, a set of two
    y[0, 2, (best[0, 2] + 1) % 5] = 1  # miss
    y[1, 0, best[1, 0]] = 1  # hit; steps 1.. of row 1 are padding
    want = [
        -np.mean([np.log(p[0, 0, best[0, 0]]), np.log(p[0, 1][y[0, 1] > 0].sum()), np.log(p[0, 2][y[0, 2] > 0].sum())]),
        -np.log(p[1, 0, best[1, 0]]),
    ]
    np.testing.assert_allclose(np.asarray(edit_loss()(y, p)), want, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(char_acc(y, p)), [2 / 3, 1.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(exact_match(y, p)), [0.0, 1.0])


def test_label_smoothing_spreads_over_valid_actions_only():
    from transducer.networks.edit import edit_loss

    p = np.array([[[0.0, 0.5, 0.25, 0.25]]], np.float32)  # action 0 masked
    y = np.array([[[0, 1, 0, 0]]], np.float32)
    e = 0.1
    want = (1 - e) * -np.log(0.5) + e * -np.mean(np.log([0.5, 0.25, 0.25]))
    np.testing.assert_allclose(np.asarray(edit_loss(e)(y, p)), [want], rtol=1e-5)


def test_multi_hot():
    from transducer.networks.edit import multi_hot

    got = multi_hot(np.array([[[2, 0, -1], [-1, -1, -1]]]), 4)
    assert got.tolist() == [[[1, 0, 1, 0], [0, 0, 0, 0]]]


def test_custom_layers_save_and_load(tmp_path):
    """model.keras reloads in safe mode with the pointer gather and the mask (config kept)."""
    from transducer.networks.build import build_model
    from transducer.networks.edit import ActionKinds, model_kinds
    from transducer.networks.tf import keras

    kinds = ActionKinds.canonical(A)
    kinds = ActionKinds(kinds.consumes, kinds.ends, (True,) * 3 + kinds.never[3:])  # END never: not canonical
    model = build_model(edit_cfg(), True, kinds)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    assert model_kinds(loaded) == kinds
    x, pointers, prev = random_batch(np.random.default_rng(3), [4, 1], steps=5)
    np.testing.assert_array_equal(loaded.predict_on_batch([x, pointers, prev]), model.predict_on_batch([x, pointers, prev]))


@pytest.mark.parametrize("bidirectional,layers", [(True, 1), (False, 2)])
def test_inference_models_match_the_training_model(bidirectional, layers):
    """Running the step model one action at a time gives the teacher-forced probabilities."""
    from transducer.networks.build import build_model
    from transducer.networks.edit import inference_models

    cfg = edit_cfg(bidirectional, layers)
    model = build_model(cfg, True)
    lengths = np.array([3, 5])
    x, pointers, prev = random_batch(np.random.default_rng(4), list(lengths), steps=6)
    full = model.predict_on_batch([x, pointers, prev])
    encoder, step = inference_models(model, cfg)
    enc = encoder.predict_on_batch(x)
    states = [np.zeros((2, 8), np.float32)] * layers
    for t in range(6):
        out = step.predict_on_batch([enc, pointers[:, t : t + 1], prev[:, t : t + 1], lengths.astype(np.int32), *states])
        states = out[1:]
        np.testing.assert_allclose(out[0], full[:, t], atol=1e-5)
