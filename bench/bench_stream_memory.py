"""Peak memory of `train` as the pairs file grows: it must stay flat (streaming, stream.py).

Generates pairs files of 1M and 4M lines (not committed: written to a temp dir), trains a
tiny aligned model for one full epoch on each, in a fresh process per size, and prints that
process's peak RSS together with the time spent.

    python bench/bench_stream_memory.py                  # 1M and 4M pairs
    python bench/bench_stream_memory.py --sizes 100000 400000 --batch-size 512

Expect the same peak RSS (within a few tens of MB, mostly TensorFlow's own allocations)
for both sizes; one-hot arrays for 4M pairs would take several GB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from transducer.core.config import ModelConfig, TrainConfig
from transducer.training.loop import train
path, model_dir, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.time()
r = train(path, model_dir, ModelConfig(max_len=12, hidden=8),
          TrainConfig(epochs=1, batch_size=batch, val_split=0.01, seed=0), force=True)
print(json.dumps({
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
    "seconds": time.time() - t0,
    "n_train": r.counts["n_train"], "n_val": r.counts["n_val"],
    "loss": r.history["loss"][-1],
}))
"""


def generate(path: Path, n: int, seed: int = 0) -> None:
    """Reversal of short random words: `abc<TAB>cba`."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    with open(path, "w", encoding="utf-8") as f:
        block = []
        for _ in range(n):
            w = "".join(rng.choices(letters, k=rng.randint(1, 10)))
            block.append(f"{w}\t{w[::-1]}\n")
            if len(block) == 100_000:
                f.write("".join(block))
                block.clear()
        f.write("".join(block))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 4_000_000])
    ap.add_argument("--batch-size", type=int, default=2048)
    args = ap.parse_args()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=os.environ.get("CUDA_VISIBLE_DEVICES", "-1"))
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        print(f"{'pairs':>10} {'file MB':>8} {'peak RSS MB':>12} {'seconds':>8} {'n_train':>9} {'loss':>7}")
        for n in args.sizes:
            path = Path(tmp) / f"pairs_{n}.tsv"
            generate(path, n)
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(path), str(Path(tmp) / f"model_{n}"), str(args.batch_size)],
                capture_output=True, text=True, env=env,
            )
            if proc.returncode != 0:
                sys.exit(f"training on {n} pairs failed:\n{proc.stderr[-3000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            size_mb = path.stat().st_size / 1e6
            print(
                f"{n:>10} {size_mb:>8.1f} {r['peak_rss_mb']:>12.0f} {r['seconds']:>8.1f} {r['n_train']:>9} {r['loss']:>7.3f}",
                flush=True,
            )
            path.unlink()


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"total {time.time() - t0:.0f} s", file=sys.stderr)
