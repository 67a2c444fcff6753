"""The classic numbers and the Dense vs TimeDistributed(Dense) equivalence."""

import numpy as np
import pytest

from transducer.core.config import ModelConfig
from transducer.networks.build import build_model
from transducer.networks.introspect import compare_heads, layer_rows

CLASSIC = dict(max_len=64, hidden=16, input_vocab_size=15, output_vocab_size=15)


def params_by_name(model):
    return {name: params for name, _, _, params in layer_rows(model)}


def shapes_by_name(model):
    return {name: shape for name, _, shape, _ in layer_rows(model)}


@pytest.mark.parametrize("head,layer", [("dense", "dense"), ("time-distributed", "time_distributed")])
@pytest.mark.parametrize("reset_after,gru_params", [(False, 1536), (True, 1584)])
def test_classic_parameter_counts(head, layer, reset_after, gru_params):
    model = build_model(ModelConfig(head=head, reset_after=reset_after, **CLASSIC))
    params = params_by_name(model)
    assert params["gru_1"] == gru_params
    assert params[layer] == 16 * 15 + 15 == 255
    shapes = shapes_by_name(model)
    assert shapes["chars"] == "(None, 64, 15)"
    assert shapes["gru_1"] == "(None, 64, 16)"
    assert shapes[layer] == "(None, 64, 15)"


def test_sequence_to_label_variant_shapes():
    model = build_model(ModelConfig(arch="label", reset_after=False, **CLASSIC))
    shapes = shapes_by_name(model)
    assert shapes["gru_1"] == "(None, 16)"
    assert shapes["dense"] == "(None, 15)"
    assert params_by_name(model)["dense"] == 255


def test_heads_agree_with_the_same_weights():
    r = compare_heads(ModelConfig(**{**CLASSIC, "max_len": 10}), batch=8, repeats=1)
    assert r["max_abs_diff"] < 1e-6
    assert [row[3] for row in r["dense_rows"]] == [row[3] for row in r["td_rows"]]


def test_heads_differ_when_weights_differ():
    """Guards the test above: the comparison is not trivially zero."""
    cfg = ModelConfig(**{**CLASSIC, "max_len": 10})
    a = build_model(cfg)
    b = build_model(cfg.replace(head="time-distributed"))
    x = np.eye(15, dtype=np.float32)[np.random.default_rng(0).integers(0, 15, (4, 10))]
    assert np.max(np.abs(a.predict_on_batch(x) - b.predict_on_batch(x))) > 1e-4


@pytest.mark.parametrize("bidirectional", [False, True])
def test_stacked_and_bidirectional_shapes(bidirectional):
    cfg = ModelConfig(layers=2, bidirectional=bidirectional, dropout=0.1, **CLASSIC)
    shapes = shapes_by_name(build_model(cfg))
    width = 32 if bidirectional else 16
    last = "bidirectional_2" if bidirectional else "gru_2"
    assert shapes[last] == f"(None, 64, {width})"
    assert shapes["softmax"] == "(None, 64, 15)"
