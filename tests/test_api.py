"""The Python API (`import transducer`): what library users rely on.

`load(dir).predict(lines)` equals `transducer predict dir` line for line without
TensorFlow; a model pickles; threads may share it; `train()` with the CLI's options
trains the CLI's model; errors are TransducerError with the CLI's one-line messages.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import transducer
from conftest import TINY_MAX_LEN, make_pairs, write_pairs
from transducer.cli import app
from transducer.core import artifacts

REPO = Path(__file__).resolve().parents[1]
LINES = ["abc", "XYZde", "", "a", "dddddd", "Zz", "abc", "éa"]


def cli(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def test_import_exports_the_api_without_tensorflow():
    code = (
        "import sys, transducer\n"
        "assert callable(transducer.load) and callable(transducer.train)\n"
        "assert issubclass(transducer.TransducerError, Exception)\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_load_and_predict_equal_the_cli_line_for_line_without_tensorflow(tiny_model, tmp_path):
    """In a fresh process (nothing imported yet), the API's outputs equal predict's lines and
    TensorFlow is never imported."""
    lines = LINES + ["x" * (TINY_MAX_LEN + 3)]
    code = (
        "import json, sys, transducer\n"
        f"m = transducer.load({str(tiny_model)!r}, on_long='truncate')\n"
        f"print(json.dumps(m.predict({lines!r})))\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    got, tf_loaded = out.stdout.splitlines()
    assert tf_loaded == "False"
    r = cli("predict", tiny_model, "--on-long", "truncate", input="\n".join(lines) + "\n")
    assert r.exit_code == 0, r.stderr
    assert json.loads(got) == r.stdout.split("\n")[:-1]


@pytest.mark.parametrize("options", [{}, {"beam": 3}, {"nbest": 2, "format": "tsv"}, {"unk": "model"}])
def test_predict_options_match_the_cli(tiny_model, options):
    cli_args = [a for k, v in options.items() for a in (f"--{k}", str(v))]
    options = {k: v for k, v in options.items() if k != "format"}
    model = transducer.load(tiny_model, **options)
    r = cli("predict", tiny_model, *cli_args, input="\n".join(LINES) + "\n")
    assert r.exit_code == 0, r.stderr
    rows = r.stdout.split("\n")[:-1]
    if "nbest" in options:
        want = [[c for c in row.split("\t")[1::2]] for row in rows]
        got = [[c.output for c in cands] for cands in model.predict_nbest(LINES, k=options["nbest"])]
        assert got == want
    else:
        assert model.predict(LINES) == rows


def test_per_call_options_and_nbest_alone_set_the_beam(tiny_model):
    model = transducer.load(tiny_model)
    assert model.predict(LINES, beam=2) == transducer.load(tiny_model, beam=2).predict(LINES)
    cands = model.predict_nbest(["abc"], k=3)[0]
    assert len(cands) == 3 and cands[0].output == model.predict_one("abc", beam=3)
    scores = [c.score for c in cands]
    assert scores == sorted(scores, reverse=True)
    assert model.options.beam == 1  # a per-call option changes nothing for later calls


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m.predict(["x" * (TINY_MAX_LEN + 1)]), "strings:1: input is 13 characters, longer than the model's max_len 12"),
        (lambda m: m.predict(["ok", "two\nlines"]), "strings:2: expected a one-line string"),
        (lambda m: m.predict("abc"), "predict takes a list of strings"),
        (lambda m: m.predict(["a"], beam=0), "beam must be an integer of at least 1"),
        (lambda m: m.predict(["a"], beam=2, nbest=3), "nbest must be at most beam (2)"),
        (lambda m: m.predict(["a"], on_long="cut"), "on_long must be one of error, truncate, copy"),
    ],
)
def test_errors_are_transducer_errors_with_the_cli_message(tiny_model, call, message):
    with pytest.raises(transducer.TransducerError) as e:
        call(transducer.load(tiny_model))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_missing_model_directory_is_the_cli_error(tmp_path):
    with pytest.raises(transducer.TransducerError) as e:
        transducer.load(tmp_path / "nope")
    r = cli("predict", tmp_path / "nope", input="a\n")
    assert r.exit_code != 0 and str(e.value) in r.stderr.replace("\n", " ")


def test_a_model_pickles_and_predicts_the_same(tiny_model):
    model = transducer.load(tiny_model, beam=2)
    twin = pickle.loads(pickle.dumps(model))
    assert twin.options == model.options and twin.path == model.path
    assert twin.predict(LINES) == model.predict(LINES)


def test_threads_share_one_model(tiny_model):
    model = transducer.load(tiny_model)
    want = model.predict(LINES * 20)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: model.predict(LINES * 20), range(8)))
    assert all(g == want for g in got)


def test_evaluate_takes_pairs_or_a_file_and_equals_the_cli_report(tiny_model, tmp_path):
    pairs = make_pairs(40, seed=9)
    path = write_pairs(tmp_path / "test.tsv", pairs)
    model = transducer.load(tiny_model)
    from_rows, from_file = model.evaluate(pairs), model.evaluate(path)
    r = cli("evaluate", tiny_model, path, "--json")
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    for rep in (from_rows, from_file):
        assert rep.n == report["n"] == len(pairs)
        assert rep.exact_match == pytest.approx(report["exact_match"], abs=1e-6)
        assert rep.cer == pytest.approx(report["cer"], abs=1e-6)
    # recomputed from the predictions themselves
    outs = model.predict([a for a, _ in pairs])
    assert from_rows.exact_match == pytest.approx(np.mean([o == b for o, (_, b) in zip(outs, pairs)]))


def test_explain_and_config(tiny_model):
    model = transducer.load(tiny_model)
    ex = model.explain("abc")
    assert ex.output == model.predict_one("abc")
    assert model.config.arch == "aligned" and model.config.max_len == TINY_MAX_LEN
    assert model.members == 1 and "aligned" in repr(model)


# --- training ------------------------------------------------------------------------------


def _weights(model_dir: Path) -> dict:
    with np.load(model_dir / artifacts.WEIGHTS) as w:
        return {k: w[k] for k in w.files}


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["aligned", "seq2seq"])
def test_train_with_the_cli_options_trains_the_cli_model(tmp_path, pairs_file, arch):
    """The same options through train() and `transducer train` give the same weights: the
    per-architecture recipe (seq2seq: NFD, dropout, label smoothing...) included."""
    opts = {"arch": arch, "hidden": 8, "max_len": TINY_MAX_LEN, "epochs": 2, "seed": 4}
    events = []
    model = transducer.train(pairs_file, tmp_path / "api", progress=lambda e, d: events.append(e), **opts)
    args = [a for k, v in opts.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    r = cli("train", pairs_file, "-m", tmp_path / "cli", *args)
    assert r.exit_code == 0, r.stderr
    api_w, cli_w = _weights(tmp_path / "api"), _weights(tmp_path / "cli")
    assert api_w.keys() == cli_w.keys() and all(np.array_equal(api_w[k], cli_w[k]) for k in api_w)
    assert events[0] == "start" and events.count("epoch") >= 1
    cfg = json.loads((tmp_path / "api" / artifacts.CONFIG).read_text())
    assert cfg == {**json.loads((tmp_path / "cli" / artifacts.CONFIG).read_text()), "data": cfg["data"]}
    assert model.predict(["abc"]) == transducer.load(tmp_path / "cli").predict(["abc"])


@pytest.mark.slow
def test_train_takes_pairs_in_memory_and_refuses_unknown_options(tmp_path):
    with pytest.raises(transducer.TransducerError, match="unknown option.*hiden"):
        transducer.train([("a", "b")], tmp_path / "m", hiden=8)
    with pytest.raises(transducer.TransducerError, match="pairs row 2"):
        transducer.train([("a", "b"), ("a\tb", "c")], tmp_path / "m")
    model = transducer.train(make_pairs(120), tmp_path / "m", hidden=8, max_len=TINY_MAX_LEN, epochs=1)
    assert model.predict(["abc", "dd"]) == transducer.load(tmp_path / "m").predict(["abc", "dd"])
    data = json.loads((tmp_path / "m" / artifacts.CONFIG).read_text())["data"]
    assert data["n_train"] + data["n_val"] == 120 and data["n_val"] > 0


# --- ensembles read their data as their members do -------------------------------------------


@pytest.mark.slow
def test_label_ensemble_accepts_labels_longer_than_max_len(tmp_path):
    """Labels may be longer than --max-len (they are not strings of characters): the
    ensemble's own validation must read them as its members do."""
    pairs = [(w, "label-number-one" if w[0] in "abc" else "label-number-two") for w, _ in make_pairs(200, seed=2)]
    model = transducer.train(pairs, tmp_path / "m", arch="label", max_len=8, hidden=8, epochs=1, ensemble=2)
    assert model.members == 2
    assert set(model.predict(["abc", "XYZ"])) <= {"label-number-one", "label-number-two"}


