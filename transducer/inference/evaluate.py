"""Scoring a model on held-out pairs: exact match, word error rate, character error rate.

Every line of the test file counts. An input that appears on several lines has several
references: a prediction is correct if it equals any of them, and its character errors
are counted against the closest one. With n lines,

    exact_match = correct lines / n
    wer         = 1 - exact_match           (each output string is one "word")
    cer         = sum of edit distances to the closest reference
                  / sum of those references' lengths

A label model (`--arch label`) is scored as a classifier instead (`score_labels`):
accuracy, macro-F1 (the mean over labels of each label's F1) and a confusion table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from transducer.core.config import PredictOptions
from transducer.core.data import read_pairs


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


@dataclass
class LabelReport:
    n: int  # test lines scored
    n_inputs: int  # distinct inputs (one prediction each)
    accuracy: float  # fraction of lines whose predicted label is a reference label
    macro_f1: float  # mean F1 over the labels that occur as reference or prediction
    labels: list[str]  # the confusion table's labels, sorted
    confusion: list[list[int]]  # [reference][prediction] line counts, in `labels` order
    per_label: dict[str, dict]  # label -> precision, recall, f1, support (reference lines)
    mistakes: list[Mistake] = field(default_factory=list)  # one per wrong input, in file order
    skipped: int = 0  # invalid test rows left out (skip_invalid)
    skipped_detail: str = ""  # the first of them, "line L: reason; ..."

    def to_dict(self, errors: int = 0) -> dict:
        d = {
            "n": self.n, "n_inputs": self.n_inputs, "accuracy": self.accuracy, "macro_f1": self.macro_f1,
            "labels": self.labels, "confusion": self.confusion, "per_label": self.per_label,
        }
        if errors:
            d["errors"] = [
                {"input": m.input, "reference": m.reference, "prediction": m.prediction} for m in self.mistakes[:errors]
            ]
        return d


def score_labels(pairs: list[tuple[str, str]], predictions: dict[str, str]) -> LabelReport:
    """Classifier metrics of `predictions` (input -> label) against (input, label) lines.

    As for strings, an input on several lines has several references and a prediction
    equal to any of them is right: the line then counts as (prediction, prediction) in
    the confusion table, otherwise as (its own label, prediction)."""
    refs: dict[str, set[str]] = {}
    for src, tgt in pairs:
        refs.setdefault(src, set()).add(tgt)
    scored = []  # (reference, prediction) per line
    mistakes, reported = [], set()
    for src, tgt in pairs:
        pred = predictions[src]
        scored.append((pred if pred in refs[src] else tgt, pred))
        if pred not in refs[src] and src not in reported:
            reported.add(src)
            mistakes.append(Mistake(src, tgt, pred, 1))
    labels = sorted({label for pair in scored for label in pair})
    index = {label: i for i, label in enumerate(labels)}
    confusion = [[0] * len(labels) for _ in labels]
    for ref, pred in scored:
        confusion[index[ref]][index[pred]] += 1
    per_label = {}
    for i, label in enumerate(labels):
        tp = confusion[i][i]
        support = sum(confusion[i])  # lines with this reference
        predicted = sum(row[i] for row in confusion)  # lines given this label
        per_label[label] = {
            "precision": tp / predicted if predicted else 0.0,
            "recall": tp / support if support else 0.0,
            "f1": 2 * tp / (support + predicted),  # > 0: the label occurs somewhere
            "support": support,
        }
    n = len(pairs)
    return LabelReport(
        n=n,
        n_inputs=len(refs),
        accuracy=sum(r == p for r, p in scored) / n if n else 0.0,
        macro_f1=sum(v["f1"] for v in per_label.values()) / len(labels) if labels else 0.0,
        labels=labels,
        confusion=confusion,
        per_label=per_label,
        mistakes=mistakes,
    )


def evaluate_pairs(
    predictor, pairs: list[tuple[str, str]], batch_size: int = 1024, on_long: str = "truncate"
) -> EvalReport | LabelReport:
    """Predict every distinct input once (in batches) and score against the pairs.
    An input longer than the model's max_len (in its normalized form) is predicted from
    its first max_len characters (on_long="truncate") or copied unchanged ("copy"), as
    `predict` does."""
    inputs = list(dict.fromkeys(src for src, _ in pairs))
    predictions = {s: s for s in inputs if on_long == "copy" and predictor.input_length(s) > predictor.max_len}
    todo = [s for s in inputs if s not in predictions]
    for i in range(0, len(todo), batch_size):
        chunk = todo[i : i + batch_size]
        outputs = predictor.predict_batch(chunk)  # each input's first max_len characters
        predictions.update(zip(chunk, (out for out, _ in outputs)))
    if predictor.info.model.arch == "label":
        return score_labels(pairs, predictions)
    # References in the form outputs are written in (composed, for a decomposing model).
    return score([(src, predictor.for_output(tgt)) for src, tgt in pairs], predictions)


def evaluate(
    model_dir, test_path: str, options: PredictOptions | None = None, skip_invalid: bool = False, engine=None, **overrides
) -> EvalReport | LabelReport:
    """`transducer evaluate`: score the model in `model_dir` on a pairs file.

    Rows that are not pairs (and, with on_long="error", inputs longer than the model's
    max_len) stop with their line numbers, or are left out with skip_invalid; a
    reference may be of any length. The options (PredictOptions, or `overrides` of its
    fields) mean what they mean for `predict`; engine: an engine object already loaded."""
    from transducer.inference.predict import Predictor

    opts = dataclasses.replace(options or PredictOptions(), **overrides)
    # cache 0: the inputs are distinct already
    predictor = Predictor(model_dir, dataclasses.replace(opts, nbest=1, cache=0), engine=engine)
    test = read_pairs(
        test_path,
        predictor.max_len if opts.on_long == "error" else None,
        skip_invalid=skip_invalid,
        encoding_errors=opts.encoding_errors,
        limit_outputs=False,
        limit_name="the model's max_len",
        fix="pass --skip-invalid (or --on-long truncate or copy for long inputs)",
        normalize=predictor.normalize,
        labels=predictor.info.model.arch == "label",
    )
    report = evaluate_pairs(predictor, test.pairs, opts.batch_size, opts.on_long)
    report.skipped, report.skipped_detail = len(test.invalid), test.describe_invalid()
    return report


def validation_metrics(weights: dict, info, pairs: list[tuple[str, str]]) -> dict[str, float]:
    """Decoded exact match and CER (a label model: macro-F1) of a model's weights in memory
    (networks.export.weight_arrays, at the end of `train`), decoded by the numpy engine as
    `predict` will decode the published model (and without tracing Keras step models)."""
    from transducer.inference.numpy_engine import NumpyEngine
    from transducer.inference.predict import Predictor

    return decoded_metrics(evaluate_pairs(Predictor(info.path, engine=NumpyEngine(info, weights), cache=0), pairs))


def decoded_metrics(report: EvalReport | LabelReport) -> dict[str, float]:
    """What train reports on its validation data: exact match and CER, or macro-F1."""
    if isinstance(report, LabelReport):
        return {"macro_f1": report.macro_f1}
    return {"decoded_exact_match": report.exact_match, "cer": report.cer}
