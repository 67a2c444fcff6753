"""`train --teacher DIR [--extra-inputs FILE]`: the student fits the teacher's per-step
distributions (token level) or learns its outputs (--teacher-mode sequence)."""

import hashlib
import json
import math
import random

import numpy as np
import pytest

import transducer
from transducer.core.config import ModelConfig, TrainConfig, TransducerError
from transducer.core.vocab import END_ID
from transducer.training.distill import TEACHER_BEAM, distilled_data

from conftest import (SignalAfterEpoch, assert_clean_error, invoke, model_or_ensemble, random_model_dir,
                      write_pairs)


def read_rows(path) -> list[tuple[str, str]]:
    return [tuple(line.split("\t")) for line in open(path, encoding="utf-8").read().splitlines()]


def make_ensemble(root, seeds=(0, 1), peak=None, **kw):
    """A seq2seq ensemble of random models (input alphabet abcdeg, outputs `out_chars`).
    peak: (symbol, logit) added to every member's output bias for that symbol."""
    teacher, _ = random_model_dir(root, name="teacher", seed=seeds[0], **kw)
    peaked(teacher, peak)
    for k, seed in enumerate(seeds[1:], 2):
        member, _ = random_model_dir(teacher / "members", name=str(k), seed=seed, **kw)
        peaked(member, peak)
    config = json.loads((teacher / "config.json").read_text())
    config["ensemble"] = {"members": len(seeds), "seeds": list(seeds)}
    (teacher / "config.json").write_text(json.dumps(config))
    return teacher


def peaked(model_dir, peak) -> None:
    """Rewrite the model in `model_dir` with `peak` = (symbol, logit) added to its output bias."""
    if peak is None:
        return
    from transducer.core import artifacts
    from transducer.networks.saved import load_keras_model
    from transducer.training.loop import save_model_dir

    info = artifacts.read_info(model_dir)
    model = load_keras_model(info)
    head = model.get_layer("dense")
    kernel, bias = head.get_weights()
    bias[info.output_vocab.symbols.index(peak[0])] += peak[1]
    head.set_weights([kernel, bias])
    save_model_dir(model, json.loads((model_dir / "config.json").read_text()), {"final": {}}, model_dir)


@pytest.fixture
def ensemble_teacher(tmp_path):
    """A two-member seq2seq ensemble of random models (input alphabet abcdeg)."""
    return make_ensemble(tmp_path)


def teacher_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Pairs in the random teachers' alphabets: input abcdeg, output abdeg (reversed, c -> a)."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdeg") for _ in range(rng.randint(1, 6))) for _ in range(n)]
    return [(w, w.replace("c", "a")[::-1]) for w in words]


SMALL = dict(arch="seq2seq", hidden=6, max_len=12, normalize="none", batch_size=16, seed=1)


# --- the loss ----------------------------------------------------------------------------


def test_token_loss_is_the_formula_on_hand_computed_numbers():
    from transducer.networks.build import sequence_loss
    from transducer.training.distill import token_loss

    # One sequence, V = 5 (ids 0-3 special, </s> = 3, 4 a character): target "x</s>" then padding.
    assert END_ID == 3
    y = np.array([[4, END_ID, END_ID]])
    p = np.array([[[.1, .1, .1, .1, .6], [.05, .05, .1, .7, .1], [.2, .2, .2, .2, .2]]], np.float32)
    q = np.array([[[0, 0, 0, .5, .5], [0, 0, 0, 1, 0], [1, 0, 0, 0, 0]]], np.float32)
    # Counted positions: "x" and the first </s>; the third (padding) counts for neither term.
    nll = (-math.log(.6) - math.log(.7)) / 2
    ce = (-(.5 * math.log(.1) + .5 * math.log(.6)) - math.log(.7)) / 2
    for alpha in (0.0, 0.3, 1.0):
        got = np.asarray(token_loss(alpha)(y, p, q))
        np.testing.assert_allclose(got, [alpha * ce + (1 - alpha) * nll], rtol=1e-5)
    # alpha 0 is the ordinary training loss, label smoothing included.
    np.testing.assert_allclose(np.asarray(token_loss(0.0, True, 0.1)(y, p, q)),
                               np.asarray(sequence_loss(True, 0.1)(y, p)), rtol=1e-6)


