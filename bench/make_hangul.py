"""A Hangul romanization task for choosing train --normalize by measurement.

Words of 1-3 random Hangul syllables (composed, NFC, as Korean text is stored) -> their
Revised Romanization, letter by letter (initial, vowel, final; no sound-change rules
across syllables). Syllables are built from their letters (jamo) by Unicode's formula
0xAC00 + (initial * 21 + vowel) * 28 + final, so no package or download is needed.

Composed, a model sees each of the ~11,000 possible syllables as its own symbol, most seen
once or never in training; decomposed (NFD), the same words are spelled with 67 letters.
Test words never occur in training.

    python bench/make_hangul.py OUT_DIR [--train 4000] [--test 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

INITIAL = "g kk n d tt r m b pp s ss - j jj ch k t p h".split()  # "-": silent ieung
VOWEL = "a ae ya yae eo e yeo ye o wa wae oe yo u wo we wi yu eu ui i".split()
FINAL = "- k k k n n n t l k m l l l p l m p p t t ng t t k t p t".split()  # "-": none


def word(rng: random.Random) -> tuple[str, str]:
    syllables, roman = [], []
    for _ in range(rng.randint(1, 3)):
        i, v = rng.randrange(19), rng.randrange(21)
        f = 0 if rng.random() < 0.5 else rng.randrange(1, 28)  # half the syllables end open
        syllables.append(chr(0xAC00 + (i * 21 + v) * 28 + f))
        roman.append("".join(p for p in (INITIAL[i], VOWEL[v], FINAL[f]) if p != "-"))
    return "".join(syllables), "".join(roman)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--train", type=int, default=4000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    pairs: dict[str, str] = {}
    while len(pairs) < args.train + args.test:
        src, tgt = word(rng)
        pairs.setdefault(src, tgt)
    items = list(pairs.items())
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", items[: args.train]), ("test", items[args.train :])):
        (args.out / f"hangul.{name}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in rows), encoding="utf-8")


if __name__ == "__main__":
    main()
