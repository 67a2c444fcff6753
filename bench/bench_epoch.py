#!/usr/bin/env python3
"""Steady-state training epoch time, in one process: length-bucketed, masked batches vs
max_len-long, unmasked ones, one step per graph call (the training before masks), same
data and hyperparameters.

    python bench/bench_epoch.py [--pairs 3000] [--epochs 3] [--max-chars 16] [--hidden 64]

One-epoch `transducer train` runs (bench_masks.py) include graph tracing, validation and
the checkpoint, which dominate small runs; this times `model.fit` epochs after the first
(which traces), on the training side of the split only. Data as bench_masks.py: CMUdict
pairs whose word and pronunciation both have at most --max-chars characters (16: the
`--max-len 16` column accepts every row; 30: the issue's "words <= 30 characters", where
that column is left out); batch 64.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))
from bench_predict import machine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=3, help="epochs per configuration; the first is not timed")
    ap.add_argument("--arch", choices=["seq2seq", "aligned", "both"], default="both")
    ap.add_argument("--max-chars", type=int, default=16, help="longest word and pronunciation kept")
    ap.add_argument("--hidden", type=int, default=64, help="GRU units (train's default is 128)")
    args = ap.parse_args()

    from transducer.training import stream
    from transducer.core.config import ModelConfig
    from transducer.networks.build import build_model, compile_model
    from transducer.networks.tf import keras
    from transducer.training.loop import STEPS_PER_EXECUTION

    rows = [line.split("\t") for line in (REPO / "sample_data/cmudict.train.tsv").read_text().splitlines()]
    rows = [(a, b) for a, b in rows if len(a) <= args.max_chars and len(b) <= args.max_chars][: args.pairs]
    path = Path(tempfile.mkdtemp()) / "pairs.tsv"
    path.write_text("".join(f"{a}\t{b}\n" for a, b in rows))
    print(f"machine: {machine()}")
    print(f"{len(rows)} pairs (<= {args.max_chars} characters), batch 64, hidden {args.hidden}, "
          f"{args.epochs - 1} timed epoch(s) after one warm-up")
    print(f"{'model':<24} {'max_len':>8} {'batches':>26} {'s/epoch':>8} {'pairs/s':>8}")
    for arch, bi in [("seq2seq", True), ("aligned", False)]:
        if args.arch not in ("both", arch):
            continue
        before = None
        # (max_len, masked, steps per graph call): before issue 10; masks and buckets with one
        # step per call (the step count alone); this code; this code at max_len 16.
        configs = [(64, False, 1), (64, True, 1), (64, True, STEPS_PER_EXECUTION), (16, True, STEPS_PER_EXECUTION)]
        for max_len, masked, spe in configs[: 4 if args.max_chars <= 16 else 3]:
            scan = stream.scan_pairs(str(path), max_len, False, 0.0, 0)
            iv, ov = scan.vocabs()
            cfg = ModelConfig(arch=arch, bidirectional=bi, hidden=args.hidden, max_len=max_len, masked=masked,
                              input_vocab_size=len(iv), output_vocab_size=len(ov))
            keras.utils.set_random_seed(0)
            model = build_model(cfg, cfg.variable_length)
            compile_model(model, 3e-3, masked, steps_per_execution=spe)
            times = []
            for epoch in range(args.epochs):
                ds = stream.pairs_dataset(scan, cfg, iv, ov, "all", 64, 0, shuffle_seed=epoch)
                t0 = time.perf_counter()
                model.fit(ds, epochs=1, verbose=0)
                times.append(time.perf_counter() - t0)
            s = statistics.median(times[1:])
            label = f"masked, bucketed, {spe}/call" if masked else "before (unmasked)"
            before = before or s
            print(f"{arch + (' bi' if bi else ''):<24} {max_len:>8} {label:>26} {s:>8.2f} {len(rows) / s:>8.0f}"
                  f"   {before / s:.2f}x before's throughput (timed epochs: {', '.join(f'{t:.2f}' for t in times[1:])} s)")


if __name__ == "__main__":
    main()
