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
    # the same as the action vocabulary's own kinds and mask (core/edits.py), uncapped
    from transducer.core.edits import EditActions
    from transducer.networks.edit import ActionKinds

    actions = EditActions(("a", "b", "c"))
    assert ActionKinds.of(actions) == k
    i, n = np.meshgrid(np.arange(5), np.arange(5))
    ok = i <= n
    np.testing.assert_array_equal(k.valid(i[ok], n[ok]), actions.valid_mask(i[ok], n[ok]))


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


# --- the expert's answers as training data ------------------------------------------------

PAIRS = [("abc", "abc"), ("cab", "kab"), ("a", ""), ("bb", "bxb"), ("", "xy"), ("cabba", "kaba")]


def fitted_expert(pairs):
    from transducer.core.edits import EditActions, Expert, StochasticEditDistance

    actions = EditActions.from_strings(y for _, y in pairs)
    return actions, Expert(StochasticEditDistance.fit(pairs), actions)


def test_edit_arrays_hold_the_experts_paths():
    """Each row: </s> at n in the input, the expert's pointers, the previous action (start
    first), its optimal sets; replaying the previous actions shifted back gives the output."""
    from transducer.core.edits import END_ACTION, START_ACTION
    from transducer.core.vocab import Vocab
    from transducer.networks.edit import edit_arrays, multi_hot

    actions, expert = fitted_expert(PAIRS)
    vocab = Vocab.from_strings(x for x, _ in PAIRS)
    arrays = edit_arrays(PAIRS, vocab, actions, expert, max_len=6)
    assert arrays.chars.shape == (6, 7)
    for i, (x, y) in enumerate(PAIRS):
        n, steps = len(x), arrays.steps[i]
        assert arrays.in_lengths[i] == n and arrays.chars[i, n] == END_ID and (arrays.chars[i, n + 1 :] == PAD_ID).all()
        path = expert.expert_actions(x, y)
        assert steps == len(path.actions) and path.actions[-1] == END_ACTION
        taken = [*arrays.prev[i, 1:steps], END_ACTION]
        assert arrays.prev[i, 0] == START_ACTION and actions.apply(taken, x) == y
        assert arrays.pointers[i, :steps].tolist() == path.pointers.tolist()
        targets = multi_hot(arrays.optimal[i, :steps], len(actions))
        assert all(targets[t, a] == 1 for t, a in enumerate(taken))  # the path's action is optimal
        assert (arrays.optimal[i, steps:] == -1).all()


def test_batches_are_bucketed_cropped_and_seeded():
    """Every row once per epoch; each batch cropped to its own longest row; windows sorted
    by length; the same seed gives the same order, another seed another."""
    from transducer.core.vocab import Vocab
    from transducer.networks.edit import edit_arrays
    from transducer.training.edit_data import batch_order

    pairs = PAIRS * 30
    actions, expert = fitted_expert(pairs)
    arrays = edit_arrays(pairs, Vocab.from_strings(x for x, _ in pairs), actions, expert, max_len=6)
    order = batch_order(arrays, 4, 6, shuffle_seed=7)
    assert sorted(np.concatenate(order).tolist()) == list(range(len(pairs)))
    assert [b.tolist() for b in order] == [b.tolist() for b in batch_order(arrays, 4, 6, shuffle_seed=7)]
    assert [b.tolist() for b in order] != [b.tolist() for b in batch_order(arrays, 4, 6, shuffle_seed=8)]
    in_order = batch_order(arrays, 8, 6, shuffle_seed=None)  # validation: not shuffled, sorted per window
    assert np.all(np.diff(arrays.steps[np.concatenate(in_order)]) >= 0)  # one window of 8 x 32 rows
    for rows in order:
        (chars, pointers, prev), optimal = arrays.batch(rows)
        assert chars.shape[1] == arrays.in_lengths[rows].max() + 1
        assert pointers.shape[1] == prev.shape[1] == optimal.shape[1] == arrays.steps[rows].max()


# --- training end to end --------------------------------------------------------------------

