#!/usr/bin/env python3
"""Bulk prediction through a pipe, before vs after a change to predict's reading loop.

    git archive <base-commit> | tar -x -C /tmp/before       # the code before
    python bench/bench_stream.py --before /tmp/before [--runs 3] [--lines 20000]

`predict` reads a pipe with os.read and answers the lines it holds whenever the input
pauses (see data.PipeLines); a regular file is read as before. This checks that a fast
producer (`cat FILE | transducer predict M`) still gets whole batches: the same
throughput as the code in --before, measured in the same run, interleaved, on the same
model and input, through a real pipe and from a file. It also checks both produce the
same output. The model (GRU(64), max_len 64, 1 epoch on bench/make_data.py's task) is
trained once into --work and reused (with the `transducer` that PYTHONPATH finds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
AFTER = HERE.parent
sys.path.insert(0, str(HERE))
from bench_predict import ensure_model, first_inputs  # noqa: E402  (the same data and training)


def run(code: Path, model: Path, inputs: Path, out: Path, pipe: bool) -> tuple[float, float]:
    """(wall seconds start to exit, CPU seconds) of `predict` run from `code`, stdin a
    pipe fed by cat (pipe=True) or the file itself. CPU time (user + system, from
    os.wait4) is the work done, less disturbed than wall time on a shared machine."""
    env = dict(os.environ, PYTHONPATH=str(code))
    cmd = [sys.executable, "-m", "transducer", "predict", str(model)]
    with open(out, "wb") as sink, open(inputs, "rb") as f:
        cat = subprocess.Popen(["cat", str(inputs)], stdout=subprocess.PIPE) if pipe else None
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=cat.stdout if pipe else f, stdout=sink, stderr=subprocess.PIPE, env=env)
        if pipe:
            cat.stdout.close()  # only predict holds the read end
        err = p.stderr.read()
        _, status, usage = os.wait4(p.pid, 0)
        seconds = time.perf_counter() - t0
        if pipe:
            cat.wait()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{code}: predict failed: {err.decode()[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="a checkout of the code before the change")
    ap.add_argument("--work", type=Path, default=HERE / "work", help="data and model directory (reused)")
    ap.add_argument("--runs", type=int, default=3, help="runs per measurement (median reported)")
    ap.add_argument("--lines", type=int, default=20_000, help="input lines")
    args = ap.parse_args()

    model = ensure_model(args.work, epochs=1, hidden=64)
    inputs = first_inputs(args.work, args.lines)
    load = os.getloadavg()
    print(f"{os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f};"
          f" {args.lines:,} lines, GRU(64) max_len 64, median of {args.runs} runs, interleaved")
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    outs = {}
    for _ in range(args.runs):
        for how in ("pipe", "file"):
            for name, code in (("before", args.before), ("after", AFTER)):
                out = args.work / f"out.{name}.{how}.txt"
                times.setdefault((name, how), []).append(run(code, model, inputs, out, how == "pipe"))
                outs[name, how] = out.read_bytes()
    print(f"{'input':<6} {'':<5} {'before (s)':>11} {'after (s)':>10} {'after/before':>13}   raw before | after")
    for how in ("pipe", "file"):
        for k, what in ((0, "wall"), (1, "CPU")):
            b = [t[k] for t in times["before", how]]
            a = [t[k] for t in times["after", how]]
            mb, ma = statistics.median(b), statistics.median(a)
            raw = f"{[round(x, 2) for x in b]} | {[round(x, 2) for x in a]}"
            print(f"{how:<6} {what:<5} {mb:>11.2f} {ma:>10.2f} {ma / mb:>13.2f}   {raw}")
    same = len({outs[k] for k in outs}) == 1
    print(f"outputs identical across versions and inputs: {same}")


if __name__ == "__main__":
    main()
