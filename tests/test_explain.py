"""`transducer explain`: attention heat-maps and per-step probabilities, both engines."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import RANDOM_MAX_LEN, random_model_dir
from transducer.cli import app
from transducer.ui.render import rounded
from transducer.inference.explain import explain
from transducer.inference.predict import Predictor
from transducer.core.vocab import END_ID, START_ID, UNK

runner = CliRunner()
TEXTS = ["abgec", "a", "ddcbaabe", ""]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Random sharpened models: seq2seq with each attention, a deeper one, and an aligned one."""
    tmp = tmp_path_factory.mktemp("explain")
    variants = {
        "luong": {"attention": "luong", "end_bias": 1.0},
        "bahdanau": {"attention": "bahdanau", "end_bias": 1.0},
        "none": {"attention": "none", "end_bias": 1.0},
        "deep": {"attention": "luong", "bidirectional": True, "layers": 2, "end_bias": 1.0},
        "aligned": {"arch": "aligned"},
        "edit": {"arch": "edit", "end_bias": -3.0},  # end_bias: INSERT's, see random_model_dir
    }
    return {name: random_model_dir(tmp, name=name, **kw) for name, kw in variants.items()}


@pytest.mark.parametrize("name", ["luong", "bahdanau", "deep"])
def test_attention_rows_sum_to_one_and_equal_the_keras_attention_layer(models, name):
    model_dir, model = models[name]
    from transducer.networks.tf import keras

    attention = model.get_layer("attention")
    # The trained model's own attention inputs (decoder outputs, encoder outputs), teacher
    # forced with the explained output, then the layer's scores for exactly those inputs.
    inputs_of_attention = keras.Model(model.inputs, attention.input)
    for text in TEXTS:
        ex = explain(model_dir, text)
        rows = np.array([s.attention for s in ex.steps])  # (steps, T)
        np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-5)
        chars, prev = _teacher_forced(ex, model_dir)
        dec, enc, *mask = inputs_of_attention.predict_on_batch([chars, prev])  # + the padding mask
        masks = {"mask": [None, mask[0]]} if mask else {}
        _, scores = attention([dec, enc], return_attention_scores=True, **masks)  # (1, T+1, T)
        np.testing.assert_allclose(rows, np.asarray(scores)[0, : len(rows)], atol=1e-5)


def _teacher_forced(ex, model_dir):
    """One-hot encoder input and decoder input (<s> + the explained output) for `ex`."""
    from transducer.core.artifacts import read_info
    from transducer.core.vocab import one_hot

    info = read_info(model_dir)
    T = info.model.max_len
    ids, _ = info.input_vocab.encode(ex.text, T)
    out = [START_ID] + [info.output_vocab.id_of(s.symbol) for s in ex.steps[:-1]]
    prev = np.full(T + 1, END_ID, np.int32)
    prev[: len(out)] = out
    return one_hot(ids[None], len(info.input_vocab)), one_hot(prev[None], len(info.output_vocab))


@pytest.mark.parametrize("name", ["luong", "bahdanau", "none", "deep", "aligned", "edit"])
def test_both_engines_give_the_same_numbers_and_predicts_output(models, name):
    model_dir, _ = models[name]
    predicted = Predictor(model_dir).predict_batch(TEXTS)
    for text, (output, confidence) in zip(TEXTS, predicted):
        a, b = explain(model_dir, text, engine="numpy"), explain(model_dir, text, engine="keras")
        assert a.output == b.output == output
        assert a.probability == pytest.approx(confidence, rel=1e-5)
        assert a.probability == pytest.approx(b.probability, rel=1e-5, abs=1e-7)
        assert [s.symbol for s in a.steps] == [s.symbol for s in b.steps]
        for sa, sb in zip(a.steps, b.steps):
            assert sa.probability == pytest.approx(sb.probability, abs=1e-5)
            assert [c.symbol for c in sa.top] == [c.symbol for c in sb.top]
            np.testing.assert_allclose([c.probability for c in sa.top], [c.probability for c in sb.top], atol=1e-5)
            if sa.attention is None:
                assert sb.attention is None and not a.has_attention
            else:
                np.testing.assert_allclose(sa.attention, sb.attention, atol=1e-5)


def test_seq2seq_steps_end_with_the_end_symbol_and_rank_their_top_symbols(models):
    model_dir, _ = models["luong"]
    ex = explain(model_dir, "abgec", top=4)
    assert ex.steps[-1].symbol == "</s>"
    assert "".join(s.symbol for s in ex.steps[:-1]) == ex.output
    capped = len(ex.steps) == RANDOM_MAX_LEN + 1  # then the last </s> is forced, not chosen
    for i, s in enumerate(ex.steps):
        probs = [c.probability for c in s.top]
        assert len(s.top) == 4 and probs == sorted(probs, reverse=True)
        if not (capped and i == RANDOM_MAX_LEN):
            assert s.top[0].symbol == s.symbol and s.top[0].probability == s.probability
        assert not {c.symbol for c in s.top} & {"<pad>", "<unk>", "<s>"}  # never emitted
    assert ex.probability == pytest.approx(np.prod([s.probability for s in ex.steps]), rel=1e-6)


def test_aligned_model_lists_each_positions_top_symbols(models):
    model_dir, _ = models["aligned"]
    ex = explain(model_dir, "abgec")
    assert ex.arch == "aligned" and not ex.has_attention
    assert ex.output == Predictor(model_dir).predict_batch(["abgec"])[0][0]
    ends = [i for i, s in enumerate(ex.steps) if s.symbol in ("</s>", "<pad>")]
    assert ends in ([], [len(ex.steps) - 1])  # positions up to the first end, no further
    for s in ex.steps:
        probs = [c.probability for c in s.top]
        assert len(s.top) == 3 and probs == sorted(probs, reverse=True)
        assert s.top[0].symbol == s.symbol and s.attention is None


