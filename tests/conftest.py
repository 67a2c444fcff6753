"""Shared fixtures: a tiny synthetic dataset and a tiny model trained once per session."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TINY_MAX_LEN = 12


def make_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Same-length, causal toy task: swap case and map 'a'->'@'. Learnable by a GRU."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        word = "".join(rng.choice("abcdeXYZ") for _ in range(rng.randint(1, 8)))
        pairs.append((word, word.swapcase().replace("A", "@")))
    return pairs


def write_pairs(path: Path, pairs) -> Path:
    path.write_text("".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def pairs_file(tmp_path_factory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("data") / "pairs.tsv", make_pairs(300))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, pairs_file) -> Path:
    """An aligned model trained for 2 epochs through the library (not the CLI)."""
    from transducer.core.config import ModelConfig, TrainConfig
    from transducer.training.loop import train

    model_dir = tmp_path_factory.mktemp("models") / "tiny"
    train(
        str(pairs_file),
        model_dir,
        ModelConfig(max_len=TINY_MAX_LEN, hidden=16),
        TrainConfig(epochs=2, batch_size=32, seed=1),
    )
    return model_dir
