#!/usr/bin/env python3
"""Prediction benchmark: `transducer predict` (numpy engine) vs the plain Keras script.

    python bench/bench_predict.py [--runs 5] [--lines 100000] [--busy N] [--no-baseline]

In one run, on the same model and the same inputs, it measures end to end (process start
to exit, stdin and stdout through pipes/files as in a shell pipe):
  - one line through a pipe: median of --runs, each a fresh process;
  - --lines lines through a pipe: median of --runs, throughput in lines/s;
  - peak RSS of each process (os.wait4's ru_maxrss for exactly that child), and its CPU
    seconds (user + system, also from os.wait4: the work done, steadier than wall time on
    a shared machine);
--busy N runs N busy loops (`python -c "while 1: pass"`) beside it all the while, as on a
machine shared with other work; --no-baseline leaves the Keras script out. It
checks that both produce the same output lines. The model is a GRU(128), vocab ~40,
max_len 64, trained once with `transducer train` on bench/make_data.py's synthetic task
and reused from --work (delete it to retrain).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRANSDUCER = [sys.executable, "-m", "transducer"]
BASELINE = [sys.executable, str(HERE / "baseline_predict.py")]


def run_timed(cmd, stdin_path=None, stdin_bytes=None, stdout_path=os.devnull):
    """(wall seconds, peak RSS MiB, CPU seconds) of one process, start to exit."""
    with open(stdout_path, "wb") as out:
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.PIPE
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=subprocess.PIPE)
        if stdin_bytes is not None:
            p.stdin.write(stdin_bytes)
            p.stdin.close()
        err = p.stderr.read()
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if stdin_path:
            stdin.close()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({p.returncode}): {err.decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def median_of(runs, fn):
    """(median wall, peak RSS, median CPU, raw walls) of `runs` calls of fn."""
    results = [fn() for _ in range(runs)]
    return (statistics.median(r[0] for r in results), max(r[1] for r in results),
            statistics.median(r[2] for r in results), [round(r[0], 2) for r in results])


def busy_loops(n: int) -> list:
    """n processes that keep one core each busy, as other work on a shared machine."""
    return [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(n)]


def ensure_model(work: Path, epochs: int, hidden: int = 128) -> Path:
    data = work / "data"
    if not (data / "train.tsv").is_file():
        subprocess.run([sys.executable, str(HERE / "make_data.py"), str(data)], check=True)
    model = work / f"gru{hidden}"
    if not (model / "model.keras").is_file():
        print(f"training {model} ({epochs} epochs) ...", file=sys.stderr)
        subprocess.run(
            TRANSDUCER + ["train", str(data / "train.tsv"), "--model-dir", str(model), "--hidden", str(hidden),
                          "--max-len", "64", "--epochs", str(epochs), "--force"],
            check=True,
        )
    return model


def first_inputs(work: Path, lines: int) -> Path:
    """A file of the first `lines` lines of the synthetic inputs."""
    path = work / f"inputs.{lines}.txt"
    with open(work / "data" / "inputs.txt", encoding="utf-8") as f, open(path, "w", encoding="utf-8") as g:
        for i, line in enumerate(f):
            if i >= lines:
                break
            g.write(line)
    return path


def machine() -> str:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return (f"{platform.machine()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()},"
            f" load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=HERE / "work", help="data and model directory (reused)")
    ap.add_argument("--runs", type=int, default=5, help="runs per measurement (median reported)")
    ap.add_argument("--lines", type=int, default=100_000, help="lines for the bulk measurement")
    ap.add_argument("--epochs", type=int, default=2, help="training epochs if the model must be trained")
    ap.add_argument("--busy", type=int, default=0, help="busy loops running beside the measurements")
    ap.add_argument("--no-baseline", action="store_true", help="measure transducer predict only")
    args = ap.parse_args()
    # Children write and read bytecode, as an installed package does (bench/first_contact.py
    # says why): the first one-line run writes any that is missing, so the median is not its.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    model = ensure_model(args.work, args.epochs)
    bulk = first_inputs(args.work, args.lines)
    busy = busy_loops(args.busy)
    try:
        measure(args, model, bulk)
    finally:
        for p in busy:
            p.kill()
            p.wait()


def measure(args, model: Path, bulk: Path) -> None:
    one = b"the quick brown fox 42\n"
    env = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "TRANSDUCER_BLAS_THREADS") if k in os.environ}
    print(f"machine: {machine()}")
    print(f"model: {model} (GRU(128), max_len 64); bulk input: {args.lines:,} lines; median of {args.runs} runs;"
          f" {args.busy} busy loop(s) beside; environment: {env or 'none set'}")
    baseline = (lambda fn: fn()) if not args.no_baseline else (lambda fn: (float("nan"),) * 3 + ([],))

    rows = []
    t_one, rss_one, c_one, all_one = median_of(args.runs, lambda: run_timed(TRANSDUCER + ["predict", str(model)], stdin_bytes=one))
    b_one, brss_one, bc_one, ball_one = baseline(lambda: median_of(args.runs, lambda: run_timed(BASELINE + [str(model)], stdin_bytes=one)))
    rows.append(("one line, end to end (s)", f"{t_one:.2f}", f"{b_one:.2f}", f"{b_one / t_one:.1f}x faster", "<= 0.3 s"))
    rows.append(("  CPU (s)", f"{c_one:.2f}", f"{bc_one:.2f}", "", ""))

    ours_out, base_out = args.work / "out.transducer.txt", args.work / "out.baseline.txt"
    t_bulk, rss_bulk, c_bulk, all_bulk = median_of(
        args.runs, lambda: run_timed(TRANSDUCER + ["predict", str(model)], stdin_path=bulk, stdout_path=ours_out))
    b_bulk, brss_bulk, bc_bulk, ball_bulk = baseline(lambda: median_of(
        args.runs, lambda: run_timed(BASELINE + [str(model)], stdin_path=bulk, stdout_path=base_out)))
    ratio = b_bulk / t_bulk
    rows.append((f"{args.lines:,} lines, end to end (s)", f"{t_bulk:.1f}", f"{b_bulk:.1f}", "", ""))
    rows.append(("  CPU (s)", f"{c_bulk:.1f}", f"{bc_bulk:.1f}", "", ""))
    rows.append(("  throughput (lines/s)", f"{args.lines / t_bulk:,.0f}", f"{args.lines / b_bulk:,.0f}",
                 f"{ratio:.1f}x", ">= 5x"))
    rows.append(("peak RSS (MiB)", f"{max(rss_one, rss_bulk):.0f}", f"{max(brss_one, brss_bulk):.0f}",
                 f"{max(brss_one, brss_bulk) / max(rss_one, rss_bulk):.1f}x less", "<= 250 MiB"))

    header = ("measurement", "transducer predict", "plain Keras", "ratio", "target")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(5)]
    for r in [header, tuple("-" * w for w in widths)] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print(f"raw seconds: one line {all_one} vs {ball_one}; bulk {all_bulk} vs {ball_bulk}")
    if not args.no_baseline:
        ours = ours_out.read_text(encoding="utf-8").splitlines()
        base = base_out.read_text(encoding="utf-8").splitlines()
        differ = sum(a != b for a, b in zip(ours, base)) + abs(len(ours) - len(base))
        print(f"outputs: {len(ours):,} lines, {differ} differ from the baseline's")


if __name__ == "__main__":
    main()
