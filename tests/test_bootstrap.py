"""`train --bootstrap` (bagging) and `--subsample F`: each member trains on its own draw of
the training pairs, each pair k ~ Poisson(1) times or once with probability F; validation
untouched. Checked: the draws' distributions, that the streamed pipeline, the in-memory
iterator and the epoch's step count agree on one draw, and a round trip through train and
predict for every architecture (their data paths differ: streamed, label-filtered, edit's
in-memory arrays)."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest

from conftest import TINY_MAX_LEN, assert_clean_error, invoke, make_pairs, write_pairs
from transducer.core.config import ModelConfig, TrainConfig
from transducer.core.vocab import Vocab

# A Poisson(1) count is 0 with probability e^-1: the share of pairs a resample leaves out.
LEFT_OUT = math.exp(-1)


def _lines(n: int) -> list[bytes]:
    return [f"w{i}\tx{i}".encode() for i in range(n)]


def test_bootstrap_counts_follow_poisson_one_and_differ_by_seed():
    from transducer.training.stream import Resample, draw_counts

    a = draw_counts(_lines(20_000), Resample(1)).numpy()  # (20000,)
    b = draw_counts(_lines(20_000), Resample(2)).numpy()
    # 20,000 draws: the standard error of a share near 0.37 is 0.0034, of the mean 0.007.
    assert abs(a.mean() - 1.0) < 0.03 and abs(b.mean() - 1.0) < 0.03
    assert abs((a == 0).mean() - LEFT_OUT) < 0.015
    assert abs((a == 2).mean() - LEFT_OUT / 2) < 0.015  # P(k = 2) = e^-1 / 2
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.05  # another seed, another resample
    np.testing.assert_array_equal(a, draw_counts(_lines(20_000), Resample(1)).numpy())  # same seed, same draw


def test_subsample_keeps_each_row_at_most_once_with_its_probability():
    from transducer.training.stream import Resample, draw_counts

    kept = draw_counts(_lines(20_000), Resample(1, keep=0.8)).numpy()  # (20000,)
    assert set(np.unique(kept)) == {0, 1}
    assert abs(kept.mean() - 0.8) < 0.015
    other = draw_counts(_lines(20_000), Resample(2, keep=0.8)).numpy()
    assert abs(np.corrcoef(kept, other)[0, 1]) < 0.05


def _scan(tmp_path, pairs, val_split=0.2):
    from transducer.training.stream import scan_pairs

    path = write_pairs(tmp_path / "p.tsv", pairs)
    return scan_pairs(str(path), 24, False, val_split, 0)


def test_iterator_repeats_training_pairs_as_drawn_and_leaves_validation_alone(tmp_path):
    from transducer.training.stream import Resample, iter_pairs, resampled_rows

    pairs = sorted(set(make_pairs(400, seed=3)))
    scan = _scan(tmp_path, pairs)
    train = list(iter_pairs(scan, "train"))
    drawn = Counter(iter_pairs(scan, "train", resample=Resample(5)))
    assert set(drawn) <= set(train)  # only training pairs are drawn
    left_out = sum(1 for p in train if p not in drawn)
    assert 0.2 < left_out / len(train) < 0.55  # about e^-1 of them, on a few hundred
    assert max(drawn.values()) >= 2  # some more than once
    assert sum(drawn.values()) == resampled_rows(scan, Resample(5))
    assert list(iter_pairs(scan, "val", resample=Resample(5))) == list(iter_pairs(scan, "val"))
    assert Counter(iter_pairs(scan, "train", resample=Resample(6))) != drawn


def _decode(vocab: Vocab, ids) -> str:
    return "".join(vocab.symbols[i] for i in ids if i >= 4)  # 0-3: <pad>, <unk>, <s>, </s>


@pytest.mark.parametrize("keep", [0.0, 0.7], ids=["bootstrap", "subsample"])
@pytest.mark.parametrize("arch", ["aligned", "seq2seq"])
def test_streamed_epoch_holds_exactly_the_draw(tmp_path, arch, keep):
    """What the tf.data pipeline trains on, decoded back to strings, is the iterator's
    draw, pair for pair, in batches of the declared count."""
    from transducer.training.stream import Resample, iter_pairs, pairs_dataset

    scan = _scan(tmp_path, make_pairs(300, seed=4))
    iv, ov = scan.vocabs()
    cfg = ModelConfig(arch=arch, max_len=24, input_vocab_size=len(iv), output_vocab_size=len(ov))
    draw = Resample(9, keep)
    batches = list(pairs_dataset(scan, cfg, iv, ov, "train", 16, 0, shuffle_seed=7, resample=draw))
    seen = Counter()
    for x, y in batches:
        src = (x[0] if isinstance(x, tuple) else x).numpy().argmax(-1)  # (B, T): one-hot back to ids
        for s, t in zip(src, y.numpy()):
            seen[(_decode(iv, s), _decode(ov, t))] += 1
    expected = Counter(iter_pairs(scan, "train", resample=draw))
    assert seen == expected
    assert len(batches) == -(-sum(expected.values()) // 16)


class _Steps:
    """A reporter that counts the training steps each epoch runs."""

    def __init__(self):
        self.declared, self.run = [], []

    def start(self, info): self.info = info
    def epoch_begin(self, epoch, epochs, steps): self.declared.append(steps); self.run.append(0)
    def batch_end(self, step, logs): self.run[-1] = step
    def epoch_end(self, epoch, logs): pass


def _arch_pairs(arch: str) -> list[tuple[str, str]]:
    pairs = make_pairs(160, seed=2)
    if arch == "label":  # the label: does the word start with a capital?
        return [(a, "upper" if a[0].isupper() else "lower") for a, _ in pairs]
    return pairs


@pytest.mark.parametrize("arch", ["aligned", "seq2seq", "edit", "label"])
def test_each_architecture_trains_on_its_resample_and_round_trips(tmp_path, arch):
    from transducer.training.loop import train
    from transducer.training.stream import Resample, iter_pairs, scan_pairs

    path = write_pairs(tmp_path / "p.tsv", _arch_pairs(arch))
    steps = _Steps()
    mcfg = ModelConfig(arch=arch, max_len=TINY_MAX_LEN, hidden=8, normalize="none")
    tcfg = TrainConfig(epochs=1, batch_size=16, seed=3, bootstrap=True)
    train(str(path), tmp_path / "m", mcfg, tcfg, reporter=steps)
    drawn = sum(1 for _ in iter_pairs(scan_pairs(str(path), TINY_MAX_LEN, False, tcfg.val_split, 3), "train",
                                      resample=Resample(3)))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["train"]["bootstrap"] is True
    assert config["data"]["resampled"] == steps.info["resampled"] == "bootstrap resample"
    assert config["data"]["resampled_rows"] == steps.info["resampled_rows"] == drawn
    assert steps.declared == steps.run == [-(-drawn // 16)]  # the epoch trained on the resample
    inputs = "".join(f"{a}\n" for a, _ in _arch_pairs(arch)[:20])
    result = invoke("predict", tmp_path / "m", input=inputs)
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 20


def test_bagged_ensemble_members_train_on_different_resamples(tmp_path):
    path = write_pairs(tmp_path / "p.tsv", make_pairs(200, seed=5))
    result = invoke("train", path, "-m", tmp_path / "m", "--arch", "edit", "--ensemble", 2, "--bootstrap",
                    "--epochs", 1, "--max-len", TINY_MAX_LEN, "--hidden", 8, "--batch-size", 16,
                    "--log-format", "plain")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("bootstrap resample:") == 2
    members = [tmp_path / "m", *sorted((tmp_path / "m" / "members").iterdir())]  # member 1 is the directory
    configs = [json.loads((m / "config.json").read_text()) for m in members]
    assert [c["train"]["seed"] + c["train"]["member"] for c in configs] == [0, 1]
    assert all(c["train"]["bootstrap"] for c in configs)
    assert configs[0]["data"]["resampled_rows"] != configs[1]["data"]["resampled_rows"]  # two draws
    # Both members share the aligner fitted on all the training pairs, not on a resample.
    assert len({(m / "aligner.json").read_text() for m in members}) == 1


def test_subsample_run_reports_its_draw_and_an_empty_draw_is_a_one_line_error(tmp_path):
    path = write_pairs(tmp_path / "p.tsv", make_pairs(120, seed=6))
    small = ["--epochs", 1, "--max-len", TINY_MAX_LEN, "--hidden", 8, "--batch-size", 16, "--log-format", "plain"]
    result = invoke("train", path, "-m", tmp_path / "m", "--subsample", 0.5, *small)
    assert result.exit_code == 0, result.stderr
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["train"]["subsample"] == 0.5 and config["data"]["resampled"] == "subsample 0.5"
    assert 0.3 * config["data"]["n_train"] < config["data"]["resampled_rows"] < 0.7 * config["data"]["n_train"]
    assert f"subsample 0.5: {config['data']['resampled_rows']} rows an epoch" in result.stderr
    # A draw that keeps no pair is said so (the other mistakes: tests/test_preflight.py).
    two = write_pairs(tmp_path / "two.tsv", make_pairs(2, seed=7))
    failed = invoke("train", two, "-m", tmp_path / "x", "--subsample", 0.001, "--val-split", 0, *small)
    assert_clean_error(failed, "two.tsv: subsample 0.001 drew none of the 2 training pair(s)", "a larger --subsample")
    assert not (tmp_path / "x").exists()
