#!/usr/bin/env python3
"""Spark benchmark: transducer.spark's predict_udf on local[1] and local[2] against
`transducer predict` on the same machine, in the same run, on the same rows.

    nice -n 10 python bench/spark/bench_spark.py [--rows 1000000] [--work bench/work]

The model is bench_predict.py's (GRU(128), max_len 64, trained once into --work); the
rows are make_data.py's synthetic lines (1 to 64 characters), generated with a fixed
seed. Each system reads the rows from disk and writes its outputs to disk:
  - `transducer predict MODEL rows.txt > out.txt` (one process, as in a shell);
  - Spark: parquet (id, s) in 8 files -> predict_udf -> parquet (id, out).
Reported per system: wall time and rows/s (Spark's session start-up and first job, with
the workers' model load, measured apart), CPU seconds per million rows (the processes'
own user+sys time: on a shared machine, the number that contention does not move),
peak RSS per process (the CLI; each Python worker; the JVM), and the machine's load
average around each measurement. Spark's outputs are compared row for row, by id, with
the CLI's lines.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench_predict import TRANSDUCER, ensure_model, machine, run_timed  # noqa: E402
from make_data import random_line  # noqa: E402

FILES = 8  # parquet files of input: Spark's tasks (enough to keep 2 cores busy to the end)
TICK = os.sysconf("SC_CLK_TCK")


def make_rows(work: Path, rows: int) -> tuple[Path, Path]:
    """rows.<n>.txt (one line per row) and rows.<n>.parquet/ (id, s) in FILES files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    text, table = work / f"rows.{rows}.txt", work / f"rows.{rows}.parquet"
    if text.is_file() and table.is_dir():
        return text, table
    rng = random.Random(2024)
    lines = [random_line(rng) for _ in range(rows)]
    text.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    table.mkdir(exist_ok=True)
    per = -(-rows // FILES)
    for k in range(FILES):
        part = lines[k * per : (k + 1) * per]
        ids = pa.array(range(k * per, k * per + len(part)), pa.int64())
        pq.write_table(pa.table({"id": ids, "s": pa.array(part, pa.string())}), table / f"part-{k}.parquet")
    return text, table


def proc_stats(pid: int) -> tuple[float, float] | None:
    """(CPU seconds user+sys, peak RSS MiB) of a live process, or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
    return (int(stat[11]) + int(stat[12])) / TICK, hwm / 1024


def descendants(root: int) -> list[int]:
    """Every live process below `root` (the JVM's Python daemon and its forked workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


class Sampler(threading.Thread):
    """Polls the JVM and its Python processes: each one's last CPU time and peak RSS (a
    worker's numbers are kept after it exits)."""

    def __init__(self, jvm: int):
        super().__init__(daemon=True)
        self.jvm, self.seen, self.done = jvm, {}, threading.Event()

    def sample(self) -> None:
        for pid in [self.jvm, *descendants(self.jvm)]:
            stats = proc_stats(pid)
            if stats is not None:
                self.seen[pid] = stats

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.sample()

    def stop(self) -> dict:
        self.done.set()
        self.join()
        self.sample()
        return dict(self.seen)


def run_spark(cores: int, model: Path, table: Path, out: Path) -> dict:
    """One session on local[cores]: start-up (session and a first 2-row job, which starts
    the workers and loads the model) apart from the timed conversion of the table."""
    from pyspark.sql import SparkSession

    from transducer.spark import predict_udf

    os.environ["PYSPARK_PYTHON"] = sys.executable
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    spark = (
        SparkSession.builder.master(f"local[{cores}]").appName("bench-spark")
        .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.files.maxPartitionBytes", "4m")  # one task per input file, not one per core
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    jvm = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    sampler = Sampler(jvm)
    sampler.start()
    predict = predict_udf(str(model))
    spark.createDataFrame([(0, "warm up")] * cores, "id long, s string").repartition(cores).select(predict("s")).collect()
    startup = time.perf_counter() - t0
    before = {pid: cpu for pid, (cpu, _) in sampler.stop().items()}  # CPU used by start-up
    sampler = Sampler(jvm)
    sampler.start()
    t1 = time.perf_counter()
    df = spark.read.parquet(str(table))
    df.select("id", predict("s").alias("out")).write.mode("overwrite").parquet(str(out))
    wall = time.perf_counter() - t1
    seen = sampler.stop()
    spark.stop()
    cpu = {pid: c - before.get(pid, 0.0) for pid, (c, _) in seen.items()}
    workers = [pid for pid in seen if pid != jvm and cpu[pid] > 0.5]  # workers that converted rows
    return {
        "startup": startup, "wall": wall, "load": (load0, os.getloadavg()[0]),
        "cpu_workers": sum(cpu[p] for p in seen if p != jvm), "cpu_jvm": cpu[jvm],
        "rss_workers": sorted(seen[p][1] for p in workers), "rss_jvm": seen[jvm][1],
    }


def run_cli(model: Path, text: Path, out: Path) -> dict:
    load0 = os.getloadavg()[0]
    t0, usage0 = time.perf_counter(), os.times()
    wall, rss = run_timed(TRANSDUCER + ["predict", str(model), str(text)], stdout_path=out)
    usage = os.times()
    cpu = (usage.children_user - usage0.children_user) + (usage.children_system - usage0.children_system)
    return {"wall": wall, "cpu": cpu, "rss": rss, "load": (load0, os.getloadavg()[0])}


def compare(cli_out: Path, spark_out: Path, rows: int) -> int:
    """Rows whose Spark output differs from the CLI's line (missing and extra rows count)."""
    import pyarrow.parquet as pq

    table = pq.read_table(spark_out).sort_by("id")
    ids, outs = table["id"].to_pylist(), table["out"].to_pylist()
    lines = cli_out.read_text(encoding="utf-8").split("\n")[:rows]
    differ = abs(len(ids) - rows) + sum(i != k for k, i in enumerate(ids[:rows]))
    return differ + sum(o != lines[i] for i, o in zip(ids, outs) if i < len(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=HERE.parent / "work", help="data, model and outputs (reused)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cores", default="2,1", help="local[N] sessions to run, in order")
    ap.add_argument("--epochs", type=int, default=2, help="training epochs if the model must be trained")
    args = ap.parse_args()

    model = ensure_model(args.work, args.epochs)
    text, table = make_rows(args.work, args.rows)
    n = args.rows
    print(f"machine: {machine()}")
    print(f"model: {model} (GRU(128), max_len 64); {n:,} rows in {FILES} parquet files", flush=True)

    cli_out = args.work / "spark-bench.cli.txt"
    runs = {"cli": run_cli(model, text, cli_out)}
    print(f"cli done: {runs['cli']}", flush=True)
    for cores in map(int, args.cores.split(",")):
        out = args.work / f"spark-bench.local{cores}.parquet"
        runs[cores] = run_spark(cores, model, table, out)
        runs[cores]["differ"] = compare(cli_out, out, n)
        print(f"local[{cores}] done: {runs[cores]}", flush=True)

    cli = runs["cli"]
    print()
    print("| system | wall (s) | rows/s | vs CLI | CPU s per 1M rows | peak RSS (MiB) | start-up (s) | load avg (before, after) | rows differing |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: |")
    print(f"| `transducer predict` | {cli['wall']:.1f} | {n / cli['wall']:,.0f} | 1.00x | {cli['cpu'] * 1e6 / n:.1f}"
          f" | {cli['rss']:.0f} | - | {cli['load'][0]:.1f}, {cli['load'][1]:.1f} | - |")
    for cores in (k for k in runs if k != "cli"):
        r = runs[cores]
        rss = ", ".join(f"{m:.0f}" for m in r["rss_workers"])
        cpu = (r["cpu_workers"] + r["cpu_jvm"]) * 1e6 / n
        print(f"| Spark local[{cores}] | {r['wall']:.1f} | {n / r['wall']:,.0f} | {cli['wall'] / r['wall']:.2f}x"
              f" | {cpu:.1f} (workers {r['cpu_workers'] * 1e6 / n:.1f}, JVM {r['cpu_jvm'] * 1e6 / n:.1f})"
              f" | workers {rss}; JVM {r['rss_jvm']:.0f} | {r['startup']:.1f}"
              f" | {r['load'][0]:.1f}, {r['load'][1]:.1f} | {r['differ']} |")


if __name__ == "__main__":
    main()