@pytest.mark.parametrize("name", ["luong", "aligned", "edit"])
def test_unseen_characters_are_read_as_unk_and_named(models, name):
    model_dir, _ = models[name]
    ex = explain(model_dir, "aжbжz")
    assert ex.input_symbols == ("a", UNK, "b", UNK, UNK)
    assert ex.unknown == ("ж", "z")
    assert ex.output == Predictor(model_dir).predict_batch(["aжbжz"])[0][0]


def explained_on_the_cli(model_dir, text: str):
    """(`explain` of the library, the CLI's stdout, its table header, the rows under it)."""
    r = runner.invoke(app, ["explain", str(model_dir), text])
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    header = next(l for l in lines if "most probable" in l)
    return explain(model_dir, text), r.stdout, header, lines[lines.index(header) + 1 :]


def test_cli_draws_the_heat_map_and_prints_the_same_numbers_as_json(models):
    model_dir, _ = models["luong"]
    ex, stdout, header, rows = explained_on_the_cli(model_dir, "abжe")
    assert "a b ж e │pad│" in header
    assert len(rows) == len(ex.steps)  # one row per output step, </s> included
    for row, s in zip(rows, ex.steps):
        assert row.split()[:2] == [s.symbol, f"{s.probability:.4f}"]
        assert all(f"{c.symbol} {c.probability:.3f}" in row for c in s.top)
    assert "'ж' not in the training data" in stdout

    j = runner.invoke(app, ["explain", str(model_dir), "abжe", "--json"])
    assert j.exit_code == 0, j.stderr
    assert json.loads(j.stdout) == json.loads(json.dumps(rounded(ex.to_dict())))  # 6 significant digits


def test_cli_aligned_table_and_errors(models):
    model_dir, _ = models["aligned"]
    r = runner.invoke(app, ["explain", str(model_dir), "abc"])
    assert r.exit_code == 0, r.stderr
    ex = explain(model_dir, "abc")
    assert sum(1 for l in r.stdout.splitlines() if l[:3].strip().isdigit()) == len(ex.steps)

    long = runner.invoke(app, ["explain", str(model_dir), "a" * 50])
    assert long.exit_code == 2 and "error:" in long.stderr and "at most 8" in long.stderr
    assert "Traceback" not in long.stderr + long.stdout
    bad = runner.invoke(app, ["explain", str(model_dir), "abc", "--engine", "onnx"])
    assert bad.exit_code == 2 and "--engine" in bad.stderr


def test_edit_model_shows_its_script_under_the_input(models):
    """One step per action, END last: the pointer walks the input (COPY, SUB and DEL
    advance it, INS does not), each step's output so far is the previous one plus what
    its action writes (COPY: the input's own character, unseen ones included), and the
    steps' probabilities multiply to the output's."""
    model_dir, _ = models["edit"]
    text = "abжe"
    ex = explain(model_dir, text, top=4)
    assert ex.arch == "edit" and not ex.has_attention and ex.steps[-1].symbol == "END"
    pointer, written = 0, ""
    for s in ex.steps:
        capped = len(written) == RANDOM_MAX_LEN  # before this action: only DEL or END remain
        assert s.pointer == pointer
        under = repr(text[pointer]) if pointer < len(text) else None
        kind, _, rest = s.symbol.partition(" ")
        if kind == "COPY":
            assert rest == under
            written += text[pointer]
        elif kind == "SUB":
            assert rest.startswith(f"{under}→")
            written += rest[-2]
        elif kind == "DEL":
            assert rest == under
        elif kind == "INS":
            written += rest[1]
        assert s.written == written
        pointer += kind in ("COPY", "SUB", "DEL")
        probs = [c.probability for c in s.top]
        assert len(s.top) == (1 if capped else 4) and probs == sorted(probs, reverse=True) and 0 not in probs
        assert s.top[0].symbol == s.symbol and s.top[0].probability == s.probability
    assert pointer == len(text) and ex.output == written
    assert {s.symbol.split()[0] for s in ex.steps} >= {"COPY", "SUB", "END"}
    assert ex.probability == pytest.approx(np.prod([s.probability for s in ex.steps]), rel=1e-6)


def test_cli_edit_script_and_json(models):
    model_dir, _ = models["edit"]
    ex, stdout, _, rows = explained_on_the_cli(model_dir, "abжe")
    assert len(rows) == len(ex.steps)
    for t, (row, s) in enumerate(zip(rows, ex.steps), 1):
        pos = "end" if s.pointer == 4 else str(s.pointer + 1)
        assert row.split()[:2] == [str(t), pos]
        assert f"  {s.symbol}  " in row and f"  {s.probability:.4f}  {s.written!r}  " in row
        assert all(f"{c.symbol} {c.probability:.3f}" in row for c in s.top)
    assert "COPY writes it as it is" in stdout
    j = runner.invoke(app, ["explain", str(model_dir), "abжe", "--json"])
    assert j.exit_code == 0, j.stderr
    got = json.loads(j.stdout)
    assert got == json.loads(json.dumps(rounded(ex.to_dict())))
    assert [s["pointer"] for s in got["steps"]] == [s.pointer for s in ex.steps]
    seq2seq = explain(models["luong"][0], "abc").to_dict()  # the other architectures' keys are unchanged
    assert set(seq2seq["steps"][0]) == {"symbol", "probability", "top", "attention"}
