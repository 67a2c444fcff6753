"""The CLI end to end, through typer's CliRunner: exit codes, stdout and stderr apart."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import TINY_MAX_LEN, make_pairs, runner, invoke, assert_clean_error, default_sigint, subprocess_env
from transducer.cli import app

# --- startup ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--version"], ["train", "--help"], ["predict", "--help"], ["predict"], ["predict", "m", "--format", "xml"]],
)
def test_help_and_argument_errors_do_not_import_tensorflow(argv):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from transducer.cli import app\n"
        f"r = CliRunner().invoke(app, {argv!r})\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported TF'\n"
        "print(r.exit_code)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("0" if argv[-1] in ("--help", "--version") else "2")


@pytest.mark.parametrize("argv", [["predict", "{model}"], ["train", "--help"], ["train", "p.tsv", "-m", "m", "--hidden", "x"],
                                  ["predict", "{model}", "--beam", "2", "--combine", "vote", "--format", "tsv"]])
def test_a_command_does_not_import_pydantic(tmp_path, argv):
    """Typer converts arguments through pydantic, whose import was the largest part of a
    command's start (ui/help.py's _plain_runtime_param does without it). Predict in a pipe
    draws nothing either, so it does not import rich (ui/render.py imports it on first use)."""
    from conftest import random_model_dir

    model, _ = random_model_dir(tmp_path, "m")
    argv = [a.format(model=model) for a in argv]
    code = (
        "import sys\n"
        f"sys.argv = ['transducer', *{argv!r}]\n"
        "from transducer.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "assert 'pydantic' not in sys.modules, 'imported pydantic'\n"
        + ("assert 'rich' not in sys.modules, 'imported rich'\n" if argv[0] == "predict" else "")
        + "print(code, file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], input="abc\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines()[-1] == ("2" if "x" in argv else "0")


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "transducer", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "predict" in out.stdout


def test_the_command_line_shows_each_command_as_the_whole_app_does():
    """`transducer CMD` builds only CMD's click command (cli._only_the_command): its help,
    its usage errors and the group's own help must read as they do when every command is
    built (CliRunner on the app), and a mistyped command still finds its neighbour."""
    from transducer.cli import app

    code = (
        "import sys\n"
        "from transducer.cli import main\n"
        "sys.argv = ['transducer', *sys.argv[1:]]\n"
        "main()\n"
    )
    env = {**subprocess_env(), "COLUMNS": "80", "TERMINAL_WIDTH": "80"}
    names = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
    cases = [["--help"], ["predct", "m"], ["predict", "--no-such-option"], ["train", "--hidden", "x"]] + [[n, "--help"] for n in names]
    for argv in cases:
        got = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60, env=env)
        want = runner.invoke(app, argv, env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"}, prog_name="transducer")
        assert (got.returncode, got.stdout, got.stderr) == (want.exit_code, want.stdout, want.stderr), argv


# --- train -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.graph  # the compiled training step, as users run it
def test_train_cli_writes_the_model_directory_contract(tmp_path, pairs_file):
    model_dir = tmp_path / "m"
    r = invoke("train", pairs_file, "--model-dir", model_dir, "--hidden", 8, "--epochs", 1, "--max-len", TINY_MAX_LEN)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""  # data only on stdout, and training produces none
    assert "exact match" in r.stderr
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "metrics.json", "model.keras", "weights.npz"]
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["schema_version"] == 1 and cfg["model"]["max_len"] == TINY_MAX_LEN
    assert cfg["input_vocab"][:4] == ["<pad>", "<unk>", "<s>", "</s>"]
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert {"loss", "char_acc", "exact_match", "val_loss", "val_char_acc", "val_exact_match"} <= set(metrics["history"])
    assert not (tmp_path / "m.partial").exists()

    again = invoke("train", pairs_file, "--model-dir", model_dir, "--epochs", 1)
    assert_clean_error(again, "already exists", "--force")


@pytest.mark.slow
def test_train_reads_stdin(tmp_path):
    data = "".join(f"{a}\t{b}\n" for a, b in make_pairs(40))
    r = invoke("train", "-", "--model-dir", tmp_path / "m", "--hidden", 4, "--epochs", 1, "--max-len", TINY_MAX_LEN, input=data)
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "m" / "model.keras").is_file()


@pytest.mark.parametrize(
    "bad_line,fragment",
    [
        ("no tab here", "line 3: no tab"),
        ("a\tb\tc", "line 3: 2 tabs"),
        ("\tempty", "line 3: empty input"),
        ("x" * (TINY_MAX_LEN + 1) + "\tshort", "line 3: input is 13 characters"),
        ("ok\t" + "y" * (TINY_MAX_LEN + 1), "line 3: output is 13 characters"),
    ],
)
def test_invalid_rows_stop_training_with_their_line_number(tmp_path, bad_line, fragment):
    path = tmp_path / "bad.tsv"
    path.write_text(f"ab\tAB\ncd\tCD\n{bad_line}\nef\tEF\n", encoding="utf-8")
    r = invoke("train", path, "--model-dir", tmp_path / "m", "--max-len", TINY_MAX_LEN)
    assert_clean_error(r, fragment, "--skip-invalid", code=2)
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_skip_invalid_trains_on_the_rest_and_says_so(tmp_path):
    rows = [f"{a}\t{b}" for a, b in make_pairs(30)] + ["bad row", "a\tb\tc", "\tx"]
    path = tmp_path / "some_bad.tsv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    r = invoke("train", path, "--model-dir", tmp_path / "m", "--skip-invalid", "--hidden", 4, "--epochs", 1, "--max-len", TINY_MAX_LEN)
    assert r.exit_code == 0, r.stderr
    assert "skipped 3 invalid row(s)" in r.stderr
    assert "line 31" in r.stderr


@pytest.mark.parametrize("content,fragment", [("", "no pairs"), ("just text\nmore text\n", "invalid row")])
def test_empty_or_all_invalid_file_is_a_clear_error(tmp_path, content, fragment):
    path = tmp_path / "x.tsv"
    path.write_text(content, encoding="utf-8")
    assert_clean_error(invoke("train", path, "--model-dir", tmp_path / "m"), fragment)
    assert_clean_error(invoke("train", path, "--model-dir", tmp_path / "m", "--skip-invalid"), "x.tsv")


def test_missing_pairs_file_is_a_clear_error(tmp_path):
    assert_clean_error(invoke("train", tmp_path / "nope.tsv", "--model-dir", tmp_path / "m"), "no such file")


# --- predict -----------------------------------------------------------------------------


INPUTS = ["abc", "", "XYZ", "a", "dead", "ba", "", "e"]


@pytest.mark.parametrize("fmt", ["text", "tsv", "jsonl"])
def test_predict_writes_one_line_per_input_line_in_order(tiny_model, fmt):
    r = invoke("predict", tiny_model, "--format", fmt, input="\n".join(INPUTS) + "\n")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    assert len(lines) == len(INPUTS)
    if fmt == "tsv":
        assert [l.split("\t")[0] for l in lines] == INPUTS
    if fmt == "jsonl":
        rows = [json.loads(l) for l in lines]
        assert [row["input"] for row in rows] == INPUTS
        for row in rows:
            assert set(row) == {"input", "output", "confidence"}
            if row["input"]:
                assert 0.0 < row["confidence"] <= 1.0
            else:
                assert row["output"] == ""
    if fmt == "text":
        assert lines[1] == "" and lines[6] == ""


def test_predict_reads_a_file_argument_and_batches(tiny_model, tmp_path):
    path = tmp_path / "in.txt"
    words = [a for a, _ in make_pairs(250, seed=5)]
    path.write_text("\n".join(words) + "\n", encoding="utf-8")
    r = invoke("predict", tiny_model, path, "--format", "tsv", "--batch-size", 7)
    assert r.exit_code == 0, r.stderr
    assert [l.split("\t")[0] for l in r.stdout.splitlines()] == words


def test_aligned_nbest_in_every_format(tiny_model):
    for fmt in ("text", "tsv", "jsonl"):
        r = invoke("predict", tiny_model, "--nbest", 3, "--format", fmt, input="abc\n\nXe\n")
        assert r.exit_code == 0, r.stderr
        lines = r.stdout.split("\n")[:-1]
        assert len(lines) == 3
        if fmt == "text":
            assert lines[1] == "" and len(lines[0].split("\t")) == 3
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    scores = [c["score"] for c in rows[0]["nbest"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert rows[0]["nbest"][0]["output"] == rows[0]["output"]


def test_long_line_is_an_error_after_earlier_outputs(tiny_model):
    long = "a" * (TINY_MAX_LEN + 5)
    r = invoke("predict", tiny_model, "--batch-size", 2, input=f"abc\nde\nXY\n{long}\ncd\n")
    assert_clean_error(r, "<stdin>:4:", "--on-long", code=1)
    assert len(r.stdout.splitlines()) == 3


def test_long_line_policies(tiny_model):
    long = "abcde" * 4
    data = f"ab\n{long}\nc\n"
    r = invoke("predict", tiny_model, "--on-long", "copy", "--format", "tsv", input=data)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[1] == f"{long}\t{long}"
    assert "copied unchanged" in r.stderr
    r = invoke("predict", tiny_model, "--on-long", "truncate", input=data)
    assert r.exit_code == 0
    assert len(r.stdout.splitlines()) == 3
    assert "truncated" in r.stderr


def test_unknown_characters_warn_once_with_a_count(tiny_model):
    r = invoke("predict", tiny_model, input="a#b\n€€\nab\n")
    assert r.exit_code == 0
    assert len(r.stdout.splitlines()) == 3
    warnings = [l for l in r.stderr.splitlines() if "warning" in l]
    assert len(warnings) == 1 and "3 character(s) on 2 line(s)" in r.stderr


def test_invalid_utf8_names_the_line(tiny_model):
    r = runner.invoke(app, ["predict", str(tiny_model)], input=b"ab\n\xff\xfe\n")
    assert_clean_error(r, "<stdin>:2:", "UTF-8")
    r = runner.invoke(app, ["predict", str(tiny_model), "--encoding-errors", "replace"], input=b"ab\n\xff\xfe\n")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 2


def test_predict_on_a_missing_model_is_a_clear_error(tmp_path):
    assert_clean_error(invoke("predict", tmp_path / "nope", input="a\n"), "no such model directory")


@pytest.mark.parametrize("engine", ["numpy", "keras"])
def test_both_engines_from_the_cli(tiny_model, engine):
    r = invoke("predict", tiny_model, "--engine", engine, "--format", "jsonl", input="abc\nXe\n")
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2


# --- summarize ---------------------------------------------------------------------------


def test_summarize_reproduces_the_classic_table():
    r = invoke("summarize", "--input-size", 15, "--max-len", 64, "--hidden", 16, "--head", "time-distributed", "--no-reset-after")
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""  # the tables are the result: stdout
    text = r.stdout
    for fragment in ("(None, 64, 16)", "1,536", "(None, 64, 15)", "255", "TimeDistributed"):
        assert fragment in text
    r = invoke("summarize", "--input-size", 15, "--hidden", 16, "--head", "time-distributed")
    assert "1,584" in r.stdout
    r = invoke("summarize", "--input-size", 15, "--hidden", 16, "--no-reset-after", "--no-return-sequences")
    assert "(None, 16)" in r.stdout and "(None, 15)" in r.stdout and "1,536" in r.stdout


def test_summarize_a_trained_model(tiny_model):
    r = invoke("summarize", tiny_model)
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""
    for fragment in ("gru_1", "softmax", "input vocab", "max_len"):
        assert fragment in r.stdout
    # How it was trained is the command's result: stdout, readable names with their split.
    for fragment in ("validation exact match (decoded strings)", "training loss", "best epoch", "learning rate"):
        assert fragment in r.stdout


def test_compare_heads_shows_agreement_and_timings():
    r = invoke("summarize", "--compare-heads", "--input-size", 15, "--max-len", 16, "--hidden", 16)
    assert r.exit_code == 0, r.stderr
    assert "max |Dense - TimeDistributed|" in r.stdout
    diff = float(r.stdout.split("over all outputs:")[1].split()[0])
    assert diff < 1e-6
    text = " ".join(r.stdout.split())
    assert "ms/batch" in text and "acts on the last axis" in text


@pytest.mark.slow
def test_ctrl_c_during_predict_exits_130_keeping_written_lines(tiny_model):
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "transducer", "predict", str(tiny_model), "--batch-size", "2"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=default_sigint,
    )
    proc.stdin.write(b"abc\nde\n")  # answered at once (a full batch, and the input pauses)
    proc.stdin.flush()
    first = proc.stdout.readline() + proc.stdout.readline()  # blocks until both are out
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)  # (communicate() would skip what readline() already buffered)
    out, err = proc.stdout.read(), proc.stderr.read()
    assert proc.returncode == 130
    assert len((first + out).splitlines()) == 2
    assert b"Traceback" not in err and b"interrupted" in err


# --- messages, destinations, polish --------------------------------------------------------


def command_flags(name: str) -> set[str]:
    """Every --flag the command `name` accepts (its own --help's options)."""
    from typer.main import get_command

    cmd = get_command(app).commands[name]
    return {o for p in cmd.params for o in (*p.opts, *getattr(p, "secondary_opts", ())) if o.startswith("--")}


def test_no_message_suggests_an_option_its_command_lacks(tiny_model, tmp_path):
    """Provoke each command's errors that advise a flag, and check every --flag in what
    it prints against that command's own options."""
    import re
    import shutil

    bad_rows = tmp_path / "bad.tsv"
    bad_rows.write_text("ab\tAB\nno tab\n" + "x" * (TINY_MAX_LEN + 3) + "\ty\n", encoding="utf-8")
    good_rows = tmp_path / "good.tsv"
    good_rows.write_text("ab\tAB\ncd\tCD\n", encoding="utf-8")
    no_weights = tmp_path / "no_weights"
    shutil.copytree(tiny_model, no_weights)
    (no_weights / "weights.npz").unlink()
    long = "a" * (TINY_MAX_LEN + 3)
    cases = [
        ("train", [bad_rows, "--model-dir", tmp_path / "m1", "--max-len", TINY_MAX_LEN], None),
        ("train", [bad_rows, "--model-dir", tiny_model], None),
        ("train", [bad_rows, "--model-dir", tmp_path / "m2", "--epochs", 0], None),
        ("train", [good_rows, "--model-dir", tmp_path / "m3", "--resume"], None),
        ("predict", [tiny_model], f"ab\n{long}\n"),
        ("predict", [no_weights], "ab\n"),
        ("predict", [tiny_model, "--beam", 2, "--nbest", 3], "ab\n"),
        ("evaluate", [tiny_model, bad_rows], None),
        ("evaluate", [no_weights, bad_rows, "--skip-invalid"], None),
        ("summarize", ["--hidden", 0], None),
        ("explain", [no_weights, "abc"], None),
        ("export", [tmp_path / "nowhere"], None),
    ]
    suggested = set()
    for command, args, stdin in cases:
        r = invoke(command, *args, input=stdin)
        assert r.exit_code != 0, (command, args, r.stdout)
        flags = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", r.stderr))
        assert flags <= command_flags(command), (command, args, flags - command_flags(command), r.stderr)
        suggested |= flags
    # The cases do provoke advice: the check above is not vacuous.
    assert {"--skip-invalid", "--on-long", "--force", "--engine", "--epochs", "--resume"} <= suggested


@pytest.mark.slow
def test_each_command_writes_its_result_on_stdout_and_the_rest_on_stderr(tiny_model, tmp_path):
    """typer's CliRunner (this typer vendors its click: there is no mix_stderr) keeps
    result.stdout and result.stderr apart; result.output would mix them."""
    import shutil

    test = tmp_path / "t.tsv"
    test.write_text("ab\tAB\nab\tBA\n", encoding="utf-8")
    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)

    r = invoke("predict", model, input="ab\na#b\n")  # an unseen character: a warning
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 2 and "warning" in r.stderr
    assert "warning" not in r.stdout

    r = invoke("evaluate", model, test)
    assert r.exit_code == 0 and "exact match" in r.stdout and r.stderr == ""
    r = invoke("evaluate", model, test, "--json")
    assert json.loads(r.stdout)["n"] == 2 and "exact match" in r.stderr  # stdout: exactly the JSON

    r = invoke("summarize", model)
    assert r.exit_code == 0 and "gru_1" in r.stdout and r.stderr == ""

    r = invoke("export", model)
    assert r.exit_code == 0 and r.stdout == f"{model / 'weights.npz'}\n" and r.stderr == ""

    r = invoke("train", test, "--model-dir", tmp_path / "t", "--max-len", TINY_MAX_LEN, "--hidden", 4, "--epochs", 1)
    assert r.exit_code == 0 and r.stdout == "" and "exact match" in r.stderr  # its result is the directory

    for command, args in (("predict", [tmp_path / "nope"]), ("evaluate", [tmp_path / "nope", test]),
                          ("summarize", [tmp_path / "nope"]), ("export", [tmp_path / "nope"])):
        r = invoke(command, *args, input="a\n")
        assert r.exit_code == 2 and r.stdout == "" and "error:" in r.stderr


