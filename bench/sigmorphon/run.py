"""SIGMORPHON 2021 task 1 (medium): `transducer` against the published baseline, per language.

    python bench/sigmorphon/run.py                                  # defaults, six languages
    python bench/sigmorphon/run.py --langs arm_e hbs_latn --tag ens3 --train-flags "--ensemble 3"
    python bench/sigmorphon/run.py --langs arm_e --tag student \\
        --train-flags "--teacher {work}/ens3/{lang}/model"
    python bench/sigmorphon/run.py --tag ens3 --reuse --beam 5      # rescore, no training
    python bench/sigmorphon/run.py --show defaults ens3 ens3+beam5  # results.jsonl as markdown
    python bench/sigmorphon/run.py --tag edit --train-flags "--arch edit" --seeds 1 2 3
    python bench/sigmorphon/run.py --tag edit-1k --train-flags "--arch edit" --seeds 1 2 3 --train-words 1000

With --seeds, each seed trains its own model (work/TAG/LANG/seedK/) and --show prints the mean
± sd over the seeds of each (tag, language), the macro average of the means beside them.
--train-words N keeps the first N training words (the small-data condition); dev and test
stay whole. Every row records predict_s, the wall time of greedy (or --beam) prediction of
the test words (one `transducer predict` process, start-up included).

For each language: the phones (space-separated, multi-character tokens such as `t͡s`) are
mapped one token -> one private-use character (U+E000 on), so a character-level model emits
one symbol per phone; `transducer train` runs on `_train` with `_dev` as the validation file
(early stopping and the learning-rate schedule see dev, never test); `transducer predict`
labels the dev and test words and the outputs are mapped back to phones before scoring.
WER = 100 x (1 - exact match of the whole phone sequence). Dev WER is what settings are chosen
on; test WER is what is reported next to the baseline. Every run appends one JSON line per
language to results.jsonl (tag, flags, WERs, train seconds, epochs, load average, commit).

Work directories (models, mapped files, logs) go to bench/sigmorphon/work/TAG/LANG/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
WORK = HERE / "work"
RESULTS = HERE / "results.jsonl"

# Published baseline test WER (%) of the task organisers' system (data/README.md).
BASELINE = {"arm_e": 7.0, "geo": 0.0, "hbs_latn": 32.1, "hun": 1.8, "jpn_hira": 5.2, "vie_hanoi": 2.5}
LANGS = tuple(BASELINE)
PUA = 0xE000  # first private-use code point; phone k is chr(PUA + k)
ARCH_FLAGS = ["--arch", "seq2seq", "--bidirectional", "--seed", "1"]  # the fixed part


def read_pairs(path: Path) -> list[tuple[str, list[str]]]:
    """(word, phones) per line of a task file."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        word, phones = line.split("\t")
        rows.append((word, phones.split()))
    return rows


def phone_map(splits: dict[str, list]) -> dict[str, str]:
    """Phone -> one private-use character, numbered in sorted order over all three splits
    (only the reference side of dev/test needs their phones; a phone never seen in training
    cannot be predicted whatever its symbol)."""
    phones = sorted({p for rows in splits.values() for _, ps in rows for p in ps})
    if len(phones) > 6400:
        raise SystemExit("more phones than the private-use area holds")
    return {p: chr(PUA + k) for k, p in enumerate(phones)}


def prepare(lang: str, work: Path, train_words: int | None = None) -> tuple[dict, dict[str, str]]:
    """Write the mapped train/dev files and dev/test input lists; return the splits and the map.
    train_words: keep only the first N training words (the phone map still covers all splits,
    so symbols are numbered as in the full-data runs)."""
    splits = {s: read_pairs(DATA / f"{lang}_{s}.tsv") for s in ("train", "dev", "test")}
    mapping = phone_map(splits)
    if train_words:
        splits["train"] = splits["train"][:train_words]
    work.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        with open(work / f"{split}.tsv", "w", encoding="utf-8") as f:
            for word, phones in rows:
                f.write(f"{word}\t{''.join(mapping[p] for p in phones)}\n")
        (work / f"{split}.in").write_text("".join(f"{w}\n" for w, _ in rows), encoding="utf-8")
    return splits, mapping


