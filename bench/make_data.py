#!/usr/bin/env python3
"""Synthetic data for the benchmarks: a learnable, causal, same-length character task.

Inputs are words of lowercase letters and digits separated by spaces, 1 to 64 characters
(uniform). The output maps each character using only what came before it (so an aligned,
unidirectional GRU can learn it): letters shift by one (z -> a) and are upper-cased at the
start of a word, digits d -> 9 - d, spaces stay. Input vocabulary 37 characters (+4 reserved
= 41), output 63 (+4).

    python bench/make_data.py bench/data            # train.tsv (20,000 pairs), inputs.txt (100,000 lines)
"""

from __future__ import annotations

import random
import string
import sys
from pathlib import Path

ALPHABET = string.ascii_lowercase + string.digits  # 36 characters, plus space
MAX_LEN = 64


def random_line(rng: random.Random) -> str:
    n = rng.randint(1, MAX_LEN)
    chars = []
    while len(chars) < n:
        word = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 9)))
        chars.extend((" " if chars else "") + word)
    return "".join(chars[:n]).rstrip() or "a"


def transduce(s: str) -> str:
    out, prev = [], " "
    for ch in s:
        if ch.isdigit():
            out.append(str(9 - int(ch)))
        elif ch.isalpha():
            nxt = chr((ord(ch) - 97 + 1) % 26 + 97)
            out.append(nxt.upper() if prev == " " else nxt)
        else:
            out.append(ch)
        prev = ch
    return "".join(out)


def main(out_dir: str, n_train: int = 20_000, n_inputs: int = 100_000) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    with open(out / "train.tsv", "w", encoding="utf-8") as f:
        for _ in range(n_train):
            s = random_line(rng)
            f.write(f"{s}\t{transduce(s)}\n")
    rng = random.Random(1)
    with open(out / "inputs.txt", "w", encoding="utf-8") as f:
        for _ in range(n_inputs):
            f.write(random_line(rng) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/data")
