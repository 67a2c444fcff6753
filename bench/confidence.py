"""What a prediction's confidence tells: mean confidence of right and wrong answers, and
how well it separates them (AUROC), for one or more trained models on one test file.

    python bench/confidence.py sample_data/dates.test.tsv models/conf-ls0.1 models/conf-ls0

An answer is right when it equals any reference of its input (as `evaluate` counts).
AUROC is the probability that a random right answer has a higher confidence than a random
wrong one (ties count half): 0.5 says nothing, 1.0 separates them perfectly. Docs:
docs/concepts/confidence.md.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

import numpy as np

import transducer


def read_references(path: str) -> dict[str, set[str]]:
    refs: dict[str, set[str]] = defaultdict(set)
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                src, ref = line.rstrip("\n").split("\t")
                refs[src].add(ref)
    return refs


def auroc(right: np.ndarray, wrong: np.ndarray) -> float:
    """Mann-Whitney U / (n_right * n_wrong), from ranks (ties get their mean rank)."""
    scores = np.concatenate([right, wrong])
    order = scores.argsort(kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # average the ranks of tied scores
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    u = ranks[: len(right)].sum() - len(right) * (len(right) + 1) / 2
    return float(u / (len(right) * len(wrong)))


def measure(model_dir: str, refs: dict[str, set[str]]) -> dict:
    model = transducer.load(model_dir)
    inputs = list(refs)
    preds = model.predictions(inputs)
    conf = np.array([p.confidence for p in preds], dtype=np.float64)
    ok = np.array([p.output in refs[p.input] for p in preds])
    return {
        "model": model_dir,
        "label_smoothing": model.info.raw.get("train", {}).get("label_smoothing"),
        "n": len(inputs),
        "exact_match": ok.mean(),
        "mean_conf_right": conf[ok].mean() if ok.any() else float("nan"),
        "median_conf_right": float(np.median(conf[ok])) if ok.any() else float("nan"),
        "mean_conf_wrong": conf[~ok].mean() if (~ok).any() else float("nan"),
        "auroc": auroc(conf[ok], conf[~ok]) if ok.any() and (~ok).any() else float("nan"),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("test_file")
    ap.add_argument("model_dirs", nargs="+")
    args = ap.parse_args(argv)
    refs = read_references(args.test_file)
    cols = ["model", "label_smoothing", "n", "exact_match", "mean_conf_right", "median_conf_right", "mean_conf_wrong", "auroc"]
    print("| " + " | ".join(cols) + " |")
    print("|" + " --- |" * len(cols))
    for d in args.model_dirs:
        row = measure(d, refs)
        print("| " + " | ".join(f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c]) for c in cols) + " |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