@pytest.mark.slow
def test_nfd_ensemble_validates_on_its_members_split(tmp_path):
    """seq2seq normalizes to NFD before splitting: the ensemble's own metrics come from the
    same held-out rows its members validated on."""
    words = [w for w, _ in make_pairs(240, seed=5)]
    pairs = [(w.replace("a", "á").replace("e", "ë"), unicodedata.normalize("NFC", w.upper())) for w in words]
    transducer.train(pairs, tmp_path / "m", arch="seq2seq", max_len=TINY_MAX_LEN, hidden=8, epochs=1, ensemble=2)
    config = json.loads((tmp_path / "m" / artifacts.CONFIG).read_text())
    metrics = json.loads((tmp_path / "m" / artifacts.METRICS).read_text())
    assert metrics["ensemble"]["n_val"] == config["data"]["n_val"]


def test_docstring_examples_run(tiny_model):
    """The API's docstring examples are tests: they run on a small model."""
    import doctest

    import transducer.api

    globs = {"model_dir": str(tiny_model), "model": transducer.api.load(tiny_model)}
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(transducer.api, globs=globs) if t.examples]
    assert len(tests) >= 2
    for test in tests:
        runner.run(test)
    assert runner.failures == 0 and runner.tries >= 6


# --- options and errors for Python callers ---------------------------------------------------


