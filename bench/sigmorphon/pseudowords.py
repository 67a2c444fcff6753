"""Unlabeled pseudo-words of a language, for a student's `--extra-inputs`: each is the start
of one training word joined to the end of another, cut at random places.

    python bench/sigmorphon/pseudowords.py --lang arm_e --count 8000 > work/arm_e.pseudo.in
    python bench/sigmorphon/pseudowords.py --lang arm_e --count 8000 --out "work/pseudo/{lang}.in"

Why: on its own training words a teacher ensemble says what the references say, so a
student fitted along them learns little of how the teacher treats new words (issue 27).
A language's new words are not at hand here, but strings spelled with its letters and
junctions, which the teacher labels (and the student fits along the teacher's output),
are. Words that are training, dev or test words are left out (dev and test stay unseen);
lengths stay within the training words'. Deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (the task files and languages)


def pseudowords(train: list[str], exclude: set[str], count: int, seed: int = 0) -> list[str]:
    """`count` distinct strings a[:i] + b[j:] of training words a, b (both parts non-empty),
    none in `exclude`, each as long as some training word."""
    rng = random.Random(seed)
    lo, hi = min(map(len, train)), max(map(len, train))
    long_enough = [w for w in train if len(w) >= 2]
    found: dict[str, None] = {}
    for _ in range(count * 100):
        if len(found) == count:
            break
        a, b = rng.choice(long_enough), rng.choice(long_enough)
        word = a[: rng.randint(1, len(a) - 1)] + b[rng.randint(1, len(b) - 1):]
        if lo <= len(word) <= hi and word not in exclude:
            found[word] = None
    return list(found)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lang", nargs="+", required=True, choices=run.LANGS)
    p.add_argument("--count", type=int, default=8000, help="pseudo-words per language")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="file to write, {lang} filled in (default: stdout, one language)")
    args = p.parse_args()
    for lang in args.lang:
        splits = {s: [w for w, _ in run.read_pairs(run.DATA / f"{lang}_{s}.tsv")] for s in ("train", "dev", "test")}
        words = pseudowords(splits["train"], {w for ws in splits.values() for w in ws}, args.count, args.seed)
        text = "".join(w + "\n" for w in words)
        if args.out:
            out = Path(args.out.format(lang=lang))
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
            print(f"{lang}: {len(words)} pseudo-words -> {out}", file=sys.stderr)
        else:
            sys.stdout.write(text)


if __name__ == "__main__":
    main()