def test_a_temperature_softens_both_distributions_and_scales_the_fitted_term_by_its_square():
    from transducer.training.distill import token_loss

    y = np.array([[4, END_ID, END_ID]])  # "x</s>" then padding, as above
    p = np.array([[[.1, .1, .1, .1, .6], [.05, .05, .1, .7, .1], [.2, .2, .2, .2, .2]]], np.float32)
    rng = np.random.default_rng(1)
    q = rng.dirichlet(np.ones(5), size=(1, 3)).astype(np.float32)  # an already softened teacher (B, T, V)
    nll = (-math.log(.6) - math.log(.7)) / 2
    for t in (0.5, 2.0, 4.0):
        soft = np.exp(np.log(p) / t) / np.exp(np.log(p) / t).sum(-1, keepdims=True)  # the student softened
        ce = -(q[0, :2] * np.log(soft[0, :2])).sum(-1).mean()  # the two counted positions
        for alpha in (0.0, 0.6, 1.0):
            got = np.asarray(token_loss(alpha, temperature=t)(y, p, q))
            np.testing.assert_allclose(got, [alpha * t * t * ce + (1 - alpha) * nll], rtol=1e-5)
    # T = 1 is the plain term.
    np.testing.assert_allclose(np.asarray(token_loss(0.6, temperature=1.0)(y, p, q)),
                               np.asarray(token_loss(0.6)(y, p, q)), rtol=1e-6)


def test_teacher_distribution_is_the_ensembles_combination():
    from transducer.inference.ensemble import combine
    from transducer.training.distill import ensemble_probs

    rng = np.random.default_rng(0)
    probs = [rng.dirichlet(np.full(7, 0.3), size=(2, 4)).astype(np.float32) for _ in range(3)]  # each (B, T, V)
    members = [lambda x, training, p=p: p for p in probs]
    np.testing.assert_allclose(np.asarray(ensemble_probs(members, None)), combine(probs), rtol=1e-4, atol=1e-6)
    # One member is its own distribution.
    np.testing.assert_allclose(np.asarray(ensemble_probs(members[:1], None)), probs[0], rtol=1e-4, atol=1e-6)
    # Softened by T: softmax(mean log p / T), the same order of symbols and flatter.
    mean_log = np.mean([np.log(p) for p in probs], axis=0)
    soft = np.exp(mean_log / 3.0) / np.exp(mean_log / 3.0).sum(-1, keepdims=True)
    got = np.asarray(ensemble_probs(members, None, temperature=3.0))
    np.testing.assert_allclose(got, soft, rtol=1e-4, atol=1e-6)
    assert (got.max(-1) <= combine(probs).max(-1) + 1e-6).all()


def distiller_for(tmp_path, alpha: float, teacher_fn=None):
    """(student, Distiller, one batch) on a random two-member teacher."""
    from transducer.networks.build import build_model, compile_model
    from transducer.training.distill import token_teacher

    teacher = make_ensemble(tmp_path)
    cfg = ModelConfig(arch="seq2seq", hidden=5, max_len=12, normalize="none")
    teaching = token_teacher(teacher, alpha, cfg, TrainConfig())
    info = teaching.info
    student = build_model(cfg.replace(input_vocab_size=len(info.input_vocab), output_vocab_size=len(info.output_vocab)),
                          True)
    compile_model(student, 1e-3)
    trainer = teaching.trainer(student)
    if teacher_fn is not None:
        trainer._teacher = teacher_fn(trainer._teacher)
    compile_model(trainer, 1e-3)
    return student, trainer, info


def one_hot_batch(info, pairs):
    from transducer.networks.seq2seq import seq2seq_arrays

    (enc, dec), depths, y = seq2seq_arrays(pairs, info.input_vocab, info.output_vocab, 8)
    return (np.eye(depths[0], dtype=np.float32)[enc], np.eye(depths[1], dtype=np.float32)[dec]), y


def test_training_loss_mixes_teacher_and_reference_and_validation_is_the_students(tmp_path):
    from transducer.training.distill import ensemble_probs, frozen_members, token_loss

    student, trainer, info = distiller_for(tmp_path, 0.8)
    x, y = one_hot_batch(info, teacher_pairs(5))
    p = student(x, training=False)
    q = ensemble_probs(frozen_members(info), x)
    expected = np.mean(np.asarray(token_loss(0.8)(y, p, q)))
    np.testing.assert_allclose(float(trainer.compute_loss(x, y, p, training=True)), expected, rtol=1e-5)
    # Validation: the student's own loss, on the references only.
    np.testing.assert_allclose(float(trainer.compute_loss(x, y, p, training=False)),
                               float(student.compute_loss(x, y, p, training=False)), rtol=1e-6)


