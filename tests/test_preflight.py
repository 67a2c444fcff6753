"""Mistakes in a `train` command are answered before TensorFlow is imported
(training/preflight.py): each is exit code 2, one line on stderr naming the file or
option, nothing on stdout, and no TensorFlow in the process. The CLI runs in a fresh
process (conftest.invoke_in_fresh_process), since this one may have imported TensorFlow."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import example, given, settings, strategies as st

from conftest import LINE, TINY_MAX_LEN, invoke_in_fresh_process, make_pairs, write_pairs
from transducer.api import TrainOptions, train_configs
from transducer.core import artifacts
from transducer.core.config import ModelConfig, TrainConfig, TransducerError
from transducer.core.vocab import Labels, Vocab
from transducer.training import preflight

ROOT_USER = os.geteuid() == 0  # root reads and writes through permission bits: chmod cases skip
SMALL = ["--max-len", TINY_MAX_LEN, "--hidden", 8]


class Scene:
    """Files and directories the mistakes are made with, under one temporary directory."""

    def __init__(self, root: Path):
        self.root = root
        self.ok = write_pairs(root / "ok.tsv", make_pairs(40))
        self.extra = self.write("extra.txt", b"abc\nXY\n")
        self.teacher = self.model_dir("teacher", ModelConfig(max_len=TINY_MAX_LEN, hidden=8))
        self.label_teacher = self.model_dir("label_teacher", ModelConfig(arch="label", max_len=TINY_MAX_LEN, hidden=8))
        self.a_file = self.write("a_file", b"not a directory\n")
        (root / "existing").mkdir()
        (root / "no_config").mkdir()

    def write(self, name: str, data: bytes) -> Path:
        (self.root / name).write_bytes(data)
        return self.root / name

    def model_dir(self, name: str, cfg: ModelConfig) -> Path:
        """A model directory's config.json (all the checks read of it)."""
        in_vocab = Vocab.from_strings(["abcdeXYZ"])
        out_vocab = Labels.from_strings(["x", "y"]) if cfg.arch == "label" else Vocab.from_strings(["ABCDExyz@"])
        cfg = cfg.replace(input_vocab_size=len(in_vocab), output_vocab_size=len(out_vocab))
        path = self.root / name
        path.mkdir()
        artifacts.write_json(path / artifacts.CONFIG, artifacts.config_dict(cfg, in_vocab, out_vocab, {}, {}))
        return path

    def interrupted(self, name: str, hidden: int = 8, ensemble: bool = False, broken: bool = False) -> Path:
        """A model directory path whose DIR.partial holds an interrupted run of
        `train ok.tsv -m DIR --max-len 12 --hidden <hidden>` (or an ensemble's finished
        member; or a checkpoint whose latest.json is cut short)."""
        model_dir = self.root / name
        staging = artifacts.staging_dir(model_dir)
        if broken:
            (staging / "checkpoint").mkdir(parents=True)
            (staging / "checkpoint" / "latest.json").write_text("{")
            return model_dir
        if ensemble:
            (staging / "members" / "1").mkdir(parents=True)
            artifacts.write_json(staging / "members" / "1" / artifacts.CONFIG, {})
            return model_dir
        mcfg, tcfg = train_configs(TrainOptions(max_len=TINY_MAX_LEN, hidden=hidden), frozenset())
        epoch = staging / "checkpoint" / "epoch-0001"
        epoch.mkdir(parents=True)
        identity = {"model": mcfg.to_dict(), "train": {k: v for k, v in tcfg.to_dict().items() if k != "epochs"}}
        artifacts.write_json(epoch / "state.json", {"epoch": 1, "identity": identity})
        artifacts.write_json(staging / "checkpoint" / "latest.json", {"epoch": 1, "dir": "epoch-0001"})
        return model_dir


