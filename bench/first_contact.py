#!/usr/bin/env python3
"""First contact: how long a new user waits for help, for a mistake to be reported, for
`summarize DIR`, and for one line through `predict`, each a fresh `transducer` process.

    python bench/first_contact.py [--runs 5] [--model DIR]

Each measurement is a whole process, start to exit (wall seconds and CPU seconds, user +
system, from getrusage of the reaped child), median of --runs; the command's exit code is checked (a mistake
must exit non-zero, everything else 0). --model is the model directory `summarize` and
`predict` run on (default: bench_predict.py's GRU(128) in bench/work/gru128, trained
there if missing). Targets (issue 25): every mistake <= 1 s, `summarize DIR` <= 1 s, one
line through a pipe <= 0.3 s, on a quiet machine. The mistakes never import TensorFlow
(tests/test_preflight.py proves it); this measures what they cost.

Bytecode: each case runs once unmeasured first, with PYTHONDONTWRITEBYTECODE removed from
the environment, so the measured runs read compiled modules as an installed package does
(pip compiles them at install). A shell that sets PYTHONDONTWRITEBYTECODE=1 (this
benchmark's machine did) otherwise compiles every transducer module in every run: about
0.1 s of CPU of the one-line case.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_predict import TRANSDUCER, ensure_model, machine  # noqa: E402

TARGET = {"mistake": 1.0, "summarize": 1.0, "one line": 0.3}


def timed(args: list[str], stdin: bytes = b"", expect_error: bool = False) -> tuple[float, float]:
    """(wall, CPU) seconds of one `transducer ARGS` process; its exit code checked."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(TRANSDUCER + args, input=stdin, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the child is reaped: its CPU counts here
    if (p.returncode != 0) != expect_error:
        raise SystemExit(f"transducer {' '.join(args)} exited {p.returncode}: {p.stderr.decode()[-1000:]}")
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def cases(model: Path, tmp: Path) -> list[tuple[str, str, list[str], bytes, bool]]:
    """(kind, what, args, stdin, is a mistake)."""
    empty = tmp / "empty.tsv"
    empty.write_text("")
    pairs = tmp / "pairs.tsv"
    pairs.write_text("ab\tAB\n")
    existing = tmp / "existing"
    existing.mkdir(exist_ok=True)
    (existing / "x").write_text("")
    return [
        ("help", "transducer --help", ["--help"], b"", False),
        ("help", "transducer train --help", ["train", "--help"], b"", False),
        ("mistake", "train nope.tsv (no such file)", ["train", str(tmp / "nope.tsv")], b"", True),
        ("mistake", "train empty.tsv (an empty file)", ["train", str(empty), "-m", str(tmp / "m1")], b"", True),
        ("mistake", "train -m EXISTING (no --force)", ["train", str(pairs), "-m", str(existing)], b"", True),
        ("mistake", "train -m /proc/m (unwritable)", ["train", str(pairs), "-m", "/proc/m"], b"", True),
        ("mistake", "train --arch nope (a bad choice)", ["train", str(pairs), "--arch", "nope"], b"", True),
        ("mistake", "predict NO-MODEL", ["predict", str(tmp / "no-model")], b"x\n", True),
        ("summarize", "summarize DIR", ["summarize", str(model)], b"", False),
        ("summarize", "summarize DIR --json", ["summarize", str(model), "--json"], b"", False),
        ("one line", "echo LINE | predict DIR", ["predict", str(model)], "абв\n".encode(), False),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per measurement (median)")
    ap.add_argument("--model", type=Path, help="model directory (default: bench_predict.py's GRU(128))")
    args = ap.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # children write and read bytecode, as installed
    model = args.model or ensure_model(HERE / "work", epochs=2)
    print(f"machine: {machine()}")
    print(f"model: {model}; median of {args.runs} fresh processes each")
    print()
    print("| command | wall (s) | CPU (s) | target | raw wall (s) |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, what, argv, stdin, mistake in cases(model, Path(tmp)):
            timed(argv, stdin, mistake)  # unmeasured: writes any bytecode missing
            runs = [timed(argv, stdin, mistake) for _ in range(args.runs)]
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            target = TARGET.get(kind)
            verdict = "-" if target is None else f"<= {target} s: {'met' if wall <= target else 'MISSED'}"
            raw = ", ".join(f"{r[0]:.2f}" for r in runs)
            print(f"| `{what}` | {wall:.2f} | {cpu:.2f} | {verdict} | {raw} |", flush=True)
    print(f"\nload average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