def transducer(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "transducer", *args], text=True, **kw)


def train(work: Path, flags: list[str]) -> tuple[float, int | None]:
    """Train work/model; returns (wall seconds, epochs run)."""
    cmd = ["train", str(work / "train.tsv"), "-m", str(work / "model"), *ARCH_FLAGS,
           "--val-file", str(work / "dev.tsv"), "--force", "--log-format", "jsonl", *flags]
    t0 = time.perf_counter()
    with open(work / "train.log", "w", encoding="utf-8") as log:
        proc = transducer(*cmd, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        tail = (work / "train.log").read_text(encoding="utf-8").splitlines()[-5:]
        raise SystemExit(f"training failed ({work / 'train.log'}):\n" + "\n".join(tail))
    return seconds, epochs_run(work / "model")


def epochs_run(model: Path) -> int | None:
    """Epochs of member 1 (metrics.json's history length)."""
    try:
        history = json.loads((model / "metrics.json").read_text(encoding="utf-8"))["history"]
        return len(next(iter(history.values())))
    except (OSError, ValueError, KeyError, StopIteration):
        return None


def wer(work: Path, split: str, rows: list, mapping: dict[str, str], beam: int, timing: dict | None = None) -> float:
    """Predict the split's words, map the outputs back to phones and count whole-word errors.
    timing: gets the predict process's wall seconds under the split's name."""
    t0 = time.perf_counter()
    proc = transducer("predict", str(work / "model"), str(work / f"{split}.in"), "--beam", str(beam),
                      capture_output=True)
    if timing is not None:
        timing[split] = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"predict failed: {proc.stderr.strip()}")
    back = {c: p for p, c in mapping.items()}
    outputs = proc.stdout.split("\n")[: len(rows)]
    if len(outputs) != len(rows):
        raise SystemExit(f"predict returned {len(outputs)} lines for {len(rows)} words")
    predicted = [[back.get(c, c) for c in out] for out in outputs]
    with open(work / f"{split}.beam{beam}.out", "w", encoding="utf-8") as f:  # for error analysis
        f.writelines(f"{w}\t{' '.join(ref)}\t{' '.join(hyp)}\n" for (w, ref), hyp in zip(rows, predicted))
    wrong = sum(hyp != phones for hyp, (_, phones) in zip(predicted, rows))
    return 100.0 * wrong / len(rows)


def commit() -> str:
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True)
    return proc.stdout.strip()