def test_unseen_characters_are_copied_through_and_named(tiny_model):
    """An aligned model copies an unseen character through at its position and goes on;
    the warning names the characters with counts and the first line holding one."""
    r = invoke("predict", tiny_model, "--format", "tsv", input="ab\nab?cd\n??e\n")
    assert r.exit_code == 0, r.stderr
    outs = [l.split("\t")[1] for l in r.stdout.splitlines()]
    assert outs[2].startswith("??")  # (test_engines checks every position, both engines)
    text = " ".join(r.stderr.split())
    assert "3 character(s) on 2 line(s)" in text and "'?' x3" in text and "first on line 2" in text
    assert "copied through unchanged" in text
    m = invoke("predict", tiny_model, "--unk", "model", input="ab\nab?cd\n??e\n")
    assert m.exit_code == 0 and "?" not in m.stdout and "read as <unk>" in m.stderr


def test_version_completion_and_plain_help():
    from transducer import __version__

    r = invoke("--version")
    assert r.exit_code == 0 and r.stdout == f"transducer {__version__}\n"
    r = invoke("--help")
    assert "--install-completion" in r.stdout and "--show-completion" in r.stdout
    # What the installed completion script asks (through these variables) is answered;
    # --show-completion itself detects the running shell, which a test cannot rely on.
    for words, cword, want in (("transducer pre", "1", "predict"), ("transducer predict m --on", "3", "--on-long"),
                               ("transducer train p --arch ", "4", "aligned\nseq2seq\nlabel\nedit")):  # an Enum's values
        env = {"_TRANSDUCER_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword}
        r = runner.invoke(app, [], prog_name="transducer", env=env)
        assert r.exit_code == 0 and r.stdout == f"{want}\n", (r.stdout, r.stderr)
    for command, usage in (("predict", "[OPTIONS] MODEL_DIR [FILE]"), ("train", "[OPTIONS] PAIRS"),
                           ("evaluate", "[OPTIONS] MODEL_DIR TEST_FILE"), ("summarize", "[OPTIONS] [MODEL_DIR]")):
        r = invoke(command, "--help")
        text = " ".join(r.stdout.split())
        assert f"{command} {usage}" in text, text[:300]
        assert "<bool>" not in r.stdout and "{" not in r.stdout.split("\n\n")[0]


def test_export_help_example_reads_what_the_model_was_trained_on():
    """The example pipes a word into models/translit (trained on the bundled
    sample_data/translit.train.tsv): every character of it is one the model has seen."""
    import re
    from pathlib import Path

    r = runner.invoke(app, ["export", "--help"], env={"COLUMNS": "200"})
    example = next(l.strip() for l in r.stdout.splitlines() if "echo" in l and "|" in l)
    word = re.search(r"echo (\S+) \| transducer predict models/translit", example).group(1)
    data = Path(__file__).resolve().parents[1] / "sample_data" / "translit.train.tsv"
    seen = {c for line in data.read_text(encoding="utf-8").splitlines() for c in line.split("\t")[0]}
    assert word == "привет" and set(word) <= seen


def test_long_lines_are_measured_in_characters_however_long(tiny_model):
    """A line too long to hold (over 4 bytes per character of max_len) is read through to
    count its characters: multi-byte text is reported like any other line."""
    for line, n in (("é" * 20, 20), ("é" * 300, 300), ("👍" * 1000 + "ab", 1002)):
        r = invoke("predict", tiny_model, input=f"ab\n{line}\n")
        assert_clean_error(r, f"<stdin>:2: input is {n} characters", code=1)
        assert "bytes" not in r.stderr


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", "x.tsv", "-m", "m", "--arch", "foo"], "--arch must be one of aligned, seq2seq, label, edit, got 'foo'"),
        (["train", "x.tsv", "-m", "m", "--distribute", "ring"], "--distribute"),
        (["predict"], "Missing argument 'MODEL_DIR'"),
        (["explain", "m", "x", "--top", "0"], "--top"),
        (["nosuch"], "No such command 'nosuch'"),
    ],
)
def test_argument_errors_are_one_line_pointing_at_help(argv, fragment):
    result = invoke(*argv)
    assert result.exit_code == 2 and result.stdout == ""
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0] and "--help'" in lines[0]
    assert "╭" not in result.stderr and "Traceback" not in result.stderr


