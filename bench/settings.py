#!/usr/bin/env python3
"""Settings by data size, measured: what `--hidden`, `--max-len` and the data size cost per
epoch, and how many epochs early stopping runs, for aligned and seq2seq models
(docs/guides/small-data.md, "Hidden size, epochs and --max-len by data size").

    python bench/settings.py speed     # seconds per epoch per 1,000 pairs (quiet machine)
    python bench/settings.py epochs    # epochs run, best epoch, test WER by data size
    python bench/settings.py show      # the tables, from bench/settings.jsonl

Tasks (real data, shipped in sample_data/):
- aligned: `translit` (Russian number words -> ISO 9 Latin, one output character per
  input character), `--arch aligned`, test on translit.test.tsv;
- seq2seq: `cmudict` (word -> ARPAbet), `--arch seq2seq --bidirectional` (the settings
  the pronunciation guide recommends), test on cmudict.test.tsv (every reference counts).

speed: N = 2,000 training pairs (the first of the train file whose input and output have at
most 32 characters, so every --max-len row trains on the same pairs), 4 epochs, `--patience 100` so all
run; an epoch's time is the wall time between two epoch ends as train's progress reports
them (training, validation and the checkpoint: what a user waits for), over epochs 2-4 (the
first traces the graph); reported per 1,000 training pairs. Each row runs in a fresh process. Rows: --hidden 64/128/256 at
--max-len 64 (the default), then --max-len 32 and 128 at --hidden 128.

epochs: N = 1,000, 2,000, 4,000 and 8,000 pairs, --hidden 64 and 128, train's defaults
otherwise (30 epochs at most, early stopping), seeds 1 and 2: epochs run, the best epoch,
test WER as mean ± sd over the seeds, and train time.

Rows go to bench/settings.jsonl (with the machine's load and the commit); a row already
there for the same setting is reused, so an interrupted run continues.
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "settings.jsonl"
TASKS = {  # arch -> (sample_data task, train options beyond the bench's own)
    "aligned": ("translit", {"arch": "aligned"}),
    "seq2seq": ("cmudict", {"arch": "seq2seq", "bidirectional": True}),
}
SPEED_EPOCHS = 4  # epoch 1 traces the graph; epochs 2-4 are timed
SPEED_PAIRS = 2000
SPEED_GRID = [(64, 64), (128, 64), (256, 64), (128, 32), (128, 128)]  # (hidden, max_len)
SPEED_MAX_CHARS = 32  # speed rows train on the same pairs, which every --max-len above accepts
EPOCH_SIZES = [1000, 2000, 4000, 8000]
EPOCH_HIDDEN = [64, 128]
EPOCH_SEEDS = [1, 2]


def commit() -> str:
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip()


def rows() -> list[dict]:
    return [json.loads(line) for line in RESULTS.read_text().splitlines()] if RESULTS.exists() else []


def pairs_file(task: str, n: int, workdir: Path, max_chars: int = 64) -> Path:
    """The first n pairs of sample_data/<task>.train.tsv whose input and output both have
    at most max_chars characters."""
    lines = (REPO / "sample_data" / f"{task}.train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    lines = [l for l in lines if max(map(len, l.rstrip("\n").split("\t"))) <= max_chars]
    if n > len(lines):
        raise SystemExit(f"{task} has {len(lines)} training pairs, fewer than {n}")
    path = workdir / f"{task}-{n}.tsv"
    path.write_text("".join(lines[:n]), encoding="utf-8")
    return path


def train(arch: str, n: int, workdir: Path, max_chars: int = 64, **options) -> tuple[object, list[float], float]:
    """Train on n pairs (of at most max_chars characters); (model, wall time at each epoch
    end, total train seconds)."""
    import transducer

    task, task_options = TASKS[arch]
    ends: list[float] = []
    start = time.perf_counter()
    model = transducer.train(pairs_file(task, n, workdir, max_chars), workdir / "model", force=True,
                             progress=lambda event, data: ends.append(time.perf_counter()) if event == "epoch" else None,
                             **task_options, **options)
    return model, ends, time.perf_counter() - start


def record(row: dict) -> None:
    row = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **row, "load": round(os.getloadavg()[0], 1), "commit": commit()}
    with RESULTS.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), file=sys.stderr, flush=True)


def done(kind: str, **key) -> bool:
    return any(r["kind"] == kind and all(r.get(k) == v for k, v in key.items()) for r in rows())


def speed_row(workdir: Path, arch: str, hidden: int, max_len: int) -> None:
    _, ends, _ = train(arch, SPEED_PAIRS, workdir, SPEED_MAX_CHARS, hidden=hidden, max_len=max_len,
                       epochs=SPEED_EPOCHS, patience=100, seed=1)
    epochs = [b - a for a, b in zip(ends, ends[1:])]  # epochs 2..SPEED_EPOCHS
    per_1k = statistics.median(epochs) / (SPEED_PAIRS / 1000)
    record({"kind": "speed", "arch": arch, "hidden": hidden, "max_len": max_len, "pairs": SPEED_PAIRS,
            "epoch_s": [round(e, 2) for e in epochs], "s_per_epoch_per_1k": round(per_1k, 2)})


def epochs_row(workdir: Path, arch: str, pairs: int, hidden: int, seed: int) -> None:
    model, ends, seconds = train(arch, pairs, workdir, hidden=hidden, seed=seed)
    report = model.evaluate(REPO / "sample_data" / f"{TASKS[arch][0]}.test.tsv")
    summary = json.loads((workdir / "model" / "metrics.json").read_text())
    record({"kind": "epochs", "arch": arch, "pairs": pairs, "hidden": hidden, "seed": seed,
            "epochs_run": len(ends), "best_epoch": summary.get("best_epoch"),
            "test_wer": round(100 * report.wer, 2), "train_s": round(seconds, 1)})


def in_fresh_process(kind: str, **key) -> None:
    """One row in a process of its own, so no row runs after (and inherits the TensorFlow
    state and memory of) another; rows already in settings.jsonl are skipped."""
    if done(kind, **key):
        return
    subprocess.run([sys.executable, __file__, "row", json.dumps({"kind": kind, **key})], check=True)


def speed(workdir: Path) -> None:
    for arch in TASKS:
        for hidden, max_len in SPEED_GRID:
            in_fresh_process("speed", arch=arch, hidden=hidden, max_len=max_len, pairs=SPEED_PAIRS)


def epochs(workdir: Path) -> None:
    for arch in TASKS:
        for n in EPOCH_SIZES:
            for hidden in EPOCH_HIDDEN:
                for seed in EPOCH_SEEDS:
                    in_fresh_process("epochs", arch=arch, pairs=n, hidden=hidden, seed=seed)


def row(workdir: Path, key: str) -> None:
    key = json.loads(key)
    if key.pop("kind") == "speed":
        key.pop("pairs")
        return speed_row(workdir, **key)
    return epochs_row(workdir, **key)


def mean_sd(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.1f}" if values else "-"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def show() -> None:
    speed_rows = [r for r in rows() if r["kind"] == "speed"]
    print("| arch | --hidden | --max-len | seconds per epoch per 1,000 pairs | load |")
    print("| --- | --- | --- | --- | --- |")
    for r in speed_rows:
        print(f"| {r['arch']} | {r['hidden']} | {r['max_len']} | {r['s_per_epoch_per_1k']:.2f} | {r['load']} |")
    print()
    print("| arch | pairs | --hidden | epochs run | best epoch | test WER % (mean ± sd) | train s | seeds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    groups: dict[tuple, list[dict]] = {}
    for r in rows():
        if r["kind"] == "epochs":
            groups.setdefault((r["arch"], r["pairs"], r["hidden"]), []).append(r)
    for (arch, n, hidden), rs in groups.items():
        print(f"| {arch} | {n:,} | {hidden} | {mean_sd([r['epochs_run'] for r in rs])} |"
              f" {mean_sd([r['best_epoch'] for r in rs])} | {mean_sd([r['test_wer'] for r in rs])} |"
              f" {mean_sd([r['train_s'] for r in rs])} | {len(rs)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["speed", "epochs", "show", "row"])
    ap.add_argument("key", nargs="?", help="row: one row's setting as JSON (what speed and epochs run)")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    if args.what == "show":
        return show()
    with tempfile.TemporaryDirectory() as tmp:
        if args.what == "row":
            return row(Path(tmp), args.key)
        {"speed": speed, "epochs": epochs}[args.what](Path(tmp))
    show()


if __name__ == "__main__":
    main()