# Each mistake: scene -> (train's arguments after "train", fragments its error line must hold).
MISTAKES = {
    # the pairs file
    "missing pairs file": lambda s: ([s.root / "nope.tsv", "-m", s.root / "m"], ["nope.tsv: no such file"]),
    "pairs file is a directory": lambda s: ([s.root / "existing", "-m", s.root / "m"], ["existing: is a directory"]),
    "empty pairs file": lambda s: ([s.write("empty.tsv", b""), "-m", s.root / "m"], ["empty.tsv: no pairs"]),
    "blank lines only": lambda s: ([s.write("blank.tsv", b"\n \n\r\n"), "-m", s.root / "m"], ["blank.tsv: no pairs"]),
    "not UTF-8": lambda s: ([s.write("latin1.tsv", "ab\tAB\ncafé\tCAFÉ\n".encode("latin-1")), "-m", s.root / "m"],
                            ["latin1.tsv: 1 invalid row(s): line 2: not valid UTF-8 (byte 4 of the line)", "--skip-invalid"]),
    "rows without a tab": lambda s: ([s.write("notab.tsv", b"ab\tAB\nno tab\nab,AB\n"), "-m", s.root / "m"],
                                     ["notab.tsv: 2 invalid row(s): line 2: no tab", "line 3: no tab"]),
    "a row over --max-len": lambda s: ([s.write("long.tsv", b"ab\tAB\n" + b"x" * 20 + b"\ty\n"), "-m", s.root / "m",
                                        "--max-len", 12], ["line 2: input is 20 characters", "--max-len 20 fits it"]),
    "only invalid rows, skipped": lambda s: ([s.write("allbad.tsv", b"one\ntwo\n"), "-m", s.root / "m", "--skip-invalid"],
                                             ["allbad.tsv: only invalid rows"]),
    "an empty label": lambda s: ([s.write("labels.tsv", b"abc\tx\nabd\t\n"), "-m", s.root / "m", "--arch", "label"],
                                 ["labels.tsv: 1 invalid row(s): line 2: empty label"]),
    # --val-file
    "missing --val-file": lambda s: ([s.ok, "-m", s.root / "m", "--val-file", s.root / "nope_val.tsv"],
                                     ["--val-file", "nope_val.tsv: no such file"]),
    "invalid --val-file": lambda s: ([s.ok, "-m", s.root / "m", "--val-file", s.write("val.tsv", b"just text\n")],
                                     ["--val-file", "val.tsv: 1 invalid row(s): line 1: no tab"]),
    "--val-split with --val-file": lambda s: ([s.ok, "-m", s.root / "m", "--val-file", s.ok, "--val-split", 0.2],
                                              ["--val-split does not apply with --val-file"]),
    "PAIRS and --val-file both stdin": lambda s: (["-", "-m", s.root / "m", "--val-file", "-"],
                                                  ["PAIRS and --val-file cannot both read stdin"]),
    # --init-from
    "missing --init-from": lambda s: ([s.ok, "-m", s.root / "m", "--init-from", s.root / "nowhere"],
                                      ["nowhere: no such model directory"]),
    "--init-from without config.json": lambda s: ([s.ok, "-m", s.root / "m", "--init-from", s.root / "no_config"],
                                                  ["not a model directory (config.json is missing)"]),
    "--init-from of another architecture": lambda s: ([s.ok, "-m", s.root / "m", "--init-from", s.teacher, "--hidden", 4],
                                                      ["--init-from", "architecture differs", "hidden 8 there, 4 here"]),
    # --teacher and --extra-inputs
    "missing --teacher": lambda s: ([s.ok, "-m", s.root / "m", "--teacher", s.root / "nope"],
                                    [f"--teacher {s.root / 'nope'}: no such model directory"]),
    "--teacher without a model": lambda s: ([s.ok, "-m", s.root / "m", "--teacher", s.root / "no_config"],
                                            ["--teacher", "not a model directory"]),
    "a label --teacher for an aligned model": lambda s: ([s.ok, "-m", s.root / "m", "--teacher", s.label_teacher],
                                                         ["is an --arch label model, which cannot teach an --arch aligned"]),
    "--extra-inputs without --teacher": lambda s: ([s.ok, "-m", s.root / "m", "--extra-inputs", s.extra],
                                                   ["--extra-inputs needs --teacher"]),
    "missing --extra-inputs": lambda s: ([s.ok, "-m", s.root / "m", "--teacher", s.teacher, "--extra-inputs",
                                          s.root / "nope.txt"], ["--extra-inputs", "nope.txt: no such file"]),
    "empty --extra-inputs": lambda s: ([s.ok, "-m", s.root / "m", "--teacher", s.teacher, "--extra-inputs",
                                        s.write("none.txt", b"")], ["--extra-inputs", "none.txt: no inputs"]),
    "--teacher-weight without --teacher": lambda s: ([s.ok, "-m", s.root / "m", "--teacher-weight", 0.5],
                                                     ["--teacher-weight needs --teacher"]),
    "--teacher-weight above 1": lambda s: ([s.ok, "-m", s.root / "m", "--teacher", s.teacher, "--teacher-weight", 1.5],
                                           ["--teacher-weight must be in [0, 1], got 1.5"]),
    "--teacher-temperature 0": lambda s: ([s.ok, "-m", s.root / "m", "--teacher", s.teacher, "--teacher-temperature", 0],
                                          ["--teacher-temperature must be a number above 0, got 0.0"]),
    "--teacher-weight at sequence level": lambda s: (
        [s.ok, "-m", s.root / "m", "--teacher", s.teacher, "--teacher-mode", "sequence", "--teacher-weight", 0.5],
        ["--teacher-weight applies to --teacher-mode token only"]),
    "--teacher-temperature at sequence level": lambda s: (
        [s.ok, "-m", s.root / "m", "--teacher", s.teacher, "--teacher-mode", "sequence", "--teacher-temperature", 2],
        ["--teacher-temperature applies to --teacher-mode token only"]),
    # the model directory
    "existing model directory": lambda s: ([s.ok, "-m", s.root / "existing"], ["existing: already exists", "--force"]),
    "a file as the model directory": lambda s: ([s.ok, "-m", s.a_file, "--force"], ["a_file: exists and is not a directory"]),
    "a file in the model directory's path": lambda s: ([s.ok, "-m", s.a_file / "m"], ["a_file: cannot create directory"]),
    "model directory under /proc": lambda s: ([s.ok, "-m", "/proc/m"], ["/proc/m: cannot create the model directory in /proc"]),
    "a file as DIR.partial": lambda s: ([s.ok, "-m", s.write("blocked.partial", b"x").with_name("blocked")],
                                        ["blocked.partial: exists and is not a directory"]),
    # --resume and --force
    "an interrupted run without --resume": lambda s: ([s.ok, "-m", s.interrupted("int1"), *SMALL],
                                                      ["int1.partial holds an interrupted run", "--resume", "--force"]),
    "an interrupted ensemble without --resume": lambda s: ([s.ok, "-m", s.interrupted("ens1", ensemble=True), *SMALL,
                                                            "--ensemble", 2], ["ens1.partial holds an interrupted run"]),
    "--resume with nothing to resume": lambda s: ([s.ok, "-m", s.root / "fresh", "--resume"],
                                                  ["cannot --resume: no checkpoint", "train without --resume"]),
    "--resume --force with nothing to resume": lambda s: ([s.ok, "-m", s.root / "existing", "--resume", "--force"],
                                                          ["cannot --resume: no checkpoint"]),
    "--resume an ensemble with nothing to resume": lambda s: ([s.ok, "-m", s.root / "fresh", "--resume", "--ensemble", 2],
                                                              ["cannot --resume: no interrupted ensemble run"]),
    "--resume with other options": lambda s: ([s.ok, "-m", s.interrupted("int2"), "--max-len", TINY_MAX_LEN, "--hidden", 4,
                                               "--resume"], ["cannot --resume", "hidden was 8, now 4"]),
    "--resume from an unreadable checkpoint": lambda s: ([s.ok, "-m", s.interrupted("int3", broken=True), *SMALL, "--resume"],
                                                         ["unreadable checkpoint", "delete it to start over"]),
    # options
    "--ensemble 0": lambda s: ([s.ok, "-m", s.root / "m", "--ensemble", 0], ["--ensemble must be at least 1"]),
    "--ensemble with multi-worker": lambda s: ([s.ok, "-m", s.root / "m", "--ensemble", 2, "--distribute", "multi-worker"],
                                               ["--ensemble cannot be combined with --distribute multi-worker"]),
    "--attention on an aligned model": lambda s: ([s.ok, "-m", s.root / "m", "--attention", "bahdanau"],
                                                  ["--attention applies to --arch seq2seq only", "aligned"]),
    "--label-smoothing on a label model": lambda s: ([s.ok, "-m", s.root / "m", "--arch", "label", "--label-smoothing", 0.1],
                                                     ["--label-smoothing does not apply to --arch label"]),
    "--lr-patience without plateau": lambda s: ([s.ok, "-m", s.root / "m", "--lr-patience", 3],
                                                ["--lr-patience applies to --lr-schedule plateau only", "constant"]),
    "--head time-distributed on a label model": lambda s: ([s.ok, "-m", s.root / "m", "--arch", "label", "--head",
                                                            "time-distributed"], ["--head time-distributed does not apply"]),
    "--hidden 0": lambda s: ([s.ok, "-m", s.root / "m", "--hidden", 0], ["--hidden must be at least 1"]),
    "--dropout 1": lambda s: ([s.ok, "-m", s.root / "m", "--dropout", 1], ["--dropout must be in [0, 1)"]),
    "--epochs 0": lambda s: ([s.ok, "-m", s.root / "m", "--epochs", 0], ["--epochs must be at least 1"]),
    "--subsample 0": lambda s: ([s.ok, "-m", s.root / "m", "--subsample", 0], ["--subsample must be in (0, 1]"]),
    "--subsample above 1": lambda s: ([s.ok, "-m", s.root / "m", "--subsample", 1.5], ["--subsample must be in (0, 1]"]),
    "--bootstrap with --subsample": lambda s: ([s.ok, "-m", s.root / "m", "--bootstrap", "--subsample", 0.5],
                                               ["--bootstrap and --subsample", "give one"]),
}
# What permission bits forbid: root is not bound by them, so these run only as another user.
CHMOD_MISTAKES = {
    "unreadable pairs file": lambda s: ([_chmod(s.write("secret.tsv", b"ab\tAB\n"), 0o000), "-m", s.root / "m"],
                                        ["secret.tsv: cannot open (Permission denied)"]),
    "read-only parent directory": lambda s: ([s.ok, "-m", _chmod(s.root / "existing", 0o555) / "m"], ["existing: not writable"]),
}


