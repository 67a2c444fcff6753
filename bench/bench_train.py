#!/usr/bin/env python3
"""Training benchmark: `transducer train` vs the plain Keras script of the classic example.

    python bench/bench_train.py [--runs 5] [--pairs 10000] [--epochs 1]

Same data (bench/make_data.py's task, first --pairs rows), same network (GRU(128),
TimeDistributed(Dense), softmax; max_len 64), same hyperparameters (Adam 3e-3, batch 64,
10% validation, --epochs). Training throughput is training sequences per second of
model.fit (validation included in both, as both run it every epoch): transducer's comes
from its metrics.json (train_seconds), the baseline's from its own timer. Median of --runs.

It also measures this machine's peak float32 matmul rate (numpy and TensorFlow, 2048x2048,
best of 3, in the same run) and reports how far each trainer is from the arithmetic limit:
FLOPs per sequence = 3 x forward (backward ~ 2 x forward), forward = T x (one-hot input
matmul 2*Vin*3H + recurrent 2*H*3H + head 2*H*V); element-wise work is not counted, so
the limit is optimistic.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_predict import machine  # noqa: E402

PEAK = r"""
import json, os, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
n = 2048
a = np.random.rand(n, n).astype(np.float32)
def best(f):
    f(); ts = []
    for _ in range(3):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return 2 * n**3 / min(ts)
out = {"numpy": best(lambda: a @ a)}
import tensorflow as tf
b = tf.constant(a)
out["tensorflow"] = best(lambda: tf.linalg.matmul(b, b).numpy())
print(json.dumps(out))
"""


def run(cmd) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed: {p.stderr[-2000:]}")
    return time.perf_counter() - t0, p.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=HERE / "work")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()

    data = args.work / "data"
    if not (data / "train.tsv").is_file():
        subprocess.run([sys.executable, str(HERE / "make_data.py"), str(data)], check=True)
    pairs = args.work / f"train.{args.pairs}.tsv"
    rows = (data / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[: args.pairs]
    pairs.write_text("".join(rows), encoding="utf-8")
    hyper = ["--epochs", str(args.epochs), "--batch-size", "64", "--max-len", "64", "--hidden", "128"]
    model_dir = args.work / "train_bench"

    ours, base, ours_wall, base_wall = [], [], [], []
    for _ in range(args.runs):
        wall, _ = run([sys.executable, "-m", "transducer", "train", str(pairs), "--model-dir", str(model_dir),
                       "--head", "time-distributed", "--learning-rate", "3e-3", "--val-split", "0.1",
                       "--patience", str(args.epochs + 1), "--force", *hyper])
        metrics = json.loads((model_dir / "metrics.json").read_text())
        config = json.loads((model_dir / "config.json").read_text())
        ours.append(config["data"]["n_train"] * args.epochs / metrics["train_seconds"])
        ours_wall.append(wall)
        wall, out = run([sys.executable, str(HERE / "baseline_train.py"), str(pairs), "--learning-rate", "3e-3",
                         "--val-split", "0.1", *hyper])
        result = json.loads(out.strip().splitlines()[-1])
        base.append(result["n_train"] * args.epochs / result["fit_seconds"])
        base_wall.append(wall)

    _, out = run([sys.executable, "-c", PEAK])
    peak = json.loads(out.strip().splitlines()[-1])
    top = max(peak.values())
    vin, vout = len(config["input_vocab"]), len(config["output_vocab"])
    H, T = 128, 64
    flops = 3 * T * (2 * vin * 3 * H + 2 * H * 3 * H + 2 * H * vout)  # per training sequence
    limit = top / flops

    q, b = statistics.median(ours), statistics.median(base)
    print(f"machine: {machine()}")
    print(f"task: {args.pairs:,} pairs (90% trained), {args.epochs} epoch(s), GRU(128), vocab {vin} in / {vout} out,"
          f" max_len {T}, batch 64; median of {args.runs} runs")
    print(f"peak float32 matmul (2048^2): numpy {peak['numpy'] / 1e9:.1f} GFLOP/s,"
          f" TensorFlow {peak['tensorflow'] / 1e9:.1f} GFLOP/s")
    print(f"FLOPs per training sequence ~ {flops / 1e6:.1f} M -> arithmetic limit ~ {limit:,.0f} sequences/s")
    header = ("trainer", "sequences/s", "vs plain Keras", "of arithmetic limit", "process wall s")
    table = [
        ("transducer train", f"{q:,.0f}", f"{q / b:.2f}x", f"{q / limit:.0%}", f"{statistics.median(ours_wall):.1f}"),
        ("plain Keras script", f"{b:,.0f}", "1.00x", f"{b / limit:.0%}", f"{statistics.median(base_wall):.1f}"),
    ]
    widths = [max(len(r[i]) for r in table + [header]) for i in range(5)]
    for r in [header, tuple("-" * w for w in widths)] + table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print(f"raw sequences/s: transducer {[round(x) for x in ours]}, plain {[round(x) for x in base]}")


if __name__ == "__main__":
    main()
