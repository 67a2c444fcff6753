"""Decoding an edit model (`--arch edit`): action sequences -> output strings.
TensorFlow-free and engine-agnostic: any engine with edit_encode / edit_step.

Greedy: at every step the most probable action allowed there, for all lines at once. The
model's own mask (networks/edit.ActionMask) allows COPY, DELETE and SUBSTITUTE while the
pointer is on a character, END once it is past the input, INSERT always; on top of it the
output cap (the learned output length bound, config.OutputLength, or max_len) removes
every writing action once a line has written its cap (EditActions.valid_mask), so only
DELETE and then END remain and every line ends within n + cap + 1 steps. The probability
of a line is the product of its chosen actions' probabilities, not renormalised at the
cap (as seq2seq's search keeps </s>'s probability at its limit).

Applying an action: COPY writes the INPUT character under the pointer (the line's own
character, so a character never seen in training is copied too), SUBSTITUTE(c) and
INSERT(c) write c, DELETE writes nothing; COPY, DELETE and SUBSTITUTE advance the pointer.
"""

from __future__ import annotations

import numpy as np

from transducer.core.edits import COPY_ACTION, END_ACTION, START_ACTION, EditActions
from transducer.core.vocab import END_ID, PAD_ID

LOG_FLOOR = 1e-30  # probabilities are clamped here before the log, as in decode.py


def with_end(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, T) right-padded input ids -> ((B, T + 1) ids with </s> at each row's length n,
    (B,) lengths n): where the pointer stands once past the input."""
    lengths = np.count_nonzero(ids != PAD_ID, axis=1)  # (B,)
    out = np.full((len(ids), ids.shape[1] + 1), PAD_ID, dtype=ids.dtype)  # (B, T + 1)
    out[:, :-1] = ids
    out[np.arange(len(ids)), lengths] = END_ID
    return out, lengths


def greedy(engine, ids: np.ndarray, strings: list[str], actions: EditActions, limits: np.ndarray):
    """[(output string, log P)] per line. ids: (B, T) right-padded input ids of `strings`
    (the model's form); limits: (B,) most output characters per line."""
    B = len(ids)
    x, n = with_end(ids)
    enc = engine.edit_encode(x)  # (B, T + 1, W)
    states = [np.zeros((B, s), np.float32) for s in _state_widths(engine, enc)]
    pointer, written = np.zeros(B, np.int64), np.zeros(B, np.int64)
    prev = np.full(B, START_ACTION, np.int64)
    active = np.arange(B)  # lines still decoding
    out: list[list[str]] = [[] for _ in range(B)]
    logp = np.zeros(B)
    for _ in range(int((n + limits).max(initial=0)) + 1):
        probs, states = engine.edit_step(pointer, prev, enc, n[active], states)  # (a, A)
        probs = np.where(actions.valid_mask(pointer, n[active], written, limits[active]), probs, 0.0)
        choice = probs.argmax(axis=-1)  # (a,)
        logp[active] += np.log(np.maximum(probs[np.arange(len(active)), choice], LOG_FLOOR))
        for b, a, i in zip(active, choice, pointer):
            if a == COPY_ACTION:
                out[b].append(strings[b][i])
            elif actions.writes[a]:
                out[b].append(actions.char(a))
        pointer = pointer + actions.advance[choice]
        written = written + actions.writes[choice]
        prev = choice
        going = choice != END_ACTION
        if not going.all():
            active, pointer, written, prev, enc = active[going], pointer[going], written[going], prev[going], enc[going]
            states = [s[going] for s in states]
        if not len(active):
            break
    return [("".join(o), float(l)) for o, l in zip(out, logp)]


def _state_widths(engine, enc: np.ndarray) -> list[int]:
    """Each decoder layer's state width: hidden (an ensemble: its members' concatenated)."""
    cfg = engine.info.model
    members = enc.shape[-1] // (cfg.hidden * (2 if cfg.bidirectional else 1))
    return [cfg.hidden * members] * cfg.layers