def _chmod(path: Path, mode: int) -> Path:
    path.chmod(mode)
    return path


@pytest.fixture(scope="module")
def answers(tmp_path_factory) -> dict:
    """Every mistake's CLI result, all run in one fresh process (in MISTAKES' order)."""
    scene = Scene(tmp_path_factory.mktemp("preflight"))
    mistakes = {**MISTAKES, **({} if ROOT_USER else CHMOD_MISTAKES)}
    made = {name: make(scene) for name, make in mistakes.items()}
    results = invoke_in_fresh_process([{"args": ["train", *args], "input": ""} for args, _ in made.values()])
    answered = {name: (result, made[name][1]) for name, result in zip(made, results)}
    for path in (scene.root / "existing", scene.root / "secret.tsv"):
        if path.exists():
            path.chmod(0o755)  # so the temporary directory can be removed
    return answered


def _check_answer(answers: dict, mistake: str) -> None:
    result, fragments = answers[mistake]
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    assert result["exit_code"] == 2, result
    assert result["stdout"] == ""
    assert len(lines) == 1 and lines[0].startswith("error: "), result["stderr"]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    first = next((name for name, (r, _) in answers.items() if r["tensorflow"]), None)
    assert not result["tensorflow"], f"TensorFlow was imported, first by the mistake {first!r}"


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_mistake_is_one_line_before_tensorflow(answers, mistake):
    _check_answer(answers, mistake)


