"""`--arch label`: a whole string -> one label (the classic question's third model).

Random-weight models (saved through the library's own `train.save_model_dir`) cover every
variant of the network without training; a few tiny trainings cover the CLI end to end,
the streamed encoding and --resume.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import transducer
from conftest import write_pairs
from conftest import assert_clean_error, invoke
from conftest import documents, expected_raw_lines
from transducer.core import artifacts
from transducer.core.config import ModelConfig, TrainConfig, TransducerError
from transducer.inference.keras_engine import KerasEngine
from transducer.inference.numpy_engine import SUB_BATCH, NumpyEngine
from transducer.inference.predict import Predictor
from transducer.core.vocab import PAD_ID, Labels, Vocab, one_hot

MAX_LEN = 10
LABELS = ("de", "en", "ISO-8601", "spam", "x")  # any strings; sorted ids: ISO-8601 first


def label_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """A learnable toy task: the label says which letter a word has most of."""
    rng = random.Random(seed)
    names = {"a": "alpha", "b": "bravo", "c": "charlie"}
    pairs = []
    for _ in range(n):
        word = "".join(rng.choice("abcxy") for _ in range(rng.randint(1, 8)))
        pairs.append((word, names[max("abc", key=lambda ch: (word.count(ch), ch))]))
    return pairs


def random_label_model(model_dir, seed: int = 0, max_len: int = MAX_LEN, **cfg_kw):
    """A label model with random (scaled-up) weights, saved as `train` saves one."""
    from transducer.networks.build import build_model
    from transducer.training.loop import save_model_dir

    in_vocab = Vocab.from_strings("abcdeXYZ")
    labels = Labels.from_strings(LABELS)
    cfg = ModelConfig(
        arch="label", max_len=max_len, hidden=6, input_vocab_size=len(in_vocab), output_vocab_size=len(labels), **cfg_kw
    )
    model = build_model(cfg)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.8, w.shape).astype(np.float32) for w in model.get_weights()])
    cfg_json = artifacts.config_dict(cfg, in_vocab, labels, train={}, data={})
    save_model_dir(model, cfg_json, {"final": {}}, model_dir)
    return model_dir, model


def random_words(n: int, seed: int = 1, max_len: int = MAX_LEN) -> list[str]:
    rng = np.random.default_rng(seed)
    chars = list("abcdeXYZ#")  # '#' is never in the vocabulary: <unk>
    return ["".join(rng.choice(chars, size=rng.integers(1, max_len + 1))) for _ in range(n)]


# --- the network -------------------------------------------------------------------------


def test_classic_third_model_summary():
    r = invoke("summarize", "--arch", "label", "--input-size", 15, "--output-size", 8, "--hidden", 16, "--no-reset-after")
    assert r.exit_code == 0, r.stderr
    rows = {line.split()[1]: line for line in r.stdout.splitlines() if line.count("│") >= 3 and "(" in line}
    assert "(None, 64, 15)" in rows["chars"]
    assert "(None, 16)" in rows["gru_1"] and "1,536" in rows["gru_1"]
    assert "(None, 8)" in rows["dense"] and "136" in rows["dense"]
    assert "(None, 8)" in rows["softmax"]
    assert "(None, 64, 16)" not in r.stdout  # no time axis after the GRU
    # --no-return-sequences is the same model.
    same = invoke("summarize", "--no-return-sequences", "--input-size", 15, "--output-size", 8, "--hidden", 16, "--no-reset-after")
    assert same.exit_code == 0 and same.stdout.replace("aligned", "label") == r.stdout


@pytest.mark.parametrize("bidirectional,layers", [(False, 1), (True, 1), (False, 2), (True, 2)])
def test_the_last_layer_returns_one_vector_per_string(bidirectional, layers):
    from transducer.networks.build import build_model
    from transducer.networks.introspect import layer_rows

    cfg = ModelConfig(arch="label", layers=layers, bidirectional=bidirectional, dropout=0.1, max_len=12, hidden=4,
                      input_vocab_size=9, output_vocab_size=5)
    shapes = {name: shape for name, _, shape, _ in layer_rows(build_model(cfg))}
    last = f"bidirectional_{layers}" if bidirectional else f"gru_{layers}"
    assert shapes[last] == f"(None, {8 if bidirectional else 4})"
    if layers == 2:
        assert shapes["bidirectional_1" if bidirectional else "gru_1"] == f"(None, 12, {8 if bidirectional else 4})"
    assert shapes["dense"] == shapes["softmax"] == "(None, 5)"


def test_time_distributed_head_is_refused_in_train_and_summarize(tmp_path):
    pairs = write_pairs(tmp_path / "p.tsv", label_pairs(20))
    for args in (
        ("train", pairs, "--model-dir", tmp_path / "m", "--arch", "label", "--head", "time-distributed"),
        ("summarize", "--arch", "label", "--head", "time-distributed"),
        ("summarize", "--no-return-sequences", "--head", "time-distributed"),
    ):
        r = invoke(*args)
        assert_clean_error(r, "--head time-distributed", "no time axis", code=2)
        assert len([l for l in r.stderr.splitlines() if l.strip()]) == 1
    assert not (tmp_path / "m").exists()
    with pytest.raises(TransducerError, match="time axis"):
        ModelConfig(arch="label", head="time-distributed")


def test_labels_round_trip_through_config(tmp_path):
    model_dir, _ = random_label_model(tmp_path / "m")
    raw = json.loads((model_dir / "config.json").read_text())
    assert raw["labels"] == sorted(LABELS) and "output_vocab" not in raw
    assert raw["model"]["arch"] == "label" and raw["model"]["output_vocab_size"] == len(LABELS)
    info = artifacts.read_info(model_dir)
    assert info.output_vocab == Labels(tuple(sorted(LABELS)))
    assert info.model == ModelConfig.from_dict(raw["model"]) and not info.model.return_sequences
    # A label list that does not fit the model is a one-line error.
    raw["labels"] = raw["labels"][:-1]
    (model_dir / "config.json").write_text(json.dumps(raw))
    with pytest.raises(TransducerError, match="disagree"):
        artifacts.read_info(model_dir)


# --- the engines --------------------------------------------------------------------------

VARIANTS = [
    dict(bidirectional=b, layers=n, reset_after=r) for b in (False, True) for n in (1, 2) for r in (True, False)
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(f"{k}={v[k]}" for k in v))
def test_numpy_and_keras_engines_agree(tmp_path, variant):
    """numpy (each row run to its own length) and keras (masked, padded to max_len) give
    the same probabilities and labels."""
    model_dir, _ = random_label_model(tmp_path / "m", seed=len(tmp_path.name), **variant)
    assert_engines_agree(model_dir)


@pytest.mark.parametrize(
    "variant",
    VARIANTS,
    ids=lambda v: "-".join(f"{k}={v[k]}" for k in v),
)
def test_export_then_predict(tmp_path, variant):
    """`transducer export` rewrites the numpy engine's weights from model.keras alone."""
    model_dir, _ = random_label_model(tmp_path / "m", seed=len(tmp_path.name), **variant)
    (model_dir / "weights.npz").unlink()
    r = invoke("export", model_dir)
    assert r.exit_code == 0, r.stderr
    assert_engines_agree(model_dir)