def test_the_training_models_weights_are_the_students_only(tmp_path):
    student, trainer, _ = distiller_for(tmp_path, 0.5)
    assert [v.path for v in trainer.variables] == [v.path for v in student.variables]
    assert [w.shape for w in trainer.get_weights()] == [w.shape for w in student.get_weights()]
    assert len(trainer.trainable_variables) == len(student.trainable_variables)


def test_the_teacher_runs_on_each_training_batch(tmp_path):
    """Memory stays flat: no distribution is computed ahead; the teacher sees each batch
    as it trains (eagerly here, so every call is counted)."""
    seen = []

    def counting(teacher):
        def fn(inputs):
            seen.append(int(inputs[0].shape[0]))
            return teacher(inputs)
        return fn

    student, trainer, info = distiller_for(tmp_path, 0.5, counting)
    trainer.compile(optimizer="adam", loss=trainer.loss, run_eagerly=True)
    x, y = one_hot_batch(info, teacher_pairs(10))
    trainer.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    assert seen == [4, 4, 2]


# --- training a student ----------------------------------------------------------------


def student_probability_of(model_dir, pairs, symbol: str) -> float:
    """Mean probability the trained model gives `symbol` at the counted positions of
    `pairs`, teacher-forced (the Keras model of the directory)."""
    from transducer.core import artifacts
    from transducer.networks.saved import load_keras_model

    info = artifacts.read_info(model_dir)
    x, y = one_hot_batch(info, pairs)
    probs = np.asarray(load_keras_model(info)(x, training=False))[..., info.output_vocab.symbols.index(symbol)]
    counted = np.cumsum(y == END_ID, axis=1) - (y == END_ID) == 0
    return float(probs[counted].mean())


@pytest.mark.slow  # trains two students
@pytest.mark.graph  # the teacher runs in every step: compiled, that is faster (23 CPU s against 30 s eager)
def test_the_student_fits_the_teachers_distribution_even_a_wrong_one(tmp_path):
    """A teacher sure of a symbol no reference has: with weight 1 the student learns
    that symbol; with weight 0 (references only) it does not."""
    teacher = make_ensemble(tmp_path, out_chars="abdegz", peak=("z", 30.0))
    pairs = write_pairs(tmp_path / "pairs.tsv", teacher_pairs(120))
    opts = dict(SMALL, epochs=3, learning_rate=0.02, val_split=0.0, label_smoothing=0.0, teacher=str(teacher))
    transducer.train(pairs, tmp_path / "fits", teacher_weight=1.0, **opts)
    transducer.train(pairs, tmp_path / "ignores", teacher_weight=0.0, **opts)
    sample = teacher_pairs(20, seed=5)
    fits = student_probability_of(tmp_path / "fits", sample, "z")
    ignores = student_probability_of(tmp_path / "ignores", sample, "z")
    assert fits > 0.5 > 0.05 > ignores


@pytest.mark.slow  # trains a student of an ensemble, then resumes one
def test_student_of_an_ensemble_records_its_teacher_and_weight_and_resumes(tmp_path, ensemble_teacher):
    pairs = write_pairs(tmp_path / "pairs.tsv", teacher_pairs(80))
    opts = dict(SMALL, epochs=2, patience=100, teacher=str(ensemble_teacher), teacher_weight=0.8, teacher_temperature=2.0)
    with pytest.raises(TransducerError, match="SIGINT"):
        transducer.train(pairs, tmp_path / "s", progress=SignalAfterEpoch(1), **opts)
    for changed in ({"teacher_weight": 0.5}, {"teacher_temperature": None}, {"teacher_temperature": 3.0}):
        with pytest.raises(TransducerError, match="cannot resume=True: .*teacher was"):
            transducer.train(pairs, tmp_path / "s", resume=True, **{**opts, **changed})
    model = transducer.train(pairs, tmp_path / "s", resume=True, **opts)
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    record = config["distill"]
    assert record["mode"] == "token" and record["weight"] == 0.8 and record["temperature"] == 2.0
    assert record["teacher"]["members"] == 2
    teacher_config = (ensemble_teacher / "config.json").read_bytes()
    assert record["teacher"]["config_sha256"] == hashlib.sha256(teacher_config).hexdigest()
    assert config["input_vocab"] == json.loads(teacher_config)["input_vocab"]  # the teacher's vocabularies
    assert config["output_vocab"] == json.loads(teacher_config)["output_vocab"]
    metrics = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == 1 and metrics["epochs_run"] == 2
    assert not (tmp_path / "s.partial").exists()
    # The model directory is an ordinary one: both engines predict alike.
    words = [w for w, _ in teacher_pairs(15, seed=9)]
    keras_model = transducer.load(tmp_path / "s", engine="keras")
    assert model.predict(words) == keras_model.predict(words)


