"""Scoring a model on held-out pairs: exact match, word error rate, character error rate.

Every line of the test file counts. An input that appears on several lines has several
references: a prediction is correct if it equals any of them, and its character errors
are counted against the closest one. With n lines,

    exact_match = correct lines / n
    wer         = 1 - exact_match           (each output string is one "word")
    cer         = sum of edit distances to the closest reference
                  / sum of those references' lengths
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .data import read_pairs


@dataclass(frozen=True)
class Mistake:
    input: str  # the test input
    reference: str  # the reference closest to the prediction
    prediction: str  # what the model said
    distance: int  # edit distance between the two

    @property
    def rate(self) -> float:
        return self.distance / max(len(self.reference), 1)


@dataclass
class EvalReport:
    n: int  # test lines scored
    n_inputs: int  # distinct inputs (one prediction each)
    exact_match: float  # fraction of lines whose prediction equals a reference
    wer: float  # 1 - exact_match
    cer: float  # character edit distance / reference characters, over all lines
    mistakes: list[Mistake] = field(default_factory=list)  # one per wrong input, worst first
    skipped: int = 0  # invalid test rows left out (skip_invalid)
    skipped_detail: str = ""  # the first of them, "line L: reason; ..."

    def to_dict(self, errors: int = 0) -> dict:
        d = {"n": self.n, "n_inputs": self.n_inputs, "exact_match": self.exact_match, "wer": self.wer, "cer": self.cer}
        if errors:
            d["errors"] = [
                {"input": m.input, "reference": m.reference, "prediction": m.prediction, "distance": m.distance}
                for m in self.mistakes[:errors]
            ]
        return d


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def score(pairs: list[tuple[str, str]], predictions: dict[str, str]) -> EvalReport:
    """Metrics of `predictions` (input -> output) against the (input, reference) lines."""
    refs: dict[str, list[str]] = {}
    for src, tgt in pairs:
        refs.setdefault(src, []).append(tgt)
    correct = edits = ref_chars = 0
    mistakes = []
    reported: set[str] = set()
    for src, _ in pairs:
        pred = predictions[src]
        dist, ref = min((edit_distance(pred, r), r) for r in refs[src])
        correct += dist == 0
        edits += dist
        ref_chars += len(ref)
        if dist and src not in reported:  # one mistake per input, not per line
            reported.add(src)
            mistakes.append(Mistake(src, ref, pred, dist))
    mistakes.sort(key=lambda m: (-m.rate, -m.distance, m.input))
    n = len(pairs)
    em = correct / n if n else 0.0
    return EvalReport(
        n=n,
        n_inputs=len(refs),
        exact_match=em,
        wer=1.0 - em,
        cer=edits / ref_chars if ref_chars else float(edits > 0),
        mistakes=mistakes,
    )


def evaluate_pairs(predictor, pairs: list[tuple[str, str]], batch_size: int = 1024, on_long: str = "truncate") -> EvalReport:
    """Predict every distinct input once (in batches) and score against the pairs.
    An input longer than the model's max_len is predicted from its first max_len
    characters (on_long="truncate") or copied unchanged ("copy"), as `predict` does."""
    inputs = list(dict.fromkeys(src for src, _ in pairs))
    predictions = {s: s for s in inputs if on_long == "copy" and len(s) > predictor.max_len}
    todo = [s for s in inputs if s not in predictions]
    for i in range(0, len(todo), batch_size):
        chunk = todo[i : i + batch_size]
        outputs = predictor.predict_batch([s[: predictor.max_len] for s in chunk])
        predictions.update(zip(chunk, (out for out, _ in outputs)))
    return score(pairs, predictions)


def evaluate(
    model_dir,
    test_path: str,
    engine: str = "numpy",
    beam: int = 1,
    batch_size: int = 1024,
    skip_invalid: bool = False,
    on_long: str = "error",
    encoding_errors: str = "strict",
    unk: str = "copy",
) -> EvalReport:
    """`transducer evaluate`: score the model in `model_dir` on a pairs file.

    Rows that are not pairs (and, with on_long="error", inputs longer than the model's
    max_len) stop with their line numbers, or are left out with skip_invalid; a
    reference may be of any length. on_long, encoding_errors and unk mean what they
    mean for `predict`."""
    from .predict import Predictor

    predictor = Predictor(model_dir, engine=engine, beam=beam, unk=unk, cache=0)  # inputs are distinct already
    test = read_pairs(
        test_path,
        predictor.max_len if on_long == "error" else None,
        skip_invalid=skip_invalid,
        encoding_errors=encoding_errors,
        limit_outputs=False,
        limit_name="the model's max_len",
        fix="pass --skip-invalid (or --on-long truncate or copy for long inputs)",
    )
    report = evaluate_pairs(predictor, test.pairs, batch_size, on_long)
    report.skipped, report.skipped_detail = len(test.invalid), test.describe_invalid()
    return report


def validation_metrics(model, info, pairs: list[tuple[str, str]]) -> dict[str, float]:
    """Decoded exact match and CER of an in-memory Keras model (end of `train`)."""
    from .engine import KerasEngine
    from .predict import Predictor

    report = evaluate_pairs(Predictor(info.path, engine=KerasEngine(info, model=model), cache=0), pairs)
    return {"decoded_exact_match": report.exact_match, "cer": report.cer}
