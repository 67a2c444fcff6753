#!/usr/bin/env python3
"""Masks and length buckets against the code before them, side by side in one run.

    git -C . archive 0f4464c transducer | tar -x -C /tmp/transducer-before   # the code before
    python bench/bench_masks.py --before /tmp/transducer-before [--pairs 3000] [--runs 1]

`--before` is a directory holding the `transducer` package as it was (it is run with
PYTHONPATH pointing there); this checkout is run the same way. Data: CMUdict-like pairs
from sample_data/cmudict.train.tsv, the rows whose word and pronunciation both have at
most 16 characters (so --max-len 16 accepts all of them), the first --pairs of them.

1. Training throughput (pairs/s from metrics.json: the epochs, validation included), one
   epoch, batch 64, hidden 64: this code at --max-len 64 and 16, the code before at 64;
   for seq2seq (bidirectional, luong) and aligned (unidirectional).
2. seq2seq predict throughput on the same words, same weights: the model trained by the
   code before (an unmasked model directory), predicted by the code before, and the same
   weights with `"masked": true` in config.json predicted by this code; distinct words,
   then a Zipf-distributed corpus of the same words (this code with and without --cache).
3. One line through a pipe, process start to exit (this code).
4. Decoded exact match on dates (3 epochs, --pairs rows, hidden 64, seq2seq) at --max-len
   32 and 64 with this code and with the code before.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from bench_predict import machine  # noqa: E402


def run(code: Path, args: list[str], stdin: Path | None = None) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "3"}
    t0 = time.perf_counter()
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as f:
        # cwd elsewhere: `python -m` puts the working directory first on sys.path, which
        # would shadow PYTHONPATH when run from a checkout.
        p = subprocess.run([sys.executable, "-m", "transducer", *map(str, args)], stdin=f, capture_output=True,
                           env=env, cwd=tempfile.gettempdir())
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed: {p.stderr.decode()[-2000:]}")
    return time.perf_counter() - t0, p.stdout.decode()


def train(code: Path, data: Path, model_dir: Path, *opts) -> float:
    """Training pairs per second of the epochs."""
    run(code, ["train", data, "--model-dir", model_dir, "--force", "--batch-size", 64, "--hidden", 64, *opts])
    metrics = json.loads((model_dir / "metrics.json").read_text())
    config = json.loads((model_dir / "config.json").read_text())
    return config["data"]["n_train"] * metrics["epochs_run"] / metrics["train_seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="directory holding the old transducer package")
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=1, help="training runs per configuration (median)")
    ap.add_argument("--zipf-lines", type=int, default=20_000)
    ap.add_argument("--only-exact-match", action="store_true", help="run part 4 only")
    ap.add_argument("--exact-epochs", type=int, default=3, help="epochs of part 4's trainings")
    args = ap.parse_args()
    now = REPO
    work = Path(tempfile.mkdtemp(prefix="bench-masks-"))
    args.before = args.before.resolve()
    for code in (args.before, now):  # each side really runs its own code
        env = {**os.environ, "PYTHONPATH": str(code)}
        found = subprocess.run([sys.executable, "-c", "import transducer; print(transducer.__file__)"], env=env,
                               cwd=tempfile.gettempdir(), capture_output=True, text=True, check=True).stdout.strip()
        assert found == str(code / "transducer" / "__init__.py"), found
        print(f"code: {found}")
    rows = [line.split("\t") for line in (REPO / "sample_data/cmudict.train.tsv").read_text().splitlines()]
    rows = [(a, b) for a, b in rows if len(a) <= 16 and len(b) <= 16][: args.pairs]
    data = work / "cmudict16.tsv"
    data.write_text("".join(f"{a}\t{b}\n" for a, b in rows))
    words = work / "words.txt"
    words.write_text("".join(f"{a}\n" for a, _ in rows))
    print(f"machine: {machine()}")
    print(f"data: {len(rows)} CMUdict pairs (word and pronunciation <= 16 characters; words"
          f" {statistics.mean(len(a) for a, _ in rows):.1f} characters on average), 1 epoch, batch 64, hidden 64")

    if not args.only_exact_match:
        measure_speed(args, now, work, data, words, rows)
    exact_match(args, now, work)


def measure_speed(args, now: Path, work: Path, data: Path, words: Path, rows: list) -> None:
    print("\n== 1. training throughput, pairs/s (median of %d)" % args.runs)
    print(f"{'model':<28} {'before, max-len 64':>20} {'now, max-len 64':>16} {'now, max-len 16':>16} {'now/before':>11} {'64/16 now':>10}")
    for name, opts in [("seq2seq bidirectional", ["--arch", "seq2seq", "--bidirectional"]), ("aligned", [])]:
        r = {}
        for label, code, max_len in [("before", args.before, 64), ("now64", now, 64), ("now16", now, 16)]:
            r[label] = statistics.median(
                train(code, data, work / f"m-{label}", "--max-len", max_len, "--epochs", 1, *opts) for _ in range(args.runs)
            )
        print(f"{name:<28} {r['before']:>20.0f} {r['now64']:>16.0f} {r['now16']:>16.0f}"
              f" {r['now64'] / r['before']:>10.2f}x {r['now16'] / r['now64']:>9.2f}x")

    print("\n== 2. seq2seq predict throughput, same weights, lines/s (median of 3)")
    old_dir = work / "s2s-before"
    train(args.before, data, old_dir, "--max-len", 64, "--epochs", 1, "--arch", "seq2seq", "--bidirectional")
    new_dir = work / "s2s-masked"
    subprocess.run(["cp", "-r", str(old_dir), str(new_dir)], check=True)
    cfg = json.loads((new_dir / "config.json").read_text())
    cfg["model"]["masked"] = True
    (new_dir / "config.json").write_text(json.dumps(cfg))
    rng = np.random.default_rng(0)
    distinct = [a for a, _ in rows]
    zipf = work / "zipf.txt"
    ranks = np.minimum(rng.zipf(1.1, args.zipf_lines), len(distinct)) - 1
    zipf.write_text("".join(distinct[r] + "\n" for r in ranks))
    n_distinct = len(set(ranks.tolist()))
    print(f"{'input':<44} {'before':>10} {'now':>10} {'now --cache 0':>14} {'now/before':>11}")
    for label, path, n in [(f"{len(distinct)} distinct words", words, len(distinct)),
                           (f"{args.zipf_lines} Zipf(1.1) words ({n_distinct} distinct)", zipf, args.zipf_lines)]:
        before = statistics.median(run(args.before, ["predict", old_dir], path)[0] for _ in range(3))
        after = statistics.median(run(now, ["predict", new_dir], path)[0] for _ in range(3))
        nocache = statistics.median(run(now, ["predict", new_dir, "--cache", 0], path)[0] for _ in range(3))
        print(f"{label:<44} {n / before:>10.0f} {n / after:>10.0f} {n / nocache:>14.0f} {before / after:>10.2f}x")
    one = work / "one.txt"
    one.write_text("hello\n")
    print("\n== 3. one line through a pipe (process start to exit, median of 5): "
          f"{statistics.median(run(now, ['predict', new_dir], one)[0] for _ in range(5)):.2f} s")



def exact_match(args, now: Path, work: Path) -> None:
    print(f"\n== 4. decoded exact match on dates.test (seq2seq bidirectional, {args.exact_epochs} epochs, hidden 64,"
          f" first {args.pairs} pairs of dates.train.tsv)")
    dates = work / "dates.tsv"
    dates.write_text("".join((REPO / "sample_data/dates.train.tsv").read_text().splitlines(keepends=True)[: args.pairs]))
    print(f"{'code':<8} {'max-len':>8} {'exact match':>12} {'train pairs/s':>14}")
    for label, code in [("before", args.before), ("now", now)]:
        for max_len in (32, 64):
            d = work / f"dates-{label}-{max_len}"
            speed = train(code, dates, d, "--max-len", max_len, "--epochs", args.exact_epochs, "--patience", args.exact_epochs,
                          "--arch", "seq2seq", "--bidirectional")
            _, out = run(code, ["evaluate", d, REPO / "sample_data/dates.test.tsv", "--json"])
            print(f"{label:<8} {max_len:>8} {json.loads(out)['exact_match']:>12.4f} {speed:>14.0f}")


if __name__ == "__main__":
    main()