@pytest.mark.slow  # trains a two-member student
def test_a_student_ensemble_distils_every_member(tmp_path):
    teacher = make_ensemble(tmp_path, out_chars="abdegz")  # z: in no reference
    pairs = write_pairs(tmp_path / "pairs.tsv", teacher_pairs(40))
    transducer.train(pairs, tmp_path / "s", **SMALL, epochs=1, ensemble=2, teacher=str(teacher))
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    assert config["ensemble"]["members"] == 2
    assert config["distill"]["mode"] == "token" and config["distill"]["weight"] == 0.5
    member = json.loads((tmp_path / "s" / "members" / "2" / "config.json").read_text())
    assert "z" in member["output_vocab"]  # the teacher's vocabulary, not the data's


def test_token_level_data_keeps_references_and_labels_only_extra_inputs(tmp_path, ensemble_teacher):
    gold = teacher_pairs(30)
    pairs = write_pairs(tmp_path / "pairs.tsv", gold)
    (tmp_path / "extra.txt").write_text("bee\n\ncab\n", encoding="utf-8")
    cfg = ModelConfig(arch="seq2seq", max_len=64, normalize="none")
    with distilled_data(str(pairs), ensemble_teacher, str(tmp_path / "extra.txt"), cfg,
                        TrainConfig(val_split=0.3, seed=3), None, mode="token") as data:
        rows, held_out, record = read_rows(data.train_path), read_rows(data.val_path), data.record
    teacher = transducer.load(ensemble_teacher, beam=TEACHER_BEAM)
    assert rows[-2:] == list(zip(["bee", "cab"], teacher.predict(["bee", "cab"])))
    assert set(rows[:-2]) | set(held_out) == set(gold)  # references, split as without a teacher
    assert record["mode"] == "token" and record["relabelled"] is None
    assert record["extra_inputs"] == {"file": str(tmp_path / "extra.txt"), "n": 2, "skipped": 0}


def test_sequence_level_data_is_the_teachers_outputs_and_validation_keeps_references(tmp_path, ensemble_teacher):
    words = ["abc", "bad", "cage", "dab", "egg", "face", "bead", "add", "deg", "gab"] * 3
    gold = [(w + str(i), w[::-1]) for i, w in enumerate(words)]  # digits: unknown to the teacher
    pairs = write_pairs(tmp_path / "pairs.tsv", gold)
    (tmp_path / "extra.txt").write_text("bee\n\ncab\n", encoding="utf-8")
    cfg = ModelConfig(arch="seq2seq", max_len=64, normalize="none")
    with distilled_data(str(pairs), ensemble_teacher, str(tmp_path / "extra.txt"), cfg,
                        TrainConfig(val_split=0.3, seed=3), None, mode="sequence") as data:
        rows, held_out = read_rows(data.train_path), read_rows(data.val_path)
        record = data.record
    teacher = transducer.load(ensemble_teacher, beam=TEACHER_BEAM)
    inputs = [src for src, _ in rows]
    assert [out for _, out in rows] == teacher.predict(inputs)
    assert inputs[-2:] == ["bee", "cab"]  # extra inputs last, blank line ignored
    assert held_out and set(held_out) <= set(gold)  # references, not the teacher's outputs
    assert set(inputs[:-2]) | {src for src, _ in held_out} == {src for src, _ in gold}
    assert not set(inputs) & {src for src, _ in held_out}
    trained = [p for p in gold if p[0] in set(inputs[:-2])]
    assert record["pairs"] == len(trained)
    assert record["relabelled"] == sum(ref != out for (_, ref), (_, out) in zip(trained, rows))
    assert record["extra_inputs"] == {"file": str(tmp_path / "extra.txt"), "n": 2, "skipped": 0}
    assert record["teacher"]["members"] == 2 and record["teacher"]["beam"] == TEACHER_BEAM
    assert record["dropped"] == 0


