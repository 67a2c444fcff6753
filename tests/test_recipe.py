"""The seq2seq training recipe (early stopping, learning-rate schedule, label smoothing),
--init-from and --normalize."""

from __future__ import annotations

import json
import math
import signal
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import SignalAfterEpoch, write_pairs
from transducer.core import artifacts, normalization
from transducer.training import recipe
from transducer.cli import app
from transducer.core.config import ModelConfig, TrainConfig

runner = CliRunner()
SEQ2SEQ = TrainConfig(**recipe.train_defaults("seq2seq"))
CLASSIC = TrainConfig()  # the aligned model's defaults: absolute min_delta, constant LR


def invoke(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for f in fragments:
        assert f in result.stderr, result.stderr


def run_epochs(cfg: TrainConfig, losses, exacts=None):
    """Feed per-epoch validation losses (and exact matches) to judge until it stops."""
    progress = recipe.Progress(history={"val_loss": []})
    decisions = []
    for epoch, loss in enumerate(losses, 1):
        exact = exacts[epoch - 1] if exacts else None
        decisions.append(recipe.judge(cfg, progress, epoch, loss, exact))
        if decisions[-1].stop:
            break
    return progress, decisions


# --- early stopping -------------------------------------------------------------------------


def test_a_small_loss_still_falling_by_a_fraction_keeps_training():
    # 10% better every epoch, from 4e-3: below the classic absolute min_delta (1e-3) the
    # drops stop counting, but relative to the loss they are large.
    losses = [4e-3 * 0.9**e for e in range(20)]
    progress, decisions = run_epochs(SEQ2SEQ, losses)
    assert progress.epochs_run == 20 and not progress.stopped_early
    assert progress.best_epoch == 20 and all(d.keep_weights for d in decisions)
    classic, _ = run_epochs(CLASSIC, losses)
    assert classic.stopped_early and classic.epochs_run < 20


def test_a_loss_that_stops_improving_by_the_fraction_stops_with_the_reason():
    losses = [1.0, 0.5, 0.25, 0.2499, 0.2498, 0.2499, 0.2497, 0.2497]  # drops < 0.1% after epoch 3
    progress, decisions = run_epochs(SEQ2SEQ, losses)
    assert progress.stopped_early and progress.epochs_run == 3 + SEQ2SEQ.patience
    # Every drop still keeps the better weights, though it does not count as progress.
    assert progress.best_epoch == 7 and progress.best == pytest.approx(0.2497)
    assert progress.stop_reason == (
        "validation loss did not improve by 0.1% for 4 epoch(s) (--patience 4), though it still fell in the last"
        " one (best loss 0.2497, kept from epoch 7, the last)"
    )


def test_the_stop_message_says_whether_the_loss_rose_and_the_last_epoch_is_no_early_stop():
    # The run: the loss fell every epoch, by less than the absolute 1e-3 at the end.
    falling = [0.02, 0.01, 0.004, 0.0015, 0.0012, 0.0008394, 0.0007]
    progress, _ = run_epochs(CLASSIC, falling)
    assert progress.stopped_early and progress.epochs_run == 6 and progress.best_epoch == 6
    assert "though it still fell in the last one" in progress.stop_reason and "epoch 6, the last" in progress.stop_reason
    rose, _ = run_epochs(CLASSIC, [0.5, 0.2, 0.3, 0.4])
    assert rose.stopped_early and rose.stop_reason.endswith("(best loss 0.2, kept from epoch 2)")
    # Patience runs out exactly on the last of --epochs: all epochs were run, no early stop.
    last, decisions = run_epochs(TrainConfig(epochs=4), [0.5, 0.2, 0.3, 0.4])
    assert last.epochs_run == 4 and not last.stopped_early and not decisions[-1].stop and last.stop_reason == ""


def test_a_rising_exact_match_counts_as_improvement_and_picks_the_kept_weights():
    losses = [1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    exacts = [0.1, 0.5, 0.6, 0.7, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]
    progress, _ = run_epochs(SEQ2SEQ, losses, exacts)
    assert progress.epochs_run == 5 + SEQ2SEQ.patience and progress.best_epoch == 5
    assert "validation exact match did not rise" in progress.stop_reason
    assert "best exact match 0.8, kept from epoch 5" in progress.stop_reason


def test_progress_state_survives_json():
    progress, _ = run_epochs(SEQ2SEQ, [1.0, 0.9])
    restored = recipe.Progress()
    restored.load_state(json.loads(json.dumps(recipe.Progress().state())))  # infinities -> None -> back
    assert restored.best == math.inf and restored.best_exact == -math.inf
    restored.load_state(json.loads(json.dumps(progress.state())))
    assert restored == progress


# --- learning-rate schedule ----------------------------------------------------------------------


def test_plateau_halves_after_lr_patience_epochs_without_improvement():
    cfg = TrainConfig(**{**recipe.train_defaults("seq2seq"), "patience": 5, "lr_patience": 2})
    losses = [1.0, 0.5, 0.5, 0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]
    _, decisions = run_epochs(cfg, losses)
    assert [d.lower_lr for d in decisions] == [False, False, False, True, False, False, True, False, True, False]
    assert decisions[-1].stop and len(decisions) == 10
    _, constant = run_epochs(TrainConfig(**{**cfg.to_dict(), "lr_schedule": "constant"}), losses)
    assert not any(d.lower_lr for d in constant)


def test_cosine_falls_from_the_learning_rate_towards_zero_over_the_epochs():
    cfg = TrainConfig(epochs=4, learning_rate=0.004, lr_schedule="cosine")
    rates = [recipe.scheduled_rate(cfg, e) for e in range(1, 5)]
    assert rates == pytest.approx([0.004, 0.002 * (1 + math.cos(math.pi / 4)), 0.002, 0.002 * (1 - math.cos(math.pi / 4))])
    assert all(a > b > 0 for a, b in zip(rates, rates[1:]))
    assert recipe.scheduled_rate(TrainConfig(lr_schedule="plateau"), 3) is None
    assert recipe.scheduled_rate(TrainConfig(), 3) is None
    _, decisions = run_epochs(TrainConfig(**{**recipe.train_defaults("seq2seq"), "lr_schedule": "cosine"}), [1.0, 1.0, 1.0])
    assert not any(d.lower_lr for d in decisions)  # no plateau halving on top of the curve


def test_resolve_fills_in_the_defaults_of_the_chosen_architecture():
    base = dict(max_len=8, hidden=4, layers=1, bidirectional=False, reset_after=True, head="dense",
                attention="luong", normalize=None)
    s2s, s2s_train = recipe.resolve({**base, "arch": "seq2seq"}, None, {"patience": None, "epochs": 3})
    assert (s2s.dropout, s2s.normalize, s2s_train.patience, s2s_train.lr_schedule) == (0.1, "nfd", 4, "plateau")
    assert s2s_train.epochs == 3 and s2s_train.init_from is None
    aligned, aligned_train = recipe.resolve({**base, "arch": "aligned"}, None, {})
    assert (aligned.dropout, aligned.normalize, aligned_train.patience, aligned_train.lr_schedule) == (0.0, "none", 2, "constant")
    chosen, chosen_train = recipe.resolve({**base, "arch": "seq2seq", "normalize": "nfc"}, 0.3, {"lr_schedule": "cosine"})
    assert (chosen.dropout, chosen.normalize, chosen_train.lr_schedule, chosen_train.patience) == (0.3, "nfc", "cosine", 4)


# --- label smoothing -----------------------------------------------------------------------------


def test_label_smoothed_loss_matches_hand_computed_numbers():
    from transducer.networks.build import sequence_loss

    probs = np.array([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]], dtype="float32")  # (1, 2, 3)
    y = np.array([[0, 2]])
    e = 0.3
    by_hand = np.mean([
        (1 - e) * -np.log(p[t]) + e * np.mean(-np.log(p)) for p, t in zip(probs[0], y[0])
    ])
    loss = sequence_loss(masked=False, label_smoothing=e)(y, probs)
    assert float(np.asarray(loss)[0]) == pytest.approx(by_hand, rel=1e-5)
    plain = np.mean([-np.log(p[t]) for p, t in zip(probs[0], y[0])])
    assert float(np.asarray(sequence_loss(masked=False)(y, probs))[0]) == pytest.approx(plain, rel=1e-5)


# --- --init-from -------------------------------------------------------------------------------

PAIRS = [("ab", "xy"), ("ba", "yx"), ("aab", "xxy"), ("bba", "yyx"), ("abab", "xyxy")] * 8
SMALL = ["--arch", "seq2seq", "--max-len", 6, "--hidden", 8, "--batch-size", 8, "--seed", 3]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A seq2seq model trained for a few epochs through the CLI, stopping early: any
    relative drop under 90% is no improvement."""
    root = tmp_path_factory.mktemp("init")
    data = write_pairs(root / "pairs.tsv", PAIRS)
    model_dir = root / "source"
    r = invoke("train", data, "-m", model_dir, *SMALL, "--epochs", 4, "--patience", 1, "--min-delta", 0.9)
    assert r.exit_code == 0, r.stderr
    assert "(early stopping: validation loss did not improve by 90% and validation exact match did not rise for 1 epoch(s)" in " ".join(r.stderr.split())
    assert "learning_rate 0.003" in r.stderr  # the learning rate is in the progress line
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["stop_reason"] and len(metrics["history"]["learning_rate"]) == metrics["epochs_run"]
    return model_dir


@pytest.mark.slow
def test_init_from_starts_from_the_source_weights(source, tmp_path):
    from transducer.training.loop import train

    data = write_pairs(tmp_path / "more.tsv", PAIRS[:20])
    tiny_lr = TrainConfig(epochs=1, batch_size=8, learning_rate=1e-12, init_from=str(source))
    cfg = ModelConfig(arch="seq2seq", max_len=6, hidden=8, normalize="nfd", dropout=0.3)
    train(str(data), tmp_path / "continued", cfg, tiny_lr)
    before, after = np.load(source / "weights.npz"), np.load(tmp_path / "continued" / "weights.npz")
    assert before.files == after.files
    for k in before.files:  # one step of 1e-12 leaves the source's weights
        np.testing.assert_allclose(after[k], before[k], atol=1e-8)
    fresh = TrainConfig(epochs=1, batch_size=8, learning_rate=1e-12)
    train(str(data), tmp_path / "fresh", cfg.replace(dropout=0.3), fresh)
    with np.load(tmp_path / "fresh" / "weights.npz") as f:
        assert any(not np.allclose(f[k], before[k], atol=1e-3) for k in before.files)


@pytest.mark.slow
def test_init_from_an_ensemble_continues_every_member(tmp_path):
    """Member k of the new model starts from member k of the old one, and the new model
    has as many members unless --ensemble says otherwise."""
    data = write_pairs(tmp_path / "pairs.tsv", PAIRS)
    old, new = tmp_path / "old", tmp_path / "new"
    r = invoke("train", data, "-m", old, *SMALL, "--epochs", 1, "--ensemble", 2)
    assert r.exit_code == 0, r.stderr
    r = invoke("train", data, "-m", new, "--init-from", old, "--epochs", 1, "--learning-rate", 1e-12)
    assert r.exit_code == 0, r.stderr
    assert json.loads((new / "config.json").read_text())["ensemble"]["members"] == 2
    before = [np.load(artifacts.member_dir(old, k) / "weights.npz") for k in (1, 2)]
    assert any(not np.allclose(before[0][n], before[1][n], atol=1e-3) for n in before[0].files)  # members differ
    for k in (1, 2):  # one step of 1e-12 leaves each member's own weights
        after = np.load(artifacts.member_dir(new, k) / "weights.npz")
        for name in before[k - 1].files:
            np.testing.assert_allclose(after[name], before[k - 1][name], atol=1e-8)
    r = invoke("train", data, "-m", tmp_path / "one", "--init-from", old, "--epochs", 1, "--ensemble", 1)
    assert r.exit_code == 0, r.stderr
    assert "ensemble" not in json.loads((tmp_path / "one" / "config.json").read_text())


@pytest.mark.slow
def test_init_from_takes_the_architecture_and_warns_about_new_input_characters(source, tmp_path):
    data = write_pairs(tmp_path / "new.tsv", PAIRS[:10] + [("abc", "xy")])  # "c": unseen input
    r = invoke("train", data, "-m", tmp_path / "m", "--init-from", source, "--epochs", 1)
    assert r.exit_code == 0, r.stderr
    assert "1 input character(s) the --init-from model never saw are read as <unk>" in " ".join(r.stderr.split())
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["model"]["hidden"] == 8 and cfg["model"]["arch"] == "seq2seq"  # from the source
    assert cfg["input_vocab"] == json.loads((source / "config.json").read_text())["input_vocab"]


def test_init_from_refuses_what_does_not_fit(source, tmp_path):
    data = write_pairs(tmp_path / "new.tsv", PAIRS[:10] + [("ab", "xz")])  # "z": a new output
    r = invoke("train", data, "-m", tmp_path / "m", "--init-from", source)
    assert_one_line_error(r, "1 output character(s) the model cannot write ('z')")
    r = invoke("train", data, "-m", tmp_path / "m", "--init-from", source, "--hidden", 4)
    assert_one_line_error(r, "architecture differs", "hidden 8 there, 4 here")
    r = invoke("train", data, "-m", tmp_path / "m", "--init-from", tmp_path / "nowhere")
    assert_one_line_error(r, "no such model directory")


# --- --normalize -----------------------------------------------------------------------------

ACCENTED = [("café", "CAFÉ"), ("éa", "ÉA"), ("àé", "ÀÉ"), ("ça", "ÇA"), ("aé", "AÉ")] * 10


@pytest.fixture(scope="module")
def nfd_model(tmp_path_factory) -> Path:
    """A seq2seq model trained on NFC text with --normalize nfd (its default)."""
    root = tmp_path_factory.mktemp("nfd")
    data = write_pairs(root / "pairs.tsv", ACCENTED)
    r = invoke("train", data, "-m", root / "m", "--arch", "seq2seq", "--max-len", 8, "--hidden", 8, "--epochs", 2)
    assert r.exit_code == 0, r.stderr
    return root / "m"


@pytest.mark.slow
def test_nfd_model_sees_letters_and_marks_and_writes_composed_text(nfd_model):
    cfg = json.loads((nfd_model / "config.json").read_text())
    assert cfg["model"]["normalize"] == "nfd"
    assert "\u0301" in cfg["input_vocab"] and "é" not in cfg["input_vocab"]  # decomposed
    nfc = [s for s, _ in ACCENTED[:5]]
    nfd = [unicodedata.normalize("NFD", s) for s in nfc]
    out_nfc = invoke("predict", nfd_model, "-f", "jsonl", input="\n".join(nfc) + "\n")
    out_nfd = invoke("predict", nfd_model, "-f", "jsonl", input="\n".join(nfd) + "\n")
    assert out_nfc.exit_code == 0 and out_nfd.exit_code == 0, out_nfc.stderr + out_nfd.stderr
    rows_nfc = [json.loads(l) for l in out_nfc.stdout.splitlines()]
    rows_nfd = [json.loads(l) for l in out_nfd.stdout.splitlines()]
    assert [r["output"] for r in rows_nfc] == [r["output"] for r in rows_nfd]
    assert [r["confidence"] for r in rows_nfc] == pytest.approx([r["confidence"] for r in rows_nfd])
    for r in rows_nfc:
        assert r["output"] == unicodedata.normalize("NFC", r["output"])
    assert [r["input"] for r in rows_nfd] == nfd  # the input is echoed as given


def test_max_len_counts_normalized_characters(nfd_model):
    # 8 characters composed, 12 decomposed: over the model's max_len of 8.
    line = "éééé" + "aaaa"
    r = invoke("predict", nfd_model, input=line + "\n")
    assert r.exit_code == 1 and "input is 12 characters, longer than the model's max_len 8" in r.stderr
    r = invoke("predict", nfd_model, "--on-long", "copy", input=f"ab\n{line}\n")
    assert r.exit_code == 0 and r.stdout.splitlines()[1] == line
    r = invoke("evaluate", nfd_model, "-", input=f"{line}\tX\n")
    assert r.exit_code != 0 and "input is 12 characters" in r.stderr


def test_a_huge_line_is_normalized_from_its_beginning(nfd_model):
    huge = "é" * 300_000  # far over the byte limit: streamed, the model sees its start
    lines = f"ab\n{huge}\n{'é' * 4}\n"
    r = invoke("predict", nfd_model, "--on-long", "truncate", input=lines)
    assert r.exit_code == 0, r.stderr
    out = r.stdout.split("\n")
    assert len(out) == 4 and out[3] == ""
    # The truncated huge line is read as its first 8 decomposed characters: "éééé".
    assert out[1] == out[2]
    r = invoke("predict", nfd_model, "--on-long", "copy", "-f", "tsv", input=lines)
    assert r.exit_code == 0 and r.stdout.split("\n")[1] == f"{huge}\t{huge}"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.sampled_from(["none", "nfc", "nfd", "nfkc", "nfkd"]), st.integers(1, 10))
def test_a_line_over_the_byte_limit_is_over_max_len_once_normalized(text, form, max_len):
    """predict reads at most byte_limit bytes of a line before deciding it is too long."""
    if len(text.encode("utf-8")) + 2 > normalization.byte_limit(form, max_len):
        assert len(normalization.normalize(form, text)) > max_len
    prefix = text[: normalization.head_chars(form, max_len)]
    assert len(normalization.head(form, prefix, max_len)) == min(max_len, len(normalization.normalize(form, text))) \
        or len(normalization.normalize(form, text)) > max_len


# --- resuming keeps the schedule -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("schedule, rates", [
    ("plateau", [3e-3, 3e-3, 1.5e-3]),
    ("cosine", [3e-3, 1.5e-3 * (1 + math.cos(math.pi / 3)), 1.5e-3 * (1 + math.cos(2 * math.pi / 3))]),
])
def test_resume_continues_the_learning_rate_schedule_exactly(tmp_path, schedule, rates):
    from transducer.training.loop import train

    data = write_pairs(tmp_path / "pairs.tsv", PAIRS)
    cfg = ModelConfig(arch="seq2seq", max_len=6, hidden=8, dropout=0.3)
    # Nothing short of a 90% drop is improvement: after epoch 1 the rate halves every epoch.
    tcfg = TrainConfig(**{**recipe.train_defaults("seq2seq"), "min_delta": 0.9, "patience": 100,
                          "lr_patience": 1, "epochs": 3, "batch_size": 8, "seed": 5, "lr_schedule": schedule})
    whole = train(str(data), tmp_path / "whole", cfg, tcfg)
    assert whole.history["learning_rate"] == pytest.approx(rates)
    stopped = train(str(data), tmp_path / "split", cfg, tcfg, reporter=SignalAfterEpoch(2, signal.SIGTERM))  # rate just halved
    assert stopped.interrupted and stopped.epochs_run == 2
    resumed = train(str(data), tmp_path / "split", cfg, tcfg, resume=True)
    assert resumed.history == whole.history
    with np.load(tmp_path / "whole" / "weights.npz") as a, np.load(tmp_path / "split" / "weights.npz") as b:
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k])
