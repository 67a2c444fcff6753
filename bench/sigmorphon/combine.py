"""Ensembles put together from models already trained, scored per combination rule.

    PYTHONPATH=. python bench/sigmorphon/combine.py --from /work/main/bench/sigmorphon/work \\
        --members "defaults/{lang}/model" "defaults/{lang}/seed*/model" --name s2s3
    PYTHONPATH=. python bench/sigmorphon/combine.py --members "defaults/{lang}/seed*/model" \\
        "edit/{lang}/seed*/model" --name s2s3+edit3 --rules vote rescore
    python bench/sigmorphon/run.py --show combine-mean-s2s3 combine-vote-s2s3 combine-rescore-s2s3

For each language, the model directories matching the --members globs ({lang} filled in,
relative to --from) are assembled into one ensemble (`transducer.assemble`, in
work/combine/LANG/NAME/), and the dev and test words are predicted with each --rules rule
(`predict --combine RULE`, through the Python API of this checkout). One row per (rule,
language) is appended to results.jsonl with the tag combine-RULE-NAME, scored as run.py
scores (its phone maps and WER), plus: the members' directories, each member's own greedy
test WER and the oracle (test WER if any member's greedy output counted as right); an
ensemble among the directories brings all its members (each scored alone). The
mean rule is skipped, with a note, for a mixed ensemble.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (bench/sigmorphon/run.py: prepare, phone maps, baselines, results)

import transducer  # noqa: E402
from transducer.core.artifacts import read_info, read_members  # noqa: E402
from transducer.inference.engine import load_engine  # noqa: E402
from transducer.inference.predict import Predictor  # noqa: E402

RULES = ("mean", "vote", "rescore")


def members_of(root: Path, patterns: list[str], lang: str) -> list[Path]:
    """The model directories the patterns match for `lang`, in pattern order, each sorted."""
    found: list[Path] = []
    for pattern in patterns:
        hits = sorted(glob.glob(str(root / pattern.format(lang=lang))))
        found += [Path(h) for h in hits if (Path(h) / "config.json").is_file()]
    return list(dict.fromkeys(found))


def errors(outputs: list[str], rows: list, mapping: dict[str, str]) -> list[bool]:
    """Per word, whether the output (private-use characters) is not the reference phones."""
    back = {c: p for p, c in mapping.items()}
    return [[back.get(c, c) for c in out] != phones for out, (_, phones) in zip(outputs, rows)]


def wer(wrong: list[bool]) -> float:
    return round(100.0 * sum(wrong) / len(wrong), 2)


def score_members(ens: Path, splits: dict, mapping: dict) -> dict:
    """Each member's greedy test WER and the oracle (a word counts as right if any member
    got it right). A member runs alone (its own engine), not as the directory it sits in."""
    words = [w for w, _ in splits["test"]]
    members = read_members(read_info(ens))
    outputs = [[o for o, _ in Predictor(m.path, engine=load_engine(m)).predict_batch(words)] for m in members]
    wrong = [errors(out, splits["test"], mapping) for out in outputs]
    return {"member_test_wer": [wer(w) for w in wrong], "oracle_test_wer": wer([all(ws) for ws in zip(*wrong)])}


def score_rule(ens: Path, rule: str, beam: int, splits: dict, mapping: dict) -> dict:
    """Dev and test WER of one rule, and the test words' prediction seconds."""
    model = transducer.load(ens, combine=rule, beam=beam)
    out = {}
    for split in ("dev", "test"):
        t0 = time.perf_counter()
        outputs = model.predict([w for w, _ in splits[split]])
        out[f"{split}_wer"] = wer(errors(outputs, splits[split], mapping))
        out[f"{split}_s"] = round(time.perf_counter() - t0, 2)
    return out


def variant(rule: str, args) -> str:
    """The tag's suffix for a measured variant of the rule (rescore's length penalty)."""
    return f"-lp{args.length_penalty:g}" if rule == "rescore" and args.length_penalty is not None else ""


def run_language(lang: str, args) -> list[dict]:
    members = members_of(Path(args.source), args.members, lang)
    if sum(len(read_members(read_info(m))) for m in members) < 2:
        print(f"{lang}: fewer than 2 members in {args.members}; skipped", file=sys.stderr)
        return []
    work = run.WORK / "combine" / lang
    splits, mapping = run.prepare(lang, work)
    ens = transducer.assemble(members, work / args.name, force=True)
    archs = sorted({m.model.arch for m in read_members(read_info(ens))})
    extra = score_members(ens, splits, mapping) if args.members_wer else {}
    rows = []
    for rule in args.rules:
        if rule == "mean" and len(archs) > 1:
            print(f"{lang}: mean skipped (mixed ensemble: {', '.join(archs)})", file=sys.stderr)
            continue
        scored = score_rule(ens, rule, args.beam, splits, mapping)
        row = dict(
            time=time.strftime("%Y-%m-%dT%H:%M:%S"), tag=f"combine-{rule}-{args.name}{variant(rule, args)}", lang=lang,
            flags=f"--combine {rule}" + (f" --beam {args.beam}" if args.beam > 1 else ""), beam=args.beam,
            phones=len(mapping), dev_wer=scored["dev_wer"], test_wer=scored["test_wer"], baseline=run.BASELINE[lang],
            train_s=None, epochs=None, load=round(os.getloadavg()[0], 1), commit=run.commit(), reused=True,
            seed=None, train_words=len(splits["train"]), predict_s=scored["test_s"],
            members=[str(m) for m in members], archs=archs, **extra,
        )
        with open(run.RESULTS, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{lang} {rule:<8} dev {row['dev_wer']:6.2f} test {row['test_wer']:6.2f} ({scored['test_s']:.0f} s)"
              + (f"  members {extra['member_test_wer']} oracle {extra['oracle_test_wer']}" if extra else ""),
              file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--langs", nargs="+", default=list(run.LANGS), choices=run.LANGS)
    p.add_argument("--from", dest="source", default=str(run.WORK), help="where the --members globs start (default: work/)")
    p.add_argument("--members", nargs="+", required=True, help="model directory globs; {lang} is filled in")
    p.add_argument("--name", required=True, help="the ensemble's name: work/combine/LANG/NAME, tags combine-RULE-NAME")
    p.add_argument("--rules", nargs="+", default=list(RULES), choices=RULES)
    p.add_argument("--beam", type=int, default=1, help="predict --beam (vote: each member's; rescore: k = max(beam, 4))")
    p.add_argument("--length-penalty", type=float, help="rescore: rank by sum log P / (len + 1) ** L (combine.LENGTH_PENALTY)")
    p.add_argument("--no-members-wer", dest="members_wer", action="store_false",
                   help="skip the members' own test WER and the oracle")
    args = p.parse_args()
    if args.length_penalty is not None:  # a measurement of the rule's variant, not an option of the tool
        from transducer.inference import combine as rules

        rules.LENGTH_PENALTY = args.length_penalty
    for lang in args.langs:
        run_language(lang, args)


if __name__ == "__main__":
    main()