def assert_engines_agree(model_dir):
    info = artifacts.read_info(model_dir)
    words = random_words(SUB_BATCH + 21)  # more than one sub-batch, many lengths
    ids, _ = info.input_vocab.encode_batch(words, MAX_LEN, fill=PAD_ID)
    p_np, p_k = NumpyEngine(info).label_probs(ids), KerasEngine(info).label_probs(ids)
    assert p_np.shape == p_k.shape == (len(words), len(LABELS))
    np.testing.assert_allclose(p_np, p_k, atol=1e-5, rtol=0)
    assert len(set(p_k.argmax(axis=1).tolist())) >= 2  # the random weights do discriminate
    got = Predictor(model_dir, engine="numpy").predict_batch(words)
    want = Predictor(model_dir, engine="keras").predict_batch(words)
    assert [label for label, _ in got] == [label for label, _ in want]
    np.testing.assert_allclose([c for _, c in got], [c for _, c in want], atol=1e-5)


@pytest.mark.parametrize("bidirectional,layers", [(False, 1), (True, 2)])
def test_the_label_does_not_depend_on_padding(tmp_path, bidirectional, layers):
    """The same weights with max_len 10 and 30 (20 more <pad> steps) give the same
    probabilities in Keras; in numpy a string alone and next to a long one agree too."""
    short_dir, short = random_label_model(tmp_path / "short", bidirectional=bidirectional, layers=layers)
    long_dir, long = random_label_model(tmp_path / "long", max_len=30, bidirectional=bidirectional, layers=layers)
    long.set_weights(short.get_weights())
    words = random_words(40)
    vocab = artifacts.read_info(short_dir).input_vocab
    x10 = one_hot(vocab.encode_batch(words, 10)[0], len(vocab))
    x30 = one_hot(vocab.encode_batch(words, 30)[0], len(vocab))
    p10, p30 = short.predict_on_batch(x10), long.predict_on_batch(x30)
    np.testing.assert_allclose(p10, p30, atol=1e-6)
    # Guard: the same padding steps, unmasked (all-zero vectors are read as real steps),
    # do change the result, so the agreement above is the mask's doing.
    unmasked = x30.copy()
    unmasked[..., PAD_ID] = 0.0
    assert np.abs(long.predict_on_batch(unmasked) - p30).max() > 1e-3

    engine = NumpyEngine(artifacts.read_info(short_dir))
    alone = engine.label_probs(vocab.encode_batch(["ab"], 10)[0])
    beside = engine.label_probs(vocab.encode_batch(["ab", "abcdeXYZab"], 10)[0])
    np.testing.assert_allclose(alone[0], beside[0], atol=1e-6)
    keras_alone = short.predict_on_batch(one_hot(vocab.encode_batch(["ab"], 10)[0], len(vocab)))
    np.testing.assert_allclose(alone, keras_alone, atol=1e-5)