# --- every option declared once --------------------------------------------------------------

PY_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def cli_params(command: str) -> dict:
    from typer.main import get_command

    return {p.name: p for p in get_command(app).commands[command].params}


@pytest.mark.parametrize(
    "command, source, every_field",
    [("train", "TrainOptions", True), ("predict", "PredictOptions", True), ("evaluate", "PredictOptions", False),
     ("explain", "PredictOptions", False), ("summarize", "TrainOptions", False)],
)
def test_cli_options_are_the_api_fields(command, source, every_field):
    """Each CLI option that is an API option has that field's default, type, help and
    choices, and the command accepts every field of its dataclass (train, predict)."""
    import dataclasses

    from transducer import api
    from transducer.ui.help import choices_of

    options, params = getattr(api, source), cli_params(command)
    shared = [f for f in dataclasses.fields(options) if f.name in params]
    assert shared and (not every_field or len(shared) == len(dataclasses.fields(options)))
    for f in shared:
        p = params[f.name]
        assert p.default == f.default and type(p.default) is type(f.default), f.name
        assert p.help == f.metadata["help"], f.name
        assert p.type_descriptor.annotation is PY_TYPES[f.type.split(" |")[0]], f.name
        assert choices_of(p) is f.metadata["choices"], f.name


def test_train_options_defaults_are_the_configs_or_the_recipes():
    """A TrainOptions field that is a ModelConfig or TrainConfig field has its default and
    type; a None default is the recipe's choice, which yields a value of that type for
    every architecture."""
    import dataclasses

    from transducer.api import Arch, ModelConfig, TrainConfig, TrainOptions, train_configs

    resolved = {arch: train_configs(TrainOptions(arch=arch), frozenset()) for arch in Arch.values()}
    checked = 0
    for f in dataclasses.fields(TrainOptions):
        for k, config in enumerate((ModelConfig, TrainConfig)):
            field = config.__dataclass_fields__.get(f.name)
            if field is None:
                continue
            checked += 1
            kind = PY_TYPES[field.type.split(" |")[0]]
            assert f.type.split(" |")[0] == field.type.split(" |")[0], f.name
            if f.default is not None or field.default is None:
                assert f.default == field.default, f.name
            else:
                assert all(isinstance(getattr(r[k], f.name), kind) for r in resolved.values()), f.name
    assert checked >= 20


