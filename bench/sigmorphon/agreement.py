"""How close a student is to its teacher, word by word: the share of words on which a
model's output differs from the teacher's, for the teacher's members and its students.

    python bench/sigmorphon/agreement.py --teacher "combine/{lang}/edit5" \\
        --members "edit-path/{lang}/seed[1-5]/model" \\
        --students "edit5-student-a0.8/{lang}/seed*/model" --langs arm_e hun

Issue 27 asks for a student "closer to [its teacher] than a single model is on dev". The
difference of two WERs reads that with one dev word as its unit (0.1 on 1,000 words) and
lets two models that are wrong on different words look equally close. Counting the words
where the outputs differ says directly whether a model follows its teacher. For each
language, every model (globs relative to --from, or absolute; {lang} filled in) predicts
the dev and test words greedily through this checkout's Python API (the teacher with its
own default combination); printed: a markdown table of, per split, each group's
disagreement with the teacher (mean ± sd over its models, % of words), its WER's distance
to the teacher's and the teacher's WER. One JSON line per language goes to
agreement.jsonl beside this script.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (bench/sigmorphon/run.py: the splits, phone maps)
from combine import errors, members_of, wer  # noqa: E402  (model globs, WER as combine.py scores it)

import transducer  # noqa: E402

SPLITS = ("dev", "test")
RECORD = HERE / "agreement.jsonl"


def outputs(model: Path, words: dict[str, list[str]]) -> dict[str, list[str]]:
    """The model's greedy output for every word of every split."""
    loaded = transducer.load(model)
    return {split: loaded.predict(ws) for split, ws in words.items()}


def differ(a: list[str], b: list[str]) -> float:
    """% of words on which two output lists differ."""
    return 100.0 * sum(x != y for x, y in zip(a, b)) / len(a)


def mean_sd(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs):.2f}" if len(xs) > 1 else f"{xs[0]:.2f}"


def measure(lang: str, args) -> dict | None:
    root = Path(args.source)
    teacher = members_of(root, [args.teacher], lang)
    groups = {"members": members_of(root, args.members, lang), "students": members_of(root, args.students, lang)}
    if not teacher or not all(groups.values()):
        print(f"{lang}: no teacher, members or students under {root}; skipped", file=sys.stderr)
        return None
    splits, mapping = run.prepare(lang, run.WORK / "agreement" / lang)
    words = {s: [w for w, _ in splits[s]] for s in SPLITS}
    t_out = outputs(teacher[0], words)
    row = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "lang": lang, "commit": run.commit(),
           "load": round(os.getloadavg()[0], 1), "teacher": str(teacher[0])}
    for split in SPLITS:
        row[f"teacher_{split}_wer"] = wer(errors(t_out[split], splits[split], mapping))
    for name, dirs in groups.items():
        row[name] = [str(d) for d in dirs]
        outs = [outputs(d, words) for d in dirs]
        for split in SPLITS:
            row[f"{name}_{split}_differ"] = [round(differ(o[split], t_out[split]), 2) for o in outs]
            row[f"{name}_{split}_wer"] = [wer(errors(o[split], splits[split], mapping)) for o in outs]
    with open(RECORD, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return row


def table(rows: list[dict]) -> str:
    head = ("| language | split | teacher WER | members: differ from teacher (%) | students: differ (%) "
            "| members: \\|WER − teacher\\| | students: \\|WER − teacher\\| |")
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        for split in SPLITS:
            t = r[f"teacher_{split}_wer"]
            dist = {g: [abs(w - t) for w in r[f"{g}_{split}_wer"]] for g in ("members", "students")}
            lines.append(f"| {r['lang']} | {split} | {t:.2f} | {mean_sd(r[f'members_{split}_differ'])} "
                         f"| {mean_sd(r[f'students_{split}_differ'])} | {mean_sd(dist['members'])} | {mean_sd(dist['students'])} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--langs", nargs="+", default=list(run.LANGS), choices=run.LANGS)
    p.add_argument("--from", dest="source", default=str(run.WORK), help="where relative globs start (default: work/)")
    p.add_argument("--teacher", required=True, help="the teacher's model directory; {lang} is filled in")
    p.add_argument("--members", nargs="+", required=True, help="the teacher's members alone (globs)")
    p.add_argument("--students", nargs="+", required=True, help="the students (globs)")
    args = p.parse_args()
    rows = [r for r in (measure(lang, args) for lang in args.langs) if r]
    print(table(rows))


if __name__ == "__main__":
    main()