@pytest.mark.slow  # trains a student (one epoch)
@pytest.mark.parametrize("mode", ["token", "sequence"])
def test_train_teacher_writes_a_student_with_its_record(tmp_path, tiny_model, pairs_file, mode):
    extra = tmp_path / "extra.txt"
    extra.write_text("abXY\nZed\n", encoding="utf-8")
    student = tmp_path / "student"
    result = invoke("train", pairs_file, "-m", student, "--hidden", "8", "--epochs", "1", "--teacher", tiny_model,
                    "--teacher-mode", mode, "--extra-inputs", extra, "--log-format", "plain")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    config = json.loads((student / "config.json").read_text())
    record = config["distill"]
    teacher_config = (tiny_model / "config.json").read_bytes()
    assert record["teacher"]["config_sha256"] == hashlib.sha256(teacher_config).hexdigest()
    assert record["teacher"]["members"] == 1
    assert record["mode"] == mode
    assert record["weight"] == (0.5 if mode == "token" else None)
    assert record["temperature"] == (1.0 if mode == "token" else None)
    assert record["extra_inputs"]["n"] == 2
    assert config["data"]["train_file"] == str(pairs_file)
    assert config["data"]["n_train"] == record["pairs"] + 2
    assert len(transducer.load(student).predict(["abc"])) == 1


# --- edit students: distributions over edit actions ---------------------------------------


EDIT_SMALL = dict(arch="edit", hidden=6, max_len=12, normalize="none", batch_size=16, seed=1)


def edit_teacher(tmp_path, members: int = 2, peak=None):
    """An assembled ensemble of random edit models (input abcdeg, outputs abdegz) with the
    aligner a trained edit model keeps, fitted on teacher_pairs. peak: (action, logit)
    where action(EditActions) -> id gets `logit` added to its output bias in every member."""
    from transducer.core import artifacts
    from transducer.core.edits import StochasticEditDistance

    aligner = StochasticEditDistance.fit(teacher_pairs(60))

    def make(parent, name, seed):
        model_dir, _ = random_model_dir(parent, name, seed=seed, arch="edit", out_chars="abdegz", end_bias=-1.0,
                                        max_len=12, bidirectional=True)
        if peak is not None:
            bias_up(model_dir, peak[0](artifacts.read_info(model_dir).output_vocab), peak[1])
        artifacts.write_json(model_dir / artifacts.ALIGNER, aligner.to_dict())
        return model_dir

    return model_or_ensemble(tmp_path, "teacher", members, make)


def bias_up(model_dir, index: int, logit: float) -> None:
    """Rewrite the model in `model_dir` with `logit` added to its head's bias at `index`."""
    from transducer.core import artifacts
    from transducer.networks.saved import load_keras_model
    from transducer.training.loop import save_model_dir

    model = load_keras_model(artifacts.read_info(model_dir))
    head = model.get_layer("dense")
    kernel, bias = head.get_weights()
    bias[index] += logit
    head.set_weights([kernel, bias])
    save_model_dir(model, json.loads((model_dir / "config.json").read_text()), {"final": {}}, model_dir)


def edit_batch(info, pairs):
    """((chars, pointers, previous actions) one-hot, the path's actions one-hot) of `pairs`
    as training feeds an edit model, on the model's aligner and actions."""
    from transducer.core import artifacts
    from transducer.core.edits import Expert
    from transducer.networks.edit import edit_arrays
    from transducer.training.edit_data import edit_dataset

    expert = Expert(artifacts.read_aligner(info.path), info.output_vocab)
    arrays = edit_arrays(pairs, info.input_vocab, info.output_vocab, expert, info.model.max_len)
    depths = (len(info.input_vocab), len(info.output_vocab))
    return next(iter(edit_dataset(arrays, depths, len(pairs), info.model.max_len)))