def test_cli_only_options_have_the_api_calls_defaults():
    """evaluate's --errors/--skip-invalid and explain's --top are Model.evaluate's and
    Model.explain's keyword arguments, with the same defaults."""
    import inspect

    from transducer.api import Model

    for command, method in (("evaluate", Model.evaluate), ("explain", Model.explain)):
        signature, params = inspect.signature(method).parameters, cli_params(command)
        shared = [n for n, p in params.items() if n in signature and p.param_type_name == "option"]
        assert shared, command
        assert all(params[n].default == signature[n].default for n in shared), command


@pytest.mark.parametrize("argv, option", [(["train", "p", "-m", "m", "--lr-schedule", "step"], "--lr-schedule"),
                                          (["predict", "m", "--unk", "drop"], "--unk"),
                                          (["predict", "m", "-f", "xml"], "--format")])
def test_a_bad_choice_is_refused_by_the_choices_own_check(argv, option):
    """The CLI's parser, the option dataclasses and the configs all call Choice.check: the
    same message everywhere."""
    from transducer.api import Format, LrSchedule, TransducerError, Unk

    kind = {"--lr-schedule": LrSchedule, "--unk": Unk, "--format": Format}[option]
    with pytest.raises(TransducerError) as e:
        kind.check(argv[-1], option)
    assert_clean_error(invoke(*argv), str(e.value), code=2)