TASK = [("cab", "kab"), ("abc", "abk"), ("ba", "ba"), ("cc", "kk"), ("acb", "akb"), ("bca", "bka"),
        ("a", "a"), ("cabc", "kabk"), ("bb", "bb"), ("ca", "ka"), ("abca", "abka"), ("bac", "bak")]
FAST_COMBOS = {(False, 1, "dense", True), (True, 2, "time-distributed", False)}


def tiny_edit_model(tmp_path, bidirectional=True, layers=1, head="dense", reset_after=True, epochs=1, **train_kw):
    from transducer.core.config import TrainConfig
    from transducer.training.loop import train

    from conftest import write_pairs

    pairs = write_pairs(tmp_path / "pairs.tsv", TASK)
    val = write_pairs(tmp_path / "val.tsv", TASK[:4] + [("bcab", "bkab")])
    cfg = ModelConfig(arch="edit", max_len=8, hidden=8, layers=layers, bidirectional=bidirectional, head=head,
                      reset_after=reset_after, normalize="none")
    tcfg = TrainConfig(epochs=epochs, batch_size=4, seed=1, patience=100, **train_kw)
    result = train(str(pairs), tmp_path / "m", cfg, tcfg, val_path=str(val))
    return tmp_path / "m", result, val


@pytest.mark.parametrize(
    "bidirectional,layers,head,reset_after",
    [pytest.param(*c, marks=() if c in FAST_COMBOS else pytest.mark.slow) for c in COMBOS], ids=COMBO_IDS,
)
def test_train_save_load_round_trip(tmp_path, bidirectional, layers, head, reset_after):
    """A trained edit model's directory: model.keras reloads (custom layers included, safe
    mode) with the weights weights.npz holds, and those decode the validation pairs exactly
    as they did at the end of training."""
    import json

    from transducer.core import artifacts
    from transducer.core.data import read_pairs
    from transducer.networks.export import weight_arrays
    from transducer.inference.evaluate import decoded_metrics, evaluate_pairs
    from transducer.inference.predict import Predictor
    from transducer.networks.saved import load_keras_model

    from conftest import weights_of

    model_dir, result, val = tiny_edit_model(tmp_path, bidirectional, layers, head, reset_after)
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "aligner.json", "config.json", "metrics.json", "model.keras", "weights.npz",
    ]
    info = artifacts.read_info(model_dir)
    assert info.model.arch == "edit" and info.model.output_vocab_size == len(info.output_vocab) == 5 + 2 * 3
    assert json.loads((model_dir / "config.json").read_text())["actions"] == ["a", "b", "k"]
    artifacts.read_aligner(model_dir)  # a valid fitted aligner
    loaded = load_keras_model(info)
    saved = weights_of(model_dir)
    exported = weight_arrays(loaded)
    assert exported.keys() == saved.keys() and not any("pointed" in k or "action_mask" in k for k in saved)
    for k in saved:
        np.testing.assert_array_equal(exported[k], saved[k], err_msg=k)
    # The published weights decode the validation pairs as train measured them (model.keras
    # holds the same arrays, above; the Keras engine's decoding is test_engines.py's).
    again = decoded_metrics(evaluate_pairs(Predictor(model_dir, cache=0), read_pairs(str(val), 8).pairs))
    assert again == {k: result.final[k] for k in again}


@pytest.mark.slow
@pytest.mark.graph  # 30 epochs: the traced graph is faster than eager steps
def test_it_learns_an_edit_task_and_copies_unseen_characters(tmp_path):
    """A few epochs learn c -> k, everything else copied; a character never seen in
    training is copied too (COPY writes the input's own character)."""
    from transducer.inference.predict import Predictor

    model_dir, result, _ = tiny_edit_model(tmp_path, epochs=30, learning_rate=0.02)
    assert result.final["decoded_exact_match"] == 1.0
    predictor = Predictor(model_dir, engine="keras")
    assert [out for out, _ in predictor.predict_batch(["acca", "bab", "aq"])] == ["akka", "bab", "aq"]