@pytest.mark.skipif(ROOT_USER, reason="root reads and writes whatever the permission bits say")
@pytest.mark.parametrize("mistake", list(CHMOD_MISTAKES))
def test_what_permissions_forbid_is_one_line_before_tensorflow(answers, mistake):
    _check_answer(answers, mistake)


# --- the checks as a library ---------------------------------------------------------------


def _request(tmp_path: Path, **kw) -> preflight.Request:
    pairs = write_pairs(tmp_path / "ok.tsv", make_pairs(20))
    return preflight.Request(pairs=str(pairs), model_dir=tmp_path / "m", **kw)


def test_a_sound_run_passes_and_leaves_nothing_behind(tmp_path):
    mcfg, tcfg = ModelConfig(max_len=TINY_MAX_LEN), TrainConfig()
    preflight.check_run(_request(tmp_path), mcfg, tcfg)
    preflight.check_run(_request(tmp_path, force=True), mcfg.replace(arch="seq2seq", attention="none"), tcfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.tsv"]  # the writability probe is gone


def test_resume_with_force_continues_the_interrupted_run(tmp_path):
    """--resume --force is --resume (the guarantees tests rely on it): accepted when the
    checkpoint is this run's."""
    staging = tmp_path / "m.partial" / "checkpoint"
    (staging / "epoch-0001").mkdir(parents=True)
    mcfg, tcfg = ModelConfig(max_len=TINY_MAX_LEN), TrainConfig()
    identity = {"model": mcfg.to_dict(), "train": {k: v for k, v in tcfg.to_dict().items() if k != "epochs"}}
    artifacts.write_json(staging / "epoch-0001" / "state.json", {"identity": identity})
    artifacts.write_json(staging / "latest.json", {"epoch": 1, "dir": "epoch-0001"})
    preflight.check_run(_request(tmp_path, resume=True, force=True), mcfg, TrainConfig(epochs=50))  # --epochs may change


def test_only_the_first_bytes_of_a_large_valid_file_are_read(tmp_path):
    """Valid rows up to the budget: the rest is the scan's. A bad row inside the budget is
    reported with the whole file's counts, as the scan reports it."""
    cfg = ModelConfig(max_len=TINY_MAX_LEN)
    rows = "".join(f"{a}\t{b}\n" for a, b in make_pairs(200))
    (tmp_path / "late.tsv").write_text(rows + "no tab\n", encoding="utf-8")
    preflight.check_pairs(str(tmp_path / "late.tsv"), cfg, skip_invalid=False, budget=100)
    (tmp_path / "early.tsv").write_text("no tab\n" + rows + "no tab either\n", encoding="utf-8")
    with pytest.raises(TransducerError, match=r"2 invalid row\(s\): line 1: no tab .*; line 202: no tab"):
        preflight.check_pairs(str(tmp_path / "early.tsv"), cfg, skip_invalid=False, budget=100)


def test_pipes_are_left_to_training(tmp_path):
    """A pipe (`train <(cat pairs.tsv)`) can be read once: the preflight does not read it."""
    fifo = tmp_path / "pairs.fifo"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # so opening it to read does not block
    try:
        os.write(writer, b"ab\tAB\n")
        preflight.check_pairs(str(fifo), ModelConfig(), skip_invalid=False)
        assert os.read(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK), 100) == b"ab\tAB\n"  # still unread
    finally:
        os.close(writer)


