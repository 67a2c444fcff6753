"""`summarize DIR` draws its layer table from config.json and weights.npz, without
TensorFlow (inference/layer_table.py), and it is Keras's table: the same rows, in the same
order, with the same types, output shapes and parameter counts, for every architecture
and option (networks.introspect.layer_rows on the built model is the reference)."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import invoke, invoke_in_fresh_process
from transducer.core import artifacts
from transducer.core.config import ModelConfig, TrainConfig, TransducerError
from transducer.core.edits import EditActions
from transducer.core.vocab import Labels, Vocab
from transducer.inference.layer_table import model_dir_rows

IN_VOCAB, OUT_VOCAB = Vocab.from_strings(["abcdefghijk"]), Vocab.from_strings(["xyzuvw"])
ACTIONS = EditActions.from_strings(["xyzuvw"])  # an edit model's output vocabulary


def _out_vocab(arch: str):
    return ACTIONS if arch == "edit" else OUT_VOCAB


def _grid():
    """arch x bidirectional x layers x head x reset_after, and attention for seq2seq; half
    of them with dropout (whose layers change the order: a seq2seq encoder's last Dropout
    feeds only the attention)."""
    for arch, bi, layers, head, reset_after in itertools.product(
        ["aligned", "seq2seq", "label", "edit"], [False, True], [1, 2], ["dense", "time-distributed"], [False, True]
    ):
        if arch == "label" and head == "time-distributed":
            continue  # refused by ModelConfig: no time axis after the last GRU
        for attention in (["luong", "bahdanau", "none"] if arch == "seq2seq" else ["luong"]):
            dropout = 0.1 if bi != reset_after else 0.0
            yield ModelConfig(arch=arch, bidirectional=bi, layers=layers, head=head, reset_after=reset_after,
                              attention=attention, dropout=dropout, hidden=5, max_len=7,
                              input_vocab_size=len(IN_VOCAB), output_vocab_size=len(_out_vocab(arch)))


# ... and models written before masks (config.json without "masked"): time axes of max_len.
GRID = list(_grid()) + [c.replace(masked=False) for c in _grid()
                        if c.layers == 2 and c.bidirectional and c.dropout and c.arch != "edit"]  # edit: always masked


def _cfg_id(cfg: ModelConfig) -> str:
    return "-".join([cfg.arch, "bi" if cfg.bidirectional else "uni", f"L{cfg.layers}", cfg.head,
                     "ra" if cfg.reset_after else "no-ra", *([cfg.attention] if cfg.arch == "seq2seq" else []),
                     f"drop{cfg.dropout:g}", *([] if cfg.masked else ["unmasked"])])


def _write_like_train(model_dir: Path, cfg: ModelConfig, save_keras: bool = False):
    """config.json and weights.npz of the network `train` builds for `cfg` (time axes
    None unless ModelConfig.variable_length says otherwise); model.keras too if asked."""
    from transducer.networks.export import export_weights
    from transducer.networks.build import build_model

    model = build_model(cfg, cfg.variable_length)
    cfg_json = artifacts.config_dict(cfg, IN_VOCAB, _out_vocab(cfg.arch), train=TrainConfig().to_dict(), data={})
    if save_keras:
        from transducer.training.loop import save_model_dir

        save_model_dir(model, cfg_json, {"final": {}}, model_dir)
        return model
    model_dir.mkdir(parents=True)
    artifacts.write_json(model_dir / artifacts.CONFIG, cfg_json)
    export_weights(model, model_dir / artifacts.WEIGHTS)
    return model


@pytest.mark.parametrize("cfg", GRID, ids=_cfg_id)
def test_the_table_is_keras_table_row_by_row(tmp_path, cfg):
    from transducer.networks.introspect import layer_rows

    model = _write_like_train(tmp_path / "m", cfg)
    keras_rows, rows = layer_rows(model), model_dir_rows(artifacts.read_info(tmp_path / "m"))
    for k, (theirs, ours) in enumerate(itertools.zip_longest(keras_rows, rows)):
        assert ours == theirs, f"row {k}"


@pytest.mark.slow
@pytest.mark.parametrize("cfg", [c for c in GRID if c.layers == 2 and c.dropout and c.head == "dense"], ids=_cfg_id)
def test_the_table_is_the_saved_models_table(tmp_path, cfg):
    """What summarize showed before: the table of model.keras as Keras loads it."""
    from transducer.networks.introspect import layer_rows
    from transducer.networks.saved import load_keras_model

    _write_like_train(tmp_path / "m", cfg, save_keras=True)
    info = artifacts.read_info(tmp_path / "m")
    assert model_dir_rows(info) == layer_rows(load_keras_model(info))


CLASSIC = dict(input_vocab_size=15, output_vocab_size=15, hidden=16, max_len=64)


@pytest.mark.parametrize("cfg,fragments", [
    (ModelConfig(**CLASSIC, head="time-distributed", reset_after=False), ["gru_1 (GRU)", "1,536", "255", "1,791"]),
    (ModelConfig(**CLASSIC, head="time-distributed"), ["1,584", "255", "1,839"]),
    (ModelConfig(**CLASSIC, arch="label", reset_after=False), ["(None, 16)", "(None, 15)", "1,536"]),
])
def test_the_classic_numbers_stay_exact(tmp_path, cfg, fragments):
    """The classic 15-symbol, hidden-16 model's counts (README): GRU 1,536 with
    --no-reset-after and 1,584 without, the head 16 x 15 + 15 = 255."""
    from transducer.networks.export import export_weights
    from transducer.networks.build import build_model

    vocab = Vocab.from_strings(["abcdefghijk"])  # 4 reserved symbols + 11 characters
    out = Labels.from_strings(list("abcdefghijklmno")) if cfg.arch == "label" else vocab
    assert len(vocab) == len(out) == 15
    (tmp_path / "m").mkdir()
    artifacts.write_json(tmp_path / "m" / artifacts.CONFIG, artifacts.config_dict(cfg, vocab, out, {}, {}))
    export_weights(build_model(cfg, cfg.variable_length), tmp_path / "m" / artifacts.WEIGHTS)
    r = invoke("summarize", tmp_path / "m")
    assert r.exit_code == 0, r.stderr
    table = r.stdout.split("config")[0]
    for fragment in fragments:
        assert fragment in table, fragment


def test_older_weight_names_and_no_weights_file_give_the_same_table(tmp_path):
    """A weights.npz written before wrappers were spelled out (`forward_gru_1/...`,
    `dense/...` inside time_distributed), or none at all (the counts config.json implies)."""
    cfg = ModelConfig(bidirectional=True, layers=2, head="time-distributed", hidden=5, max_len=7,
                      input_vocab_size=len(IN_VOCAB), output_vocab_size=len(OUT_VOCAB))
    _write_like_train(tmp_path / "m", cfg)
    info = artifacts.read_info(tmp_path / "m")
    table = model_dir_rows(info)
    with np.load(info.path / artifacts.WEIGHTS) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(info.path / artifacts.WEIGHTS, **{k.split("/", 1)[1]: v for k, v in arrays.items()})
    assert model_dir_rows(info) == table
    (info.path / artifacts.WEIGHTS).unlink()
    assert model_dir_rows(info) == table


def test_weights_that_do_not_fit_the_config_are_one_line_errors(tmp_path):
    cfg = ModelConfig(hidden=5, max_len=7, input_vocab_size=len(IN_VOCAB), output_vocab_size=len(OUT_VOCAB))
    _write_like_train(tmp_path / "m", cfg)
    path = tmp_path / "m" / artifacts.WEIGHTS
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(path, **{**arrays, "dense/kernel": np.zeros((5, 3), np.float32)})
    with pytest.raises(TransducerError, match=r"do not fit .*dense/kernel is \(5, 3\), config.json makes it \(5, 10\)"):
        model_dir_rows(artifacts.read_info(tmp_path / "m"))
    np.savez(path, **{k: v for k, v in arrays.items() if k != "dense/bias"})
    with pytest.raises(TransducerError, match="no weight 'dense/bias'; re-export"):
        model_dir_rows(artifacts.read_info(tmp_path / "m"))


def test_summarize_dir_imports_no_tensorflow_and_shows_keras_table(tiny_model, tmp_path):
    """One model and an ensemble of two, through the CLI in a fresh process: their tables
    (rendered) hold Keras's rows, the ensemble its members, and TensorFlow is never imported."""
    from transducer.networks.introspect import layer_rows
    from transducer.networks.saved import load_keras_model

    ensemble = tmp_path / "ens"
    shutil.copytree(tiny_model, ensemble)
    shutil.copytree(tiny_model, artifacts.member_dir(ensemble, 2))
    config = json.loads((ensemble / artifacts.CONFIG).read_text(encoding="utf-8"))
    artifacts.write_json(ensemble / artifacts.CONFIG, {**config, "ensemble": {"members": 2, "seeds": [1, 2]}})
    single, both = invoke_in_fresh_process([{"args": ["summarize", tiny_model]}, {"args": ["summarize", ensemble]}])
    for r in (single, both):
        assert r["exit_code"] == 0 and r["stderr"] == "", r
        assert not r["tensorflow"]
    lines = single["stdout"].splitlines()
    for name, kind, shape, params in layer_rows(load_keras_model(artifacts.read_info(tiny_model))):
        assert any(f"{name} ({kind})" in l and shape in l and l.rstrip(" │|").endswith(f"{params:,}") for l in lines), name
    text = " ".join(both["stdout"].split())
    assert "ensemble of 2 members (the layer table is each member's)" in text and "members/2" in text