@pytest.mark.slow
def test_interrupted_then_resumed_equals_uninterrupted_and_keeps_the_aligner(tmp_path):
    """SIGTERM after epoch 1, then --resume: the weights of an uninterrupted run, and the
    aligner is the one stored in DIR.partial/ before the interruption, not refitted. With
    roll-in (K = 1: epoch 2 follows the expert at only 27% of its steps), so the resumed
    run's walk, on the restored weights, is the uninterrupted run's too."""
    import json
    import signal

    from transducer.core import artifacts
    from transducer.core.config import TrainConfig
    from transducer.core.edits import StochasticEditDistance
    from transducer.training.loop import train

    from conftest import SignalAfterEpoch, weights_of, write_pairs

    pairs = str(write_pairs(tmp_path / "p.tsv", TASK * 3))
    mcfg = ModelConfig(arch="edit", max_len=8, hidden=6, normalize="none")
    tcfg = TrainConfig(epochs=2, batch_size=8, patience=100, seed=3, rollin=1.0)
    train(pairs, tmp_path / "whole", mcfg, tcfg)
    stopped = train(pairs, tmp_path / "m", mcfg, tcfg, reporter=SignalAfterEpoch(1, signal.SIGTERM))
    assert stopped.interrupted and stopped.epochs_run == 1
    stored = artifacts.staging_dir(tmp_path / "m") / artifacts.ALIGNER
    assert json.loads(stored.read_text()) == json.loads((tmp_path / "whole" / artifacts.ALIGNER).read_text())
    done = train(pairs, tmp_path / "m", mcfg, tcfg, resume=True)
    assert done.resumed_from == 1 and done.epochs_run == 2
    a, b = weights_of(tmp_path / "whole"), weights_of(tmp_path / "m")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)

    # Proof of reuse: an interrupted run whose stored aligner differs publishes that one.
    train(pairs, tmp_path / "m", mcfg, tcfg, reporter=SignalAfterEpoch(1, signal.SIGTERM), force=True)
    other = StochasticEditDistance.fit(TASK, iterations=1).to_dict()
    artifacts.write_json(stored, other)
    train(pairs, tmp_path / "m", mcfg, tcfg, resume=True)
    assert json.loads((tmp_path / "m" / artifacts.ALIGNER).read_text()) == other


@pytest.mark.slow
def test_init_from_reuses_the_source_aligner_and_actions(tmp_path):
    import json

    from transducer.core import artifacts
    from transducer.core.config import TrainConfig
    from transducer.core.config import TransducerError
    from transducer.training.loop import train

    from conftest import weights_of, write_pairs

    source, _, _ = tiny_edit_model(tmp_path)
    more = write_pairs(tmp_path / "more.tsv", [("ab", "ab"), ("ba", "ba"), ("aab", "aab"), ("bba", "bba")])  # no k
    cfg = ModelConfig(arch="edit", max_len=8, hidden=8, bidirectional=True, normalize="none")
    tiny_lr = TrainConfig(epochs=1, batch_size=4, learning_rate=1e-12, init_from=str(source), val_split=0.0)
    train(str(more), tmp_path / "continued", cfg, tiny_lr)
    continued = tmp_path / "continued"
    assert (continued / artifacts.ALIGNER).read_text() == (source / artifacts.ALIGNER).read_text()
    assert json.loads((continued / "config.json").read_text())["actions"] == ["a", "b", "k"]
    before, after = weights_of(source), weights_of(continued)
    for k in before:  # one step of 1e-12 leaves the source's weights
        np.testing.assert_allclose(after[k], before[k], atol=1e-8, err_msg=k)
    unknown = write_pairs(tmp_path / "new.tsv", [("ab", "az")])
    with pytest.raises(TransducerError, match="output character"):
        train(str(unknown), tmp_path / "bad", cfg, tiny_lr)


