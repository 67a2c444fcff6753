"""Why a model turned one input into its output: the numbers behind `transducer explain`.

seq2seq: the greedy decode of the input (what `predict` outputs), step by step: the
symbol chosen, its probability, the most probable symbols at that step, and the
attention weights over the encoder positions the decoder used to choose it.
aligned: for each output position, the chosen symbol and the most probable ones; a
character never seen in training is copied through at its position, as `predict`'s
default `--unk copy` does (the step shows it, probability 1, with the model's own top
symbols beside it).
label: one step, the chosen label with the most probable labels and their probabilities.
edit: the edit script under the input, the greedy decode `predict` outputs: one step per
action with the input position under the pointer before it, the action (COPY 'a',
SUB 'a'→'b', DEL 'a', INS 'b', END), its probability, the output written so far, and
the most probable actions allowed there. COPY writes the input's own character, so an
unseen character read as <unk> is still written as itself.

Both engines give the same numbers (numpy's attention weights are computed in its own
decoder step; Keras's come from the Attention layer with return_attention_scores=True).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import unicodedata

import numpy as np

from transducer.core import normalization
from transducer.core.artifacts import ModelInfo, output_length, read_info
from transducer.core.config import TransducerError
from transducer.inference import edit_decode
from transducer.inference.decode import NOT_EMITTED, greedy, learned_limits
from transducer.inference.probs import decode_probs
from transducer.inference.ensemble import load_engine  # an ensemble is explained as it predicts: combined
from transducer.inference.predict import copy_through
from transducer.core.vocab import END_ID, PAD_ID, UNK, UNK_ID

TOP = 3  # symbols listed per step


@dataclass(frozen=True)
class Choice:
    symbol: str  # an output symbol: a character, or </s> (the aligned model may also say <pad>)
    probability: float  # its probability at this step


@dataclass(frozen=True)
class Step:
    symbol: str  # the symbol the decoder chose at this step (</s> ends the output)
    probability: float  # its probability
    top: tuple[Choice, ...]  # the most probable symbols at this step, best first
    attention: tuple[float, ...] | None  # seq2seq: weight of each encoder position (sums to 1);
    #                                      positions past the input are padding
    pointer: int | None = None  # edit: the input position under the pointer before the
    #                             action (0-based; len(text): past the input); else None
    written: str | None = None  # edit: the output written so far, this action included,
    #                             in the form `output` is shown in (composed, for an NFD model)


EDIT_ONLY = ("pointer", "written")  # Step fields only an edit model's explanation has


@dataclass(frozen=True)
class Explanation:
    arch: str  # "aligned", "seq2seq", "label" or "edit"
    engine: str  # "numpy" or "keras"
    text: str  # the input
    input_symbols: tuple[str, ...]  # what the model reads at each input position: the character or <unk>
    unknown: tuple[str, ...]  # characters of `text` not seen in training (read as <unk>), first-seen order
    output: str  # the output string (as `predict` gives it, greedy)
    probability: float  # P(output) under the model
    steps: tuple[Step, ...]  # seq2seq: one per decoder step, </s> included; edit: one per
    #                          action, END included;
    #                          aligned: one per output position, up to its first </s>;
    #                          label: one, whose `top` are the most probable labels
    has_attention: bool  # seq2seq with --attention luong or bahdanau

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.arch != "edit":  # the other architectures' JSON keeps its keys
            for step in d["steps"]:
                for key in EDIT_ONLY:
                    del step[key]
        return d


def explain(model_dir: str | Path, text: str, engine="numpy", top: int = TOP) -> Explanation:
    """Explain the model's output for one input string. engine: "numpy" | "keras", or an
    engine already loaded for this model directory."""
    if top < 1:
        raise TransducerError("--top must be at least 1")
    info = read_info(model_dir) if isinstance(engine, str) else engine.info
    max_len = info.model.max_len
    text = normalization.normalize(info.model.normalize, text)  # the symbols the model reads
    if len(text) > max_len:
        raise TransducerError(f"the text is {len(text)} characters long; this model reads at most {max_len} (its max_len)")
    eng = load_engine(info, engine) if isinstance(engine, str) else engine
    ids, _ = info.input_vocab.encode(text, max_len)  # (T,)
    known = [info.input_vocab.id_of(ch) != UNK_ID for ch in text]
    copied = None  # aligned: the positions whose unseen character is copied through
    if info.model.arch == "label":
        steps, chosen, probability = _label_step(eng, info, ids[None], top)
    elif info.model.arch == "edit":
        steps, chosen, probability = _edit_steps(eng, info, ids[None], top, text)
    elif info.model.arch == "seq2seq":
        steps, chosen, probability = _seq2seq_steps(eng, info, ids[None], top)
        copied = np.zeros(len(chosen), bool)
    else:
        steps, chosen, probability = _aligned_steps(eng, info, ids[None], top, text)
        copied = ids == UNK_ID  # (T,)
    return Explanation(
        arch=info.model.arch,
        engine=eng.name,
        text=text,
        input_symbols=tuple(ch if ok else UNK for ch, ok in zip(text, known)),
        unknown=tuple(dict.fromkeys(ch for ch, ok in zip(text, known) if not ok)),
        output=_output(info, steps, chosen, text, copied),
        probability=probability,
        steps=tuple(steps),
        has_attention=info.model.arch == "seq2seq" and info.model.attention != "none",
    )


def _output(info: ModelInfo, steps: list[Step], chosen, text: str, copied) -> str:
    """The explained output as predict writes it: the label, or the string (edit: the
    last step's output so far) in the user's form."""
    if info.model.arch == "label":
        return steps[0].symbol
    out = steps[-1].written if info.model.arch == "edit" else copy_through(chosen, text, copied, info.output_vocab)
    return normalization.for_output(info.model.normalize, out)


def _top(probs: np.ndarray, info: ModelInfo, k: int) -> tuple[Choice, ...]:
    """The k most probable symbols of one (V,) distribution; -1 marks excluded ones."""
    order = np.argsort(-probs, kind="stable")[:k]
    return tuple(Choice(info.output_vocab.symbols[i], float(probs[i])) for i in order if probs[i] >= 0)


def _seq2seq_steps(eng, info: ModelInfo, ids: np.ndarray, k: int) -> tuple[list[Step], list[int], float]:
    """decode.greedy on one line (what predict outputs), keeping every step's numbers."""
    steps, chosen = [], []

    def record(active, probs, choice, weights):  # (1,), (1, V), (1,), (1, T) or None
        p = probs[0].astype(np.float64)  # (V,)
        emitted = p.copy()
        emitted[list(NOT_EMITTED)] = -1.0  # never emitted: not candidates (as in decode.py)
        c = int(choice[0])
        attention = None if weights is None else tuple(float(w) for w in weights[0])
        steps.append(Step(info.output_vocab.symbols[c], float(p[c]), _top(emitted, info, k), attention))
        chosen.append(c)

    limits = learned_limits(output_length(info), ids, info.model.max_len)  # (1,): as predict has it
    [candidate] = greedy(eng, ids, limits, on_step=record)
    return steps, chosen, float(np.exp(candidate.logp))


def _label_step(eng, info: ModelInfo, ids: np.ndarray, k: int) -> tuple[list[Step], list[int], float]:
    """A label model's one step: the chosen label and the k most probable labels (the
    label distribution's head), as predict's --nbest K lists them."""
    probs = eng.label_probs(ids)[0].astype(np.float64)  # (n_labels,)
    choice = int(np.argmax(probs))
    step = Step(info.output_vocab.symbols[choice], float(probs[choice]), _top(probs, info, k), None)
    return [step], [choice], float(probs[choice])


def _aligned_steps(eng, info: ModelInfo, ids: np.ndarray, k: int, text: str) -> tuple[list[Step], list[int], float]:
    """Per-position distributions, as the aligned decode reads them: argmax (an unseen
    input character copied through), up to the first end."""
    probs = eng.aligned_probs(ids)  # (1, T, V)
    best, confidence = decode_probs(probs, ids, copy_unk=True)  # (1, T), (1,)
    chosen = best[0]  # (T,): <unk> where the input character is copied
    ends = np.flatnonzero((chosen == END_ID) | (chosen == PAD_ID))
    last = int(ends[0]) if len(ends) else len(chosen) - 1
    steps = []
    for t, c in enumerate(chosen[: last + 1]):
        top = _top(probs[0, t].astype(np.float64), info, k)
        if c == UNK_ID and ids[0, t] == UNK_ID:
            steps.append(Step(text[t], 1.0, top, None))  # copied, not modelled
        else:
            steps.append(Step(info.output_vocab.symbols[c], float(probs[0, t, c]), top, None))
    return steps, chosen.tolist(), float(confidence[0])


def _edit_steps(eng, info: ModelInfo, ids: np.ndarray, k: int, text: str) -> tuple[list[Step], None, float]:
    """edit_decode.greedy on one line (what predict outputs), keeping every action's
    numbers: the pointer before it, its probability, the output so far, and the k most
    probable actions valid there (the output cap included)."""
    actions = info.output_vocab
    seen = []  # (probs (A,), valid (A,) bool, chosen action) per step

    def record(active, probs, logp, choice):  # (1,), (1, A), (1, A), (1,)
        seen.append((probs[0].astype(np.float64), np.isfinite(logp[0]), int(choice[0])))

    limits = learned_limits(output_length(info), ids, info.model.max_len)  # (1,): as predict has it
    [candidate] = edit_decode.greedy(eng, ids, [text], actions, limits, on_step=record)
    steps, pointer, written = [], 0, ""  # written: in the model's form
    for probs, valid, a in seen:
        under = text[pointer] if pointer < len(text) else None
        written += edit_decode.render([a], text[pointer:], actions)
        order = [b for b in np.argsort(-probs, kind="stable") if valid[b]][:k]
        top = tuple(Choice(action_label(actions, b, under), float(probs[b])) for b in order)
        shown = normalization.for_output(info.model.normalize, written)  # as the output is shown
        steps.append(Step(action_label(actions, a, under), float(probs[a]), top, None, pointer, shown))
        pointer += int(actions.advance[a])
    return steps, None, float(np.exp(candidate.logp))


def action_label(actions, a: int, under: str | None) -> str:
    """How explain names action `a` with `under` (None: past the input) under the
    pointer: COPY 'a', SUB 'a'→'b', DEL 'a', INS 'b', END. A combining mark (an NFD
    model writes accents apart) is shown on a dotted circle, '◌̂', as Unicode's charts do."""
    kind = actions.kind(a)
    if kind == "copy":
        return f"COPY {shown_char(under)}"
    if kind == "delete":
        return f"DEL {shown_char(under)}"
    if kind == "substitute":
        return f"SUB {shown_char(under)}→{shown_char(actions.char(a))}"
    if kind == "insert":
        return f"INS {shown_char(actions.char(a))}"
    return actions.name(a)


def shown_char(ch: str) -> str:
    """A character as explain quotes it: repr, a combining mark on a dotted circle ('◌̈'),
    so a mark never lands on the quote before it."""
    return repr(f"\u25cc{ch}" if unicodedata.combining(ch) else ch)
