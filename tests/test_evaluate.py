"""`transducer evaluate`: the metrics on hand-made cases, and the command end to end."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import make_pairs, write_pairs
from transducer.cli import app
from transducer.inference.evaluate import edit_distance, score

runner = CliRunner()


@pytest.mark.parametrize(
    "a,b,d",
    [("", "", 0), ("abc", "", 3), ("", "ab", 2), ("kitten", "sitting", 3), ("flaw", "lawn", 2), ("abc", "abc", 0)],
)
def test_edit_distance(a, b, d):
    assert edit_distance(a, b) == d == edit_distance(b, a)


def test_metrics_on_hand_made_cases_with_several_references():
    pairs = [("a", "x"), ("a", "y"), ("b", "hello"), ("c", "abc")]
    report = score(pairs, {"a": "y", "b": "hallo", "c": ""})
    # both lines of "a" are right: "y" is one of its references
    assert report.n == 4 and report.n_inputs == 3
    assert report.exact_match == pytest.approx(0.5) and report.wer == pytest.approx(0.5)
    # edits against the closest reference: a->y 0 (twice, length 1 each), b 1 of 5, c 3 of 3
    assert report.cer == pytest.approx((0 + 0 + 1 + 3) / (1 + 1 + 5 + 3))
    assert [(m.input, m.reference, m.prediction) for m in report.mistakes] == [("c", "abc", ""), ("b", "hello", "hallo")]


def test_cer_uses_the_closest_reference():
    report = score([("w", "abcdef"), ("w", "abd")], {"w": "abx"})
    assert report.exact_match == 0.0
    assert report.cer == pytest.approx((1 + 1) / (3 + 3))  # "abd" is closer for both lines
    assert report.mistakes[0].reference == "abd"


def test_perfect_predictions():
    report = score([("a", "b"), ("c", "")], {"a": "b", "c": ""})
    assert (report.exact_match, report.wer, report.cer, report.mistakes) == (1.0, 0.0, 0.0, [])


def test_evaluate_cli_json_matches_predict(tiny_model, tmp_path):
    test = write_pairs(tmp_path / "test.tsv", make_pairs(40, seed=9))
    r = runner.invoke(app, ["evaluate", str(tiny_model), str(test), "--json", "--errors", "3"])
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)  # stdout is exactly one JSON object
    assert report["n"] == 40
    for key in ("exact_match", "wer", "cer"):
        assert 0.0 <= report[key] <= 1.0
    assert report["wer"] == pytest.approx(1 - report["exact_match"])
    assert "exact match" in r.stderr and "character error rate" in r.stderr

    pairs = make_pairs(40, seed=9)
    p = runner.invoke(app, ["predict", str(tiny_model)], input="".join(f"{a}\n" for a, _ in pairs))
    outputs = p.stdout.splitlines()
    expected = sum(o == ref for o, (_, ref) in zip(outputs, pairs)) / 40
    assert report["exact_match"] == pytest.approx(expected)
    wrong = [(a, o) for o, (a, ref) in zip(outputs, pairs) if o != ref]
    assert len(report["errors"]) == min(3, len(wrong))
    for e in report["errors"]:
        assert (e["input"], e["prediction"]) in wrong


def test_evaluate_bad_test_file_names_the_line(tiny_model, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("ab\tAB\nno tab here\n", encoding="utf-8")
    r = runner.invoke(app, ["evaluate", str(tiny_model), str(bad)])
    assert r.exit_code != 0 and "Traceback" not in r.stderr
    assert "bad.tsv" in r.stderr and "line 2: no tab" in " ".join(r.stderr.split())
    assert r.stdout == ""


def test_evaluate_help_does_not_import_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from transducer.cli import app\n"
        "r = CliRunner().invoke(app, ['evaluate', '--help'])\n"
        "assert r.exit_code == 0 and 'tensorflow' not in sys.modules, 'imported TF'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_evaluate_report_is_the_result_on_stdout(tiny_model, tmp_path):
    """`evaluate m t.tsv > report.txt` keeps the table; --json numbers carry no float noise."""
    test = write_pairs(tmp_path / "test.tsv", make_pairs(30, seed=2))
    r = runner.invoke(app, ["evaluate", str(tiny_model), str(test), "--errors", "2"])
    assert r.exit_code == 0, r.stderr
    assert "exact match" in r.stdout and "character error rate" in r.stdout and r.stderr == ""
    r = runner.invoke(app, ["evaluate", str(tiny_model), str(test), "--json"])
    report = json.loads(r.stdout)
    for key in ("exact_match", "wer", "cer"):
        assert report[key] == float(f"{report[key]:.6g}")  # 6 significant digits at most
        assert len(json.dumps(report[key])) <= 9  # e.g. 0.0233333, never 0.020000000000000018


def test_evaluate_input_options_apply_to_the_test_file(tiny_model, tmp_path):
    long = "abcde" * 4  # 20 characters, over the model's max_len 12
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(b"ab\tAB\nno tab here\n" + f"{long}\t{long.upper()}\n".encode() + b"c\xffd\tCD\nXe\txE\n")
    r = runner.invoke(app, ["evaluate", str(tiny_model), str(bad)])
    assert r.exit_code == 2 and r.stdout == ""
    text = " ".join(r.stderr.split())
    assert "3 invalid row(s): line 2: no tab" in text and "line 3: input is 20 characters" in text
    assert "line 4: not valid UTF-8" in text and "--skip-invalid" in text and "--on-long" in text

    r = runner.invoke(app, ["evaluate", str(tiny_model), str(bad), "--skip-invalid", "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["n"] == 2 and "skipped 3 invalid row(s)" in r.stderr

    r = runner.invoke(app, ["evaluate", str(tiny_model), str(bad), "--skip-invalid", "--json",
                            "--on-long", "copy", "--encoding-errors", "replace", "--errors", "9"])
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["n"] == 4  # the long input and the U+FFFD one are scored too
    copied = [e for e in report["errors"] if e["input"] == long]
    assert copied and copied[0]["prediction"] == long  # copied unchanged, so wrong here

    r = runner.invoke(app, ["evaluate", str(tiny_model), str(bad), "--skip-invalid", "--json", "--on-long", "truncate", "--errors", "9"])
    p = runner.invoke(app, ["predict", str(tiny_model), "--on-long", "truncate"], input=f"{long}\n")
    assert r.exit_code == 0 and json.loads(r.stdout)["n"] == 3
    truncated = [e for e in json.loads(r.stdout)["errors"] if e["input"] == long]
    assert truncated and truncated[0]["prediction"] == p.stdout.rstrip("\n")  # as predict truncates it