@pytest.mark.slow
def test_ensemble_fits_the_aligner_once(tmp_path, monkeypatch):
    """--ensemble 2: EM runs once; both members carry the same aligner and actions; the
    ensemble decodes (Keras engine) and summarize lists the actions."""
    from transducer.core import artifacts
    from transducer.core.edits import StochasticEditDistance

    from conftest import invoke, write_pairs

    fits = []
    real_fit = StochasticEditDistance.fit.__func__
    monkeypatch.setattr(StochasticEditDistance, "fit", classmethod(lambda cls, *a, **k: fits.append(1) or real_fit(cls, *a, **k)))
    pairs = write_pairs(tmp_path / "pairs.tsv", TASK * 2)
    out = tmp_path / "ens"
    r = invoke("train", pairs, "-m", out, "--arch", "edit", "--hidden", 6, "--max-len", 8, "--epochs", 1,
               "--ensemble", 2, "--batch-size", 8)
    assert r.exit_code == 0, r.stderr
    assert len(fits) == 1
    member2 = artifacts.member_dir(out, 2)
    assert (out / artifacts.ALIGNER).read_text() == (member2 / artifacts.ALIGNER).read_text()
    r = invoke("predict", out, "--engine", "keras", input="cab\nbq\n")
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2
    r = invoke("summarize", out)
    assert r.exit_code == 0, r.stderr
    assert "SUBSTITUTE x 3" in " ".join(r.stdout.split())


@pytest.mark.parametrize("arch", ["seq2seq", "edit"])
def test_time_distributed_head_trains_on_batches_of_any_length(arch):
    """Keras 3.15's TimeDistributed maps over the batch axis when the time axis is None
    (blocks.TimeDistributed fixes that): batches whose step count differs from their
    row count, one after the other, train and give one output per step."""
    from transducer.networks.build import build_model, compile_model

    cfg = ModelConfig(arch=arch, max_len=6, hidden=4, head="time-distributed", input_vocab_size=VIN, output_vocab_size=A)
    model = build_model(cfg, variable_length=True)
    compile_model(model, 1e-3)
    rng = np.random.default_rng(5)
    for steps, length in [(4, 5), (6, 3), (2, 2)]:
        x, pointers, prev = random_batch(rng, [length - 1] * 3, steps)
        if arch == "edit":
            inputs, y = [x, pointers, prev], np.eye(A, dtype=np.float32)[np.full((3, steps), 3)]
        else:
            inputs, y = [x, prev], np.full((3, steps), 5)
        model.train_on_batch(inputs, y)
        assert model.predict_on_batch(inputs).shape == (3, steps, A)


def test_edit_options_in_the_cli(tmp_path):
    """--attention does not apply to --arch edit (one-line error, before training);
    summarize builds the network without a model directory."""
    from conftest import assert_clean_error, invoke, write_pairs

    pairs = write_pairs(tmp_path / "p.tsv", TASK)
    r = invoke("train", pairs, "-m", tmp_path / "m", "--arch", "edit", "--attention", "bahdanau")
    assert_clean_error(r, "--attention bahdanau does not apply to --arch edit")
    assert not (tmp_path / "m").exists()
    r = invoke("summarize", "--arch", "edit", "--input-size", 9, "--output-size", 11, "--max-len", 5, "--hidden", 4)
    assert r.exit_code == 0, r.stderr
    text = " ".join(r.stdout.split())
    for row in ("pointed (PointerGather)", "action_mask (ActionMask)", "decoder_gru_1 (GRU)", "(None, 11, 11)"):
        assert row in text, text


def test_edit_recipe_defaults():
    """The seq2seq recipe with batches of 16 (64 for the other architectures) unless
    --batch-size is given, NFD, and a bidirectional encoder unless --no-bidirectional is
    given; --init-from keeps the source's."""
    from transducer.training.recipe import SEQ2SEQ_DROPOUT, SEQ2SEQ_TRAIN, resolve

    arch = {"arch": "edit", "max_len": 8, "hidden": 4, "layers": 1, "bidirectional": False, "reset_after": True,
            "head": "dense", "attention": "luong", "normalize": None}
    model, train = resolve(arch, None, {"batch_size": None})
    assert model.bidirectional and model.normalize == "nfd" and model.dropout == SEQ2SEQ_DROPOUT
    assert model.attention == "none"
    assert {k: getattr(train, k) for k in SEQ2SEQ_TRAIN} == SEQ2SEQ_TRAIN
    assert train.batch_size == 16
    assert resolve(arch, None, {"batch_size": 64})[1].batch_size == 64
    assert resolve({**arch, "arch": "seq2seq"}, None, {"batch_size": None})[1].batch_size == 64
    model, _ = resolve(arch, None, {}, given=frozenset({"bidirectional"}))
    assert not model.bidirectional