def test_nbest_gives_the_most_probable_labels_in_order(tmp_path):
    model_dir, model = random_label_model(tmp_path / "m", bidirectional=True)
    words = random_words(30)
    info = artifacts.read_info(model_dir)
    probs = model.predict_on_batch(one_hot(info.input_vocab.encode_batch(words, MAX_LEN)[0], len(info.input_vocab)))
    for k in (1, 3, len(LABELS) + 2):
        results = Predictor(model_dir, beam=k, nbest=k).predict_candidates(words)
        for (label, conf, nbest), p in zip(results, probs):
            assert label == info.output_vocab.symbols[int(np.argmax(p))]
            assert conf == pytest.approx(float(p.max()), abs=1e-5)
            if k == 1:
                assert nbest is None
                continue
            assert len(nbest) == min(k, len(LABELS))
            assert [c for c, _, _ in nbest][0] == label and len({c for c, _, _ in nbest}) == len(nbest)
            shown = [pr for _, _, pr in nbest]
            assert shown == sorted(shown, reverse=True)
            want = sorted(p.tolist(), reverse=True)[: len(nbest)]
            np.testing.assert_allclose(shown, want, atol=1e-5)
    # Through the CLI: text is tab-separated labels; tsv has each label's probability.
    r = invoke("predict", model_dir, "--nbest", 3, "-f", "tsv", input="abc\n\nXYZ\n")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.split("\n")[:-1]
    assert len(lines) == 3 and lines[1] == "\t\t"  # an empty line: no label, no probability
    cells = lines[0].split("\t")
    assert cells[0] == "abc" and len(cells) == 7
    assert [float(x) for x in cells[2::2]] == sorted((float(x) for x in cells[2::2]), reverse=True)