@pytest.mark.parametrize(
    "call, said",
    [
        (lambda d, m: transducer.load(d, beem=3), "load() got an unknown option 'beem' (did you mean 'beam'?)"),
        (lambda d, m: m.predict(["a"], beem=3), "predict() got an unknown option 'beem' (did you mean 'beam'?)"),
        (lambda d, m: m.predictions(["a"], beem=3), "predictions() got an unknown option 'beem' (did you mean 'beam'?)"),
        (lambda d, m: m.predict_one("a", beem=3), "predict() got an unknown option 'beem' (did you mean 'beam'?)"),
        (lambda d, m: m.predict_nbest(["a"], k=2, beem=3),
         "predict_nbest() got an unknown option 'beem' (did you mean 'beam'?)"),
        (lambda d, m: m.evaluate([("a", "A")], beem=3), "evaluate() got an unknown option 'beem' (did you mean 'beam'?)"),
        (lambda d, m: transducer.train([("a", "A")], d / "never", hiden=3),
         "train() got an unknown option 'hiden' (did you mean 'hidden'?)"),
        (lambda d, m: transducer.network_summary(15, layer=3),
         "network_summary() got an unknown option 'layer' (did you mean 'layers'?)"),
    ],
)
def test_an_unknown_option_is_a_transducer_error_naming_the_closest(tiny_model, call, said):
    with pytest.raises(transducer.TransducerError) as e:
        call(tiny_model, transducer.load(tiny_model))
    assert str(e.value) == said
    assert not (tiny_model / "never").exists()


def test_an_unknown_option_with_nothing_close_lists_the_valid_ones(tiny_model):
    with pytest.raises(transducer.TransducerError, match=r"load\(\) got an unknown option 'zzz'; it takes batch_size, "):
        transducer.load(tiny_model, zzz=1)
    with pytest.raises(transducer.TransducerError, match=r"got unknown options 'beem' \(did you mean 'beam'\?\), 'zzz'; it"):
        transducer.load(tiny_model, zzz=1, beem=2)
    with pytest.raises(transducer.TransducerError, match=r"'hiden' \(did you mean 'hidden'\?\)"):
        transducer.train([("a", "A")], tiny_model / "never", hiden=8)


@pytest.mark.parametrize(
    "cli, python",
    [
        ("m: already exists; pass --force to replace it", "m: already exists; pass force=True to replace it"),
        ("longer than --max-len 12; --max-len 19 fits it", "longer than max_len=12; max_len=19 fits it"),
        ("--nbest must be at most --beam (2)", "nbest must be at most beam (2)"),
        ("use --on-long truncate or --on-long copy", "use on_long='truncate' or on_long='copy'"),
        ("--no-reset-after; --skip-invalid, --resume.", "reset_after=False; skip_invalid=True, resume=True."),
        ("--lr-factor must be in (0, 1); see --help", "--lr-factor must be in (0, 1); see --help"),  # no such argument
        ("--init-from models/x: differs (--max-len, --arch)", "init_from models/x: differs (max_len, arch)"),
        ("--learning-rate 3e-3 --dropout 0.1 --head time-distributed",
         "learning_rate=3e-3 dropout=0.1 head='time-distributed'"),
    ],
)
def test_messages_name_python_arguments_for_python_callers(cli, python):
    from transducer.api import python_words

    assert python_words(cli) == python