def test_edit_token_loss_is_the_formula_on_hand_computed_numbers():
    from transducer.networks.edit import edit_loss
    from transducer.training.distill import token_loss

    # One sequence of three steps over A = 3 actions: the path takes 2, then 0; step 3 is padding.
    y = np.array([[[0, 0, 1], [1, 0, 0], [0, 0, 0]]], np.float32)
    p = np.array([[[.2, .2, .6], [.5, .5, 0], [.3, .3, .4]]], np.float32)
    q = np.array([[[.1, .4, .5], [1, 0, 0], [0, 1, 0]]], np.float32)
    nll = (-math.log(.6) - math.log(.5)) / 2
    ce = (-(.1 * math.log(.2) + .4 * math.log(.2) + .5 * math.log(.6)) - math.log(.5)) / 2
    for alpha in (0.0, 0.3, 1.0):
        got = np.asarray(token_loss(alpha, arch="edit")(y, p, q))
        np.testing.assert_allclose(got, [alpha * ce + (1 - alpha) * nll], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(token_loss(0.0, label_smoothing=0.1, arch="edit")(y, p, q)),
                               np.asarray(edit_loss(0.1)(y, p)), rtol=1e-6)


def test_an_edit_students_loss_is_its_teachers_actions_and_validation_its_own(tmp_path):
    from transducer.networks.build import build_model, compile_model
    from transducer.networks.edit import ActionKinds
    from transducer.training.distill import ensemble_probs, frozen_members, token_loss, token_teacher

    teacher = edit_teacher(tmp_path, members=3)
    cfg = ModelConfig(**{k: v for k, v in EDIT_SMALL.items() if k not in ("batch_size", "seed")})
    teaching = token_teacher(teacher, 0.7, cfg, TrainConfig())
    info = teaching.info
    assert teaching.aligner_dir == teacher
    kinds = ActionKinds.of(info.output_vocab)
    student = build_model(cfg.replace(input_vocab_size=len(info.input_vocab), output_vocab_size=len(info.output_vocab)),
                          True, kinds)
    compile_model(student, 1e-3)
    trainer = teaching.trainer(student)
    compile_model(trainer, 1e-3, like=student)
    x, y = edit_batch(info, teacher_pairs(6))
    p = student(x, training=False)
    q = ensemble_probs(frozen_members(info), x)  # (B, S, A)
    # The teacher's distribution puts nothing on actions the mask forbids at a step.
    valid = np.asarray(p) > 0
    assert float(np.asarray(q)[~valid].max()) < 1e-6
    expected = np.mean(np.asarray(token_loss(0.7, arch="edit")(y, p, q)))
    np.testing.assert_allclose(float(trainer.compute_loss(x, y, p, training=True)), expected, rtol=1e-5)
    np.testing.assert_allclose(float(trainer.compute_loss(x, y, p, training=False)),
                               float(student.compute_loss(x, y, p, training=False)), rtol=1e-6)


def mean_action_probability(model_dir, pairs, action) -> float:
    """Mean probability the trained edit model gives `action(actions)` over the real steps of
    `pairs` where the pointer is still on the input (teacher-forced on its expert's path)."""
    from transducer.core import artifacts
    from transducer.networks.saved import load_keras_model

    info = artifacts.read_info(model_dir)
    (chars, pointers, prev), y = edit_batch(info, pairs)
    probs = np.asarray(load_keras_model(info)((chars, pointers, prev), training=False))  # (B, S, A)
    lengths = np.asarray(chars)[..., 4:].sum(axis=(1, 2))  # real characters (ids 4 on), per row
    on_input = (np.asarray(y).sum(-1) > 0) & (np.asarray(pointers) < lengths[:, None])
    return float(probs[..., action(info.output_vocab)][on_input].mean())