# --- training end to end -------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny label model trained through the CLI, with a validation file holding a
    label the training data lacks."""
    root = tmp_path_factory.mktemp("label")
    pairs = write_pairs(root / "train.tsv", label_pairs(240, seed=1))
    val = write_pairs(root / "val.tsv", label_pairs(30, seed=2) + [("zzz", "zulu")])
    test = write_pairs(root / "test.tsv", label_pairs(40, seed=3))
    r = invoke("train", pairs, "--model-dir", root / "m", "--arch", "label", "--hidden", 12, "--epochs", 3,
               "--max-len", MAX_LEN, "--val-file", val, "--bidirectional", "--learning-rate", 0.01)
    return root, r


@pytest.mark.slow
@pytest.mark.graph  # the compiled training step, as users run it
def test_train_predict_evaluate_in_the_cli(trained):
    root, r = trained
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    text = " ".join(r.stderr.split())
    assert "1 validation row(s) have a label no training row has" in text
    assert "accuracy" in text and "macro-F1" in text
    model_dir = root / "m"
    assert json.loads((model_dir / "config.json").read_text())["labels"] == ["alpha", "bravo", "charlie"]
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(metrics["history"])
    assert 0 <= metrics["final"]["macro_f1"] <= 1

    inputs = ["aab", "", "ccc", "bxb#"]  # an empty line and an unseen character
    out = {}
    for fmt in ("text", "tsv", "jsonl"):
        p = invoke("predict", model_dir, "-f", fmt, input="".join(f"{w}\n" for w in inputs))
        assert p.exit_code == 0, p.stderr
        out[fmt] = p.stdout.split("\n")[:-1]
        assert len(out[fmt]) == len(inputs)
    assert out["text"][1] == "" and set(out["text"]) <= {"", "alpha", "bravo", "charlie"}
    rows = [json.loads(line) for line in out["jsonl"]]
    assert [row["output"] for row in rows] == out["text"]
    assert rows[1]["confidence"] is None and all(0 < row["confidence"] <= 1 for row in rows if row["input"])
    assert out["tsv"] == [
        f"{w}\t{row['output']}\t{row['confidence']:.6g}" if w else "\t\t" for w, row in zip(inputs, rows)
    ]
    keras_out = invoke("predict", model_dir, "--engine", "keras", input="".join(f"{w}\n" for w in inputs))
    assert keras_out.stdout.split("\n")[:-1] == out["text"]

    test = root / "test.tsv"
    report = invoke("evaluate", model_dir, test, "--errors", 2)
    assert report.exit_code == 0, report.stderr
    assert "accuracy" in report.stdout and "macro-F1" in report.stdout and "confusion" in report.stdout
    as_json = invoke("evaluate", model_dir, test, "--json", "--errors", 2)
    assert as_json.exit_code == 0, as_json.stderr
    d = json.loads(as_json.stdout)
    assert d["n"] == 40 and sum(map(sum, d["confusion"])) == 40
    assert f"{d['accuracy']:.4f}" in report.stdout and f"{d['macro_f1']:.4f}" in report.stdout
    preds = dict(zip((w for w, _ in label_pairs(40, seed=3)), Predictor(model_dir).predict_batch(
        [w for w, _ in label_pairs(40, seed=3)])))
    right = sum(preds[w][0] == label for w, label in label_pairs(40, seed=3))
    assert d["accuracy"] == pytest.approx(right / 40)
    assert len(d["errors"]) == min(2, 40 - right)

    # explain shows the label distribution: the labels predict --nbest ranks, same numbers.
    shown = invoke("explain", model_dir, "abc", "--top", 3)
    assert shown.exit_code == 0, shown.stderr
    nbest = json.loads(invoke("predict", model_dir, "--nbest", 3, "-f", "jsonl", input="abc\n").stdout)["nbest"]
    rows = [l.split() for l in shown.stdout.splitlines()[shown.stdout.splitlines().index("") + 2 :]]
    assert [(r[0], r[1]) for r in rows] == [(c["output"], f"{c['probability']:.4f}") for c in nbest]
    ex = transducer.load(model_dir).explain("abc", top=3)
    assert ex.arch == "label" and ex.output == nbest[0]["output"] == ex.steps[0].symbol
    assert [(c.symbol, round(c.probability, 6)) for c in ex.steps[0].top] == [
        (c["output"], round(c["probability"], 6)) for c in nbest]

    summary = invoke("summarize", model_dir)
    assert summary.exit_code == 0, summary.stderr
    assert "(None, 24)" in summary.stdout and "(None, 3)" in summary.stdout  # bidirectional 2 x 12; 3 labels
    assert "alpha, bravo, charlie" in summary.stdout


def test_scoring_accuracy_macro_f1_and_confusion():
    from transducer.inference.evaluate import score_labels

    pairs = [("a", "x"), ("b", "x"), ("c", "y"), ("d", "y"), ("e", "z"), ("f", "x"), ("f", "y")]
    preds = {"a": "x", "b": "y", "c": "y", "d": "y", "e": "x", "f": "y"}
    r = score_labels(pairs, preds)
    # f has references x and y: "y" is right on both of its lines.
    assert r.labels == ["x", "y", "z"]
    assert r.confusion == [[1, 1, 0], [0, 4, 0], [1, 0, 0]]
    assert r.accuracy == pytest.approx(5 / 7)
    f1 = {"x": 2 * 1 / (2 + 2), "y": 2 * 4 / (4 + 5), "z": 0.0}
    assert r.macro_f1 == pytest.approx(sum(f1.values()) / 3)
    assert [m.input for m in r.mistakes] == ["b", "e"]


def test_streamed_labels_match_the_in_memory_arrays(tmp_path):
    from transducer.training.stream import pairs_dataset, scan_pairs
    from transducer.training.loop import training_arrays

    pairs = label_pairs(50, seed=4) + [("long label", "a label longer than max_len, which is fine")]
    path = write_pairs(tmp_path / "p.tsv", pairs)
    scan = scan_pairs(str(path), MAX_LEN, False, 0.0, 0, labels=True)
    in_vocab, labels = scan.vocabs()
    assert labels.symbols == tuple(sorted({label for _, label in pairs}))
    cfg = ModelConfig(arch="label", max_len=MAX_LEN, input_vocab_size=len(in_vocab), output_vocab_size=len(labels))
    ds = pairs_dataset(scan, cfg, in_vocab, labels, "all", 8, 0, None)
    (want_x,), depths, want_y = training_arrays(cfg, pairs, in_vocab, labels)
    # Batches are length-bucketed and padded to their own longest string: re-pad each row
    # to max_len (with <pad>, id 0) and compare the (input, label) rows.
    got = []
    for x, y in ds:
        ids = np.argmax(x.numpy(), axis=-1)  # (B, T_batch)
        assert ids.shape[1] <= MAX_LEN
        ids = np.pad(ids, [(0, 0), (0, MAX_LEN - ids.shape[1])], constant_values=PAD_ID)
        got += [(tuple(row), int(label)) for row, label in zip(ids, y.numpy())]
    assert sorted(got) == sorted((tuple(row), int(label)) for row, label in zip(want_x, want_y))
    # An empty label is an invalid row, named with its line.
    bad = tmp_path / "bad.tsv"
    bad.write_text("ab\tx\ncd\t\n", encoding="utf-8")
    with pytest.raises(TransducerError, match="line 2: empty label"):
        scan_pairs(str(bad), MAX_LEN, False, 0.0, 0, labels=True)


@pytest.mark.slow
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    import signal

    from conftest import SignalAfterEpoch, weights_of
    from transducer.training.loop import train

    pairs = str(write_pairs(tmp_path / "p.tsv", label_pairs(80, seed=5)))
    mcfg = ModelConfig(arch="label", max_len=MAX_LEN, hidden=6, bidirectional=True)
    tcfg = TrainConfig(epochs=2, batch_size=16, patience=100, seed=3)
    train(pairs, tmp_path / "whole", mcfg, tcfg)
    stopped = train(pairs, tmp_path / "m", mcfg, tcfg, reporter=SignalAfterEpoch(1, signal.SIGTERM))
    assert stopped.interrupted and stopped.epochs_run == 1
    done = train(pairs, tmp_path / "m", mcfg, tcfg, resume=True)
    assert done.resumed_from == 1 and done.epochs_run == 2
    a, b = weights_of(tmp_path / "whole"), weights_of(tmp_path / "m")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.slow  # eager here and in its worker: 20 CPU s against 26 s traced
def test_mirrored_on_two_cpu_devices_matches_one_device(tmp_path):
    """--distribute mirrored trains a label model as one device does with the global batch."""
    import subprocess

    from conftest import GLOBAL, PER_REPLICA, DISTRIBUTED_TRAIN, assert_same_weights, worker_env, worker_cmd
    from transducer.training.loop import train

    # 96 rows, no validation split: every global batch of 16 splits evenly over the two
    # replicas (an uneven last batch fails in Keras's mirrored training, label or not).
    pairs = write_pairs(tmp_path / "p.tsv", label_pairs(96, seed=6))
    model = {"arch": "label", "max_len": MAX_LEN, "hidden": 6, "bidirectional": True}
    run = {**DISTRIBUTED_TRAIN, "val_split": 0.0}
    train(str(pairs), tmp_path / "one", ModelConfig(**model), TrainConfig(**run, batch_size=GLOBAL))
    args = {
        "logical_cpus": 2,
        "pairs": str(pairs),
        "model": model,
        "inputs": ["abc", "cc", "xyb"],
        "runs": [{"model_dir": str(tmp_path / "two"), "train": {**run, "batch_size": PER_REPLICA, "distribute": "mirrored"}}],
    }
    proc = subprocess.run(worker_cmd(args), capture_output=True, text=True, env=worker_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (two,) = json.loads(proc.stdout)
    assert two["counts"]["replicas"] == 2 and two["counts"]["global_batch"] == GLOBAL
    assert_same_weights(tmp_path / "one", two["written"])
    assert two["preds"] == [label for label, _ in Predictor(tmp_path / "one").predict_batch(["abc", "cc", "xyb"])]


@pytest.fixture(scope="module")
def label_predictor(tmp_path_factory):
    model_dir, _ = random_label_model(tmp_path_factory.mktemp("guarantees") / "m", bidirectional=True)
    return Predictor(model_dir)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=documents(), on_long=st.sampled_from(["truncate", "copy"]), batch_size=st.integers(1, 4))
def test_every_line_gets_one_label_in_order(label_predictor, data, on_long, batch_size):
    """predict's guarantee for label models: one output line per input line, in order, in
    every format; a label (or, for an empty line, nothing; a long line under copy, itself)."""
    import io

    from transducer.inference.predict import PredictStats, predict_stream
    from transducer.ui.render import renderer, write_batch

    lines = [raw.decode("utf-8") for raw in expected_raw_lines(data)]
    rendered = {fmt: io.BytesIO() for fmt in ("text", "tsv", "jsonl")}
    render = {fmt: renderer(fmt, "label") for fmt in rendered}
    got = []
    stream = predict_stream(label_predictor.with_options(on_long=on_long, batch_size=batch_size), io.BytesIO(data), "<doc>", PredictStats())
    for batch in stream:
        for fmt, out in rendered.items():
            write_batch(out, batch, render[fmt])
        got += [(p.line_no, p.output if isinstance(p.output, str) else "".join(p.output.pieces())) for p in batch]
    assert [n for n, _ in got] == list(range(1, len(lines) + 1))
    for line, (_, out) in zip(lines, got):
        if line == "":
            assert out == ""
        elif on_long == "copy" and len(line) > MAX_LEN:
            assert out == line
        else:
            assert out in LABELS
    for fmt, out in rendered.items():
        assert out.getvalue().count(b"\n") == len(lines), fmt
    assert rendered["text"].getvalue().decode("utf-8").split("\n")[:-1] == [o for _, o in got]
