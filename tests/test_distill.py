"""`train --teacher DIR [--extra-inputs FILE]`: the student learns the teacher's outputs."""

import hashlib
import json

import pytest

import transducer
from transducer.core.config import ModelConfig, TrainConfig, TransducerError
from transducer.training.distill import TEACHER_BEAM, distilled_data

from conftest import assert_clean_error, invoke, random_model_dir, write_pairs


def read_rows(path) -> list[tuple[str, str]]:
    return [tuple(line.split("\t")) for line in open(path, encoding="utf-8").read().splitlines()]


@pytest.fixture
def ensemble_teacher(tmp_path):
    """A two-member seq2seq ensemble of random models (input alphabet abcdeg)."""
    teacher, _ = random_model_dir(tmp_path, name="teacher", seed=0)
    random_model_dir(teacher / "members", name="2", seed=1)
    config = json.loads((teacher / "config.json").read_text())
    config["ensemble"] = {"members": 2, "seeds": [0, 1]}
    (teacher / "config.json").write_text(json.dumps(config))
    return teacher


def test_student_data_is_the_teachers_outputs_and_validation_keeps_references(tmp_path, ensemble_teacher):
    words = ["abc", "bad", "cage", "dab", "egg", "face", "bead", "add", "deg", "gab"] * 3
    gold = [(w + str(i), w[::-1]) for i, w in enumerate(words)]  # digits: unknown to the teacher
    pairs = write_pairs(tmp_path / "pairs.tsv", gold)
    (tmp_path / "extra.txt").write_text("bee\n\ncab\n", encoding="utf-8")
    cfg = ModelConfig(arch="seq2seq", max_len=64, normalize="none")
    with distilled_data(str(pairs), ensemble_teacher, str(tmp_path / "extra.txt"), cfg,
                        TrainConfig(val_split=0.3, seed=3), None) as data:
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
def test_train_teacher_writes_a_student_with_its_record(tmp_path, tiny_model, pairs_file):
    extra = tmp_path / "extra.txt"
    extra.write_text("abXY\nZed\n", encoding="utf-8")
    student = tmp_path / "student"
    result = invoke("train", pairs_file, "-m", student, "--hidden", "8", "--epochs", "1",
                    "--teacher", tiny_model, "--extra-inputs", extra, "--log-format", "plain")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    config = json.loads((student / "config.json").read_text())
    record = config["distill"]
    teacher_config = (tiny_model / "config.json").read_bytes()
    assert record["teacher"]["config_sha256"] == hashlib.sha256(teacher_config).hexdigest()
    assert record["teacher"]["members"] == 1
    assert record["extra_inputs"]["n"] == 2
    assert config["data"]["train_file"] == str(pairs_file)
    assert config["data"]["n_train"] == record["pairs"] + 2
    assert len(transducer.load(student).predict(["abc"])) == 1


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


def test_missing_teacher_and_extra_inputs_without_teacher_are_errors(tmp_path, pairs_file):
    result = invoke("train", pairs_file, "-m", tmp_path / "s", "--teacher", tmp_path / "nope")
    assert_clean_error(result, f"--teacher {tmp_path / 'nope'}: no such model directory")
    (tmp_path / "extra.txt").write_text("abc\n")
    with pytest.raises(TransducerError, match="--extra-inputs needs --teacher"):
        transducer.train(pairs_file, tmp_path / "s", extra_inputs=str(tmp_path / "extra.txt"))