def test_has_checkpoint_agrees_with_training(tmp_path):
    from transducer.training import checkpoint  # imports TensorFlow: this process only

    staging = tmp_path / "m.partial"
    assert preflight.has_checkpoint(staging) == checkpoint.exists(staging) == False  # noqa: E712
    (staging / checkpoint.CHECKPOINT).mkdir(parents=True)
    (staging / checkpoint.CHECKPOINT / checkpoint.LATEST).write_text("{}")
    assert preflight.has_checkpoint(staging) == checkpoint.exists(staging) == True  # noqa: E712


# --- the preflight's verdict on rows is the scan's --------------------------------------------

# Rows that are mostly pairs (some too long once NFD splits "é"), any line at all, a line that
# is not UTF-8, blank lines; joined by \n or \r\n.
PAIR_LINE = st.tuples(st.text("abcXYé", max_size=TINY_MAX_LEN + 2), st.text("ABcx", max_size=TINY_MAX_LEN + 2)).map("\t".join)
ROW = st.one_of(PAIR_LINE, PAIR_LINE, LINE, st.just(""), st.just(" ")).map(lambda l: l.encode("utf-8")) | st.just(b"ab\t\xff")
PAIRS_DOCUMENT = st.tuples(st.lists(ROW, max_size=12), st.sampled_from([b"\n", b"\r\n"])).map(lambda t: t[1].join(t[0]))


@settings(max_examples=150, deadline=None)
@given(data=PAIRS_DOCUMENT, arch=st.sampled_from(["aligned", "label", "seq2seq"]), skip_invalid=st.booleans())
@example(data=b"\xef\xbb\xbf\xef\xbb\xbf", arch="seq2seq", skip_invalid=False)  # a BOM, then U+FEFF in line 1
def test_the_preflight_accepts_and_refuses_rows_as_the_scan_does(tmp_path_factory, data, arch, skip_invalid):
    from transducer.training.stream import scan_pairs  # imports TensorFlow: this process only

    path = tmp_path_factory.mktemp("rows") / "pairs.tsv"
    path.write_bytes(data)
    cfg = ModelConfig(arch=arch, max_len=TINY_MAX_LEN, normalize="nfd" if arch == "seq2seq" else "none")
    verdicts = []
    for check in (lambda: preflight.check_pairs(str(path), cfg, skip_invalid),
                  lambda: scan_pairs(str(path), cfg.max_len, skip_invalid, 0.0, 0, cfg.normalize, arch == "label")):
        try:
            check()
            verdicts.append("ok")
        except TransducerError as e:
            verdicts.append(str(e))
    assert verdicts[0] == verdicts[1]


def test_importing_the_preflight_imports_no_tensorflow():
    import subprocess
    import sys

    from conftest import subprocess_env

    code = "import sys, transducer.training.preflight, transducer.api; print('tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_a_checkpoint_from_before_an_option_existed_resumes_as_its_default():
    """A run interrupted before --bootstrap and --subsample existed trained as their
    defaults do: its identity lacks them, and it may be resumed without them, not with them."""
    from transducer.training.preflight import run_differences

    now = {"model": {"hidden": 8}, "train": {"seed": 1, "bootstrap": False, "subsample": 1.0}}
    before = {"model": {"hidden": 8}, "train": {"seed": 1}}
    assert run_differences(before, now) == []
    bagged = {**now, "train": {**now["train"], "bootstrap": True}}
    assert run_differences(before, bagged) == ["bootstrap was False, now True"]