def run_language(lang: str, args, flags_template: str, seed: int | None = None) -> dict:
    work = WORK / args.tag / lang / ("" if seed is None else f"seed{seed}")
    splits, mapping = prepare(lang, work, args.train_words)
    flags = shlex.split(flags_template.format(lang=lang, work=WORK, data=DATA))
    if seed is not None:
        flags += ["--seed", str(seed)]  # the last --seed given wins
    seconds = epochs = None
    if not (args.reuse and (work / "model" / "config.json").is_file()):
        seconds, epochs = train(work, flags)
    else:
        epochs = epochs_run(work / "model")
    if args.train_only:  # scored later with --reuse
        return {}
    timing: dict[str, float] = {}
    row = dict(
        time=time.strftime("%Y-%m-%dT%H:%M:%S"), tag=args.tag, lang=lang, flags=" ".join(ARCH_FLAGS + flags),
        beam=args.beam, phones=len(mapping), dev_wer=wer(work, "dev", splits["dev"], mapping, args.beam),
        test_wer=wer(work, "test", splits["test"], mapping, args.beam, timing), baseline=BASELINE[lang],
        train_s=None if seconds is None else round(seconds, 1), epochs=epochs,
        load=round(os.getloadavg()[0], 1), commit=commit(), reused=seconds is None,
        seed=seed, train_words=args.train_words or len(splits["train"]), predict_s=round(timing["test"], 2),
    )
    with open(RESULTS, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return row


def table(rows: list[dict]) -> str:
    lines = [f"{'language':<10} {'dev WER':>8} {'test WER':>8} {'baseline':>8} {'gap':>6} {'train s':>8} {'epochs':>6}"]
    for r in rows:
        secs = "reused" if r["train_s"] is None else f"{r['train_s']:.0f}"
        lines.append(f"{r['lang']:<10} {r['dev_wer']:>8.2f} {r['test_wer']:>8.2f} {r['baseline']:>8.1f}"
                     f" {r['test_wer'] - r['baseline']:>+6.2f} {secs:>8} {r['epochs'] or '-':>6}")
    if len(rows) > 1:
        mean = lambda k: sum(r[k] for r in rows) / len(rows)  # noqa: E731
        lines.append(f"{'macro':<10} {mean('dev_wer'):>8.2f} {mean('test_wer'):>8.2f} {mean('baseline'):>8.2f}"
                     f" {mean('test_wer') - mean('baseline'):>+6.2f}")
    return "\n".join(lines)


def latest_rows() -> dict[tuple[str, str, int | None], dict]:
    """results.jsonl's latest row per (tag, language, seed). A tag TAG+beamN names the rows
    scored with --beam N; a rescore (--reuse) keeps the trained model's train time."""
    latest: dict[tuple[str, str, int | None], dict] = {}
    for line in RESULTS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        beam = "" if row["beam"] == 1 else f"+beam{row['beam']}"
        key = row["tag"] + beam, row["lang"], row.get("seed")
        if row["reused"] and key in latest:
            row["train_s"] = latest[key]["train_s"]
        latest[key] = row
    return latest


def mean_sd(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    sd = (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return m, sd


def show_seeds(tags: list[str]) -> str:
    """Markdown: per (tag, language), test WER mean ± sd over its seeds (n, dev mean, mean
    train and predict seconds), and the macro average of the means."""
    by: dict[tuple[str, str], list[dict]] = {}
    for (tag, lang, _), row in latest_rows().items():
        by.setdefault((tag, lang), []).append(row)
    out = ["| language | baseline | " + " | ".join(tags) + " |", "| --- " * (len(tags) + 2) + "|"]
    macro: dict[str, list[float]] = {t: [] for t in tags}
    for lang in LANGS:
        if not any((t, lang) in by for t in tags):
            continue
        cells = []
        for t in tags:
            rows = by.get((t, lang))
            if not rows:
                cells.append("-")
                continue
            m, sd = mean_sd([r["test_wer"] for r in rows])
            dev = mean_sd([r["dev_wer"] for r in rows])[0]
            secs = [r["train_s"] for r in rows if r["train_s"] is not None]
            pred = [r["predict_s"] for r in rows if r.get("predict_s") is not None]
            extra = f", train {sum(secs) / len(secs):.0f} s" if secs else ""
            extra += f", predict {sum(pred) / len(pred):.1f} s" if pred else ""
            cells.append(f"{m:.2f} ± {sd:.2f} (n={len(rows)}, dev {dev:.2f}{extra})")
            macro[t].append(m)
        out.append(f"| {lang} | {BASELINE[lang]} | " + " | ".join(cells) + " |")
    base = sum(BASELINE.values()) / len(BASELINE)
    out.append(f"| macro | {base:.2f} | " + " | ".join(
        f"{sum(v) / len(v):.2f}" + ("" if len(v) == len(LANGS) else f" ({len(v)} languages)") if v else "-"
        for v in macro.values()) + " |")
    return "\n".join(out)


def show_paired(base: str, tags: list[str]) -> str:
    """Markdown: each tag against `base` on the seeds both ran (the same seed is the same
    initial weights and data order, so seed-to-seed noise cancels): per language, dev and
    test WER as mean ± sd, and the paired difference tag − base (negative: tag better)."""
    latest = latest_rows()
    out = ["| setting | language | seeds | dev | dev: " + base + " | dev: paired difference | test | test: "
           + base + " | test: paired difference | train s |", "| --- " * 10 + "|"]
    for tag in tags:
        for lang in LANGS:
            seeds = sorted(s for (t, l, s) in latest if t == tag and l == lang and (base, lang, s) in latest)
            if not seeds:
                continue
            rows = [(latest[(tag, lang, s)], latest[(base, lang, s)]) for s in seeds]
            cells = []
            for split in ("dev_wer", "test_wer"):
                cells += [f"{m:.2f} ± {sd:.2f}" for m, sd in (mean_sd([r[split] for r, _ in rows]),
                                                             mean_sd([b[split] for _, b in rows]))]
                cells.append("{:+.2f} ± {:.2f}".format(*mean_sd([r[split] - b[split] for r, b in rows])))
            secs = [r["train_s"] for r, _ in rows if r["train_s"] is not None]
            cells.append(f"{min(secs):.0f}-{max(secs):.0f}" if secs else "-")
            out.append(f"| {tag} | {lang} | {', '.join(map(str, seeds))} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def show(tags: list[str]) -> str:
    """A markdown table of results.jsonl's latest row per (tag, language): test WER (dev WER,
    train seconds). A tag TAG+beamN names the rows scored with --beam N."""
    latest = {(tag, lang): row for (tag, lang, _), row in latest_rows().items()}
    langs = [lang for lang in LANGS if any((t, lang) in latest for t in tags)]
    out = ["| language | baseline | " + " | ".join(tags) + " |", "| --- " * (len(tags) + 2) + "|"]
    for lang in langs:
        cells = []
        for t in tags:
            r = latest.get((t, lang))
            secs = "" if r is None or r["train_s"] is None else f", {r['train_s']:.0f} s"
            cells.append("-" if r is None else f"{r['test_wer']:.2f} (dev {r['dev_wer']:.2f}{secs})")
        out.append(f"| {lang} | {BASELINE[lang]} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--langs", nargs="+", default=list(LANGS), choices=LANGS, help="languages (default: all six)")
    p.add_argument("--tag", default="defaults", help="run name: work/TAG/LANG/ and results.jsonl's tag")
    p.add_argument("--train-flags", default="", help="extra `transducer train` flags; {lang}, {work}, {data} are filled in")
    p.add_argument("--beam", type=int, default=1, help="predict beam width (1: greedy)")
    p.add_argument("--reuse", action="store_true", help="score the models already in work/TAG/ (no training)")
    p.add_argument("--show", nargs="+", metavar="TAG", help="print results.jsonl's rows of these tags as markdown; no run")
    p.add_argument("--show-seeds", nargs="+", metavar="TAG", help="as --show, mean ± sd over each tag's seeds")
    p.add_argument("--paired", metavar="BASE", help="with --show-seeds: each tag against BASE on their common seeds")
    p.add_argument("--seeds", nargs="+", type=int, help="train one model per seed (work/TAG/LANG/seedK)")
    p.add_argument("--train-words", type=int, help="keep the first N training words")
    p.add_argument("--train-only", action="store_true", help="train, score nothing (score later with --reuse)")
    args = p.parse_args()
    if args.paired and not args.show_seeds:
        p.error("--paired goes with --show-seeds")
    if args.show or args.show_seeds:
        if args.paired:
            print(show_paired(args.paired, args.show_seeds))
        else:
            print(show(args.show) if args.show else show_seeds(args.show_seeds))
        return
    print(f"tag {args.tag}: transducer train {' '.join(ARCH_FLAGS)} --val-file dev {args.train_flags}".rstrip()
          + f"; predict --beam {args.beam}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
          file=sys.stderr)
    rows = []
    for lang in args.langs:
        for seed in args.seeds or [None]:
            rows.append(run_language(lang, args, args.train_flags, seed))
            if args.train_only:
                continue
            print(table(rows[-1:]).splitlines()[-1] + ("" if seed is None else f"  seed {seed}"),
                  file=sys.stderr, flush=True)
    if not args.train_only:
        print(table(rows))


if __name__ == "__main__":
    main()