@pytest.mark.slow  # trains two edit students (eagerly: 18 CPU s against 28 s traced)
def test_an_edit_student_fits_its_teachers_actions_and_takes_its_aligner(tmp_path):
    """A teacher sure of SUBSTITUTE(z), an action no reference takes: with weight 1 the
    student learns it; with weight 0 it does not. The student is an ordinary edit model
    directory with the teacher's actions and aligner. The first rolls in (its second epoch
    walks its own actions, where the frozen teacher is asked too)."""
    sub_z = lambda actions: actions.substitute("z")  # noqa: E731
    teacher = edit_teacher(tmp_path, peak=(sub_z, 30.0))
    pairs = write_pairs(tmp_path / "pairs.tsv", teacher_pairs(60))
    # No validation: early stopping would keep the first epoch, the one closest to the references.
    opts = dict(EDIT_SMALL, epochs=2, learning_rate=0.05, val_split=0.0, label_smoothing=0.0, teacher=str(teacher))
    fits = transducer.train(pairs, tmp_path / "fits", teacher_weight=1.0, rollin=1.0, **opts)
    transducer.train(pairs, tmp_path / "ignores", teacher_weight=0.0, **opts)
    sample = teacher_pairs(20, seed=5)
    assert mean_action_probability(tmp_path / "fits", sample, sub_z) > 0.5
    assert mean_action_probability(tmp_path / "ignores", sample, sub_z) < 0.05
    assert (tmp_path / "fits" / "aligner.json").read_bytes() == (teacher / "aligner.json").read_bytes()
    config = json.loads((tmp_path / "fits" / "config.json").read_text())
    assert config["actions"] == json.loads((teacher / "config.json").read_text())["actions"]
    assert config["distill"]["mode"] == "token" and config["distill"]["weight"] == 1.0
    words = [w for w, _ in teacher_pairs(15, seed=9)]
    assert fits.predict(words) == transducer.load(tmp_path / "fits", engine="keras").predict(words)


def test_a_teacher_whose_members_differ_cannot_teach_token_by_token(tmp_path, pairs_file):
    from transducer.core.artifacts import assemble

    a, _ = random_model_dir(tmp_path, "a", arch="aligned", max_len=12, normalize="none")
    b, _ = random_model_dir(tmp_path, "b", arch="aligned", max_len=12, normalize="none", hidden=4)
    teacher = assemble([a, b], tmp_path / "teacher")
    result = invoke("train", pairs_file, "-m", tmp_path / "s", "--arch", "aligned", "--max-len", "12",
                    "--normalize", "none", "--teacher", teacher)
    assert_clean_error(result, "members 1 and 2 differ in their architecture, so it has no one distribution per step;"
                       " pass --teacher-mode sequence")


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("content, fragment", [
    (b"abc\nab\tc\n", "extra.txt:2: a tab"),
    (b"abc\n\n" + b"a" * 40 + b"\n", "extra.txt:3: 40 characters, longer than"),
    (b"ab\xffc\n", "extra.txt:1: not valid UTF-8"),
    (b"\n\n", "extra.txt: no inputs"),
])
def test_bad_extra_inputs_are_one_line_errors(tmp_path, tiny_model, pairs_file, content, fragment):
    (tmp_path / "extra.txt").write_bytes(content)
    result = invoke("train", pairs_file, "-m", tmp_path / "s", "--teacher", tiny_model,
                    "--extra-inputs", tmp_path / "extra.txt")
    assert_clean_error(result, fragment)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--arch", "seq2seq"], "its --arch is aligned, the student's seq2seq; pass --teacher-mode sequence"),
    (["--normalize", "nfd"], "it reads none text, the student --normalize nfd; pass --teacher-mode sequence"),
    (["--distribute", "mirrored"], "--teacher (token level) trains on one device; drop --distribute"),
])
def test_teachers_token_level_cannot_use_are_one_line_errors(tmp_path, tiny_model, pairs_file, args, fragment):
    result = invoke("train", pairs_file, "-m", tmp_path / "s", "--teacher", tiny_model, *args)
    assert_clean_error(result, fragment)
    assert not (tmp_path / "s").exists()


def test_python_callers_get_the_teacher_options_by_their_argument_names(tmp_path, tiny_model, pairs_file):
    with pytest.raises(TransducerError, match=r"^teacher_temperature must be a number above 0, got -1\.0$"):
        transducer.train(pairs_file, tmp_path / "s", teacher=str(tiny_model), teacher_temperature=-1.0)
    with pytest.raises(TransducerError, match=r"^teacher_weight needs teacher \(the model to learn from\)$"):
        transducer.train(pairs_file, tmp_path / "s", teacher_weight=0.5)
    assert not (tmp_path / "s").exists()


def test_missing_teacher_and_extra_inputs_without_teacher_are_errors(tmp_path, pairs_file):
    result = invoke("train", pairs_file, "-m", tmp_path / "s", "--teacher", tmp_path / "nope")
    assert_clean_error(result, f"--teacher {tmp_path / 'nope'}: no such model directory")
    (tmp_path / "extra.txt").write_text("abc\n")
    with pytest.raises(TransducerError, match="extra_inputs needs teacher"):  # Python callers get argument names
        transducer.train(pairs_file, tmp_path / "s", extra_inputs=str(tmp_path / "extra.txt"))
