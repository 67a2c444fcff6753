"""`transducer evaluate`: the metrics on hand-made cases, and the command end to end."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import make_pairs, write_pairs
from transducer.cli import app
from transducer.evaluate import edit_distance, score

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