def test_the_cli_and_the_api_word_the_same_error_each_their_way(tiny_model):
    """One error, two faces: the CLI names its options, the API its arguments (and keeps
    the CLI's words in cli_message)."""
    with pytest.raises(transducer.TransducerError) as e:
        transducer.load(tiny_model, beam=2, nbest=3)
    assert str(e.value) == "nbest must be at most beam (2)"
    assert e.value.cli_message == "--nbest must be at most --beam (2)"
    r = cli("predict", tiny_model, "--beam", 2, "--nbest", 3, input="a\n")
    assert r.exit_code == 2 and r.stderr.strip() == "error: --nbest must be at most --beam (2)"

    long = "x" * (TINY_MAX_LEN + 1)
    with pytest.raises(transducer.TransducerError) as e:
        transducer.load(tiny_model).predict([long])
    assert "use on_long='truncate' or on_long='copy'" in str(e.value) and "--" not in str(e.value)
    r = cli("predict", tiny_model, input=long + "\n")
    assert r.exit_code == 1 and "use --on-long truncate or --on-long copy" in " ".join(r.stderr.split())


@pytest.mark.slow
def test_training_errors_name_python_arguments(tmp_path):
    """The errors of train() a Python caller fixes with an argument name it: force=True,
    max_len=; the CLI's words for the same mistakes are unchanged."""
    long_rows = [("ab", "AB"), ("a" * 15, "A"), ("b", "B" * 19)]
    with pytest.raises(transducer.TransducerError) as e:
        transducer.train(long_rows, tmp_path / "m", max_len=TINY_MAX_LEN)
    assert "longer than max_len=12" in str(e.value) and "max_len=19 fits it" in str(e.value)
    assert "skip_invalid=True" in str(e.value) and "--" not in str(e.value)
    (tmp_path / "m").mkdir()
    with pytest.raises(transducer.TransducerError) as e:
        transducer.train(make_pairs(20), tmp_path / "m", max_len=TINY_MAX_LEN)
    assert str(e.value) == f"{tmp_path / 'm'}: already exists; pass force=True to replace it"
    pairs = write_pairs(tmp_path / "p.tsv", make_pairs(20))
    r = cli("train", pairs, "-m", tmp_path / "m", "--max-len", TINY_MAX_LEN)
    assert r.exit_code == 2 and f"{tmp_path / 'm'}: already exists; pass --force to replace it" in " ".join(r.stderr.split())


@pytest.mark.parametrize("options", [{"beam": 3, "nbest": 2}, {"nbest": 3}])
def test_predict_with_nbest_writes_what_the_cli_writes(tiny_model, options):
    """nbest > 1: each output is the line `transducer predict` writes, its candidates
    tab-separated, best first."""
    args = [a for k, v in options.items() for a in (f"--{k}", str(v))]
    r = cli("predict", tiny_model, *args, input="\n".join(LINES) + "\n")
    assert r.exit_code == 0, r.stderr
    got = transducer.load(tiny_model).predict(LINES, **options)
    assert got == r.stdout.split("\n")[:-1]
    assert all(o.count("\t") == options["nbest"] - 1 for o in got if o)
    assert transducer.load(tiny_model, **options).predict_one(LINES[0]) == got[0]


@pytest.mark.slow
def test_train_shows_progress_on_stderr_only_when_asked(tmp_path, capsys):
    opts = dict(hidden=4, max_len=TINY_MAX_LEN, epochs=2, seed=1)
    transducer.train(make_pairs(60), tmp_path / "quiet", **opts)
    quiet = capsys.readouterr()
    assert quiet.out == "" and quiet.err == ""
    transducer.train(make_pairs(60), tmp_path / "shown", progress=True, **opts)
    shown = capsys.readouterr()
    assert shown.out == ""
    epochs = [l for l in shown.err.splitlines() if l.startswith("epoch ")]
    assert [l.split()[1] for l in epochs] == ["1/2", "2/2"], shown.err
    assert "training on" in shown.err and "loss" in epochs[0]


def test_summaries_and_export_are_api_calls(tiny_model, tmp_path):
    """The CLI's summarize --json and export go through the API: the same values."""
    import shutil

    summary = transducer.summary(tiny_model)
    r = cli("summarize", tiny_model, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["best_epoch"] == summary.best_epoch == summary.to_dict()["best_epoch"]
    with pytest.raises(transducer.TransducerError, match="no such model directory"):
        transducer.summary(tmp_path / "nope")
    with pytest.raises(transducer.TransducerError, match="head='time-distributed' does not apply to arch='label'"):
        transducer.network_summary(15, arch="label", head="time-distributed")
    with pytest.raises(transducer.TransducerError, match="no such model directory"):
        transducer.export(tmp_path / "nope")
    copy = shutil.copytree(tiny_model, tmp_path / "m")
    (copy / artifacts.WEIGHTS).unlink()
    assert transducer.export(copy) == [copy / artifacts.WEIGHTS]
    assert transducer.load(copy).predict(LINES) == transducer.load(tiny_model).predict(LINES)
