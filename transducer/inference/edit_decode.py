"""Decoding an edit model (`--arch edit`): the search over action paths, and their outputs.
TensorFlow-free and engine-agnostic (any engine with edit_encode / edit_step: numpy,
Keras, an ensemble), batched over lines.

Actions (core/edits.py): COPY writes the INPUT character under the pointer, the line's
own character, so a character never seen in training is copied through too (that is
why the searches are given the input strings, not only their ids); SUBSTITUTE(c) and
INSERT(c) write c; DELETE writes nothing; COPY, DELETE and SUBSTITUTE advance the
pointer; END, allowed once the pointer is past the input, finishes. `render` spells a
path against its input string.

Valid actions: the model's own mask (networks/edit.ActionMask: COPY, DELETE and
SUBSTITUTE while the pointer is on a character, END once it is past the input, INSERT
always) and, on top of it, the output cap: `limits`, the learned output length bound
(config.OutputLength, as decode.learned_limits gives it) or max_len. Once a path has
written its cap only DELETE and then END remain (EditActions.valid_mask), so every path
ends within n + cap + 1 steps. A path's probability is the product of its actions'
probabilities under the model, not renormalised at the cap (as seq2seq's search keeps
</s>'s probability at its limit); probabilities are clamped at 1e-30 before the log.

Searches:
  greedy        the most probable valid action at every step, for all lines at once
  beam search   up to K live paths per line; every path that can END (pointer past the
                input) is offered as a finished candidate; the K most probable other
                extensions live on. Outputs are ranked as seq2seq's (decode.score):

                    score = log P(path) / (len(output) + 1) ** length_penalty

                length_penalty 1, as seq2seq's: 0 and 0.5 were measured against it
                with beam 5 (docs/concepts/decoding.md: better on one dev set,
                worse on another), not better.

Strings, not paths. Several action paths can spell one output string (COPY or
SUBSTITUTE by the same character; DELETE then INSERT or SUBSTITUTE). The n-best lists
distinct STRINGS: a string found by several paths keeps its best path, whose probability
is the string's confidence. That is the Viterbi probability, a lower bound of the
string's total probability (the sum over all of its paths, which no search enumerates):
the best path's is simpler, it is what the search ranks, and it matches seq2seq's
confidence, the probability of the one path the string has there.

Exactness. Greedy's output is a finished candidate before the beam starts, so the best
of a beam never ranks below greedy. A live path with log probability L has written at
most `cap` characters when it finishes, and log probabilities only fall as it grows,
so no completion scores above L / (cap + 1) ** length_penalty; it is dropped once that
bound cannot beat the line's nbest-th finished string (its completions could neither
enter the n-best nor raise the score of a string already in it, which scores at least
that much). A line ends when no live path is left. With a beam wide enough to hold every
path, the search returns exactly the n best strings of an exhaustive enumeration
(tests/test_edit_decode.py checks it against one).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from transducer.core.edits import COPY_ACTION, END_ACTION, PAD_ACTION, START_ACTION, EditActions
from transducer.core.vocab import END_ID, PAD_ID
from transducer.inference.decode import NBest, score, top_extensions

LOG_FLOOR = 1e-30  # probabilities are clamped here before the log, as in decode.py


@dataclass(frozen=True)
class EditCandidate:
    actions: tuple[int, ...]  # the action path, END last
    output: str  # what the path writes on its input (the model's normalization form)
    logp: float  # log P(path) under the model
    score: float  # what candidates are ranked by (see the module docstring)


def with_end(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, T) right-padded input ids -> ((B, T + 1) ids with </s> at each row's length n,
    (B,) lengths n): where the pointer stands once past the input."""
    lengths = np.count_nonzero(ids != PAD_ID, axis=1)  # (B,)
    out = np.full((len(ids), ids.shape[1] + 1), PAD_ID, dtype=ids.dtype)  # (B, T + 1)
    out[:, :-1] = ids
    out[np.arange(len(ids)), lengths] = END_ID
    return out, lengths


@functools.lru_cache(maxsize=8)
def _tables(actions: EditActions):
    """Per action id, as Python values and small arrays, computed once per vocabulary:
    (the character it writes, "" for none and None for COPY; its pointer move; the
    actions valid in each state (4, A) bool, indexed by 2 * (output full) + (pointer
    past the input), from EditActions.valid_mask, the rule's one owner)."""
    writes = tuple(None if a == COPY_ACTION else (actions.char(a) or "") for a in range(len(actions)))
    moves = tuple(int(m) for m in actions.advance)
    states = actions.valid_mask(np.array([0, 1, 0, 1]), 1, np.array([0, 0, 1, 1]), 1)  # (4, A)
    return writes, moves, states


def render(path, string: str, actions: EditActions) -> str:
    """What an action path writes on `string`, up to its END: COPY the input's own
    character under the pointer, SUBSTITUTE and INSERT their character."""
    writes, moves, _ = _tables(actions)
    out, i = [], 0
    for a in path:
        if a == END_ACTION:
            break
        w = writes[a]
        out.append(string[i] if w is None else w)
        i += moves[a]
    return "".join(out)


def log_probs(probs: np.ndarray, actions: EditActions, pointer, n, written, limits) -> np.ndarray:
    """(N, A) clamped log-probabilities with every action invalid in its hypothesis's
    state (pointer, input length n, characters written, output cap) at -inf."""
    state = 2 * (written >= limits) + (pointer >= n)  # (N,)
    valid = _tables(actions)[2][state]  # (N, A)
    return np.where(valid, np.log(np.maximum(probs, LOG_FLOOR)), -np.inf)


def _candidate(path, string: str, logp: float, actions: EditActions, length_penalty: float) -> EditCandidate:
    """A finished path (up to its first END; what follows is padding) as a candidate."""
    path = path.tolist() if isinstance(path, np.ndarray) else list(path)
    path = path[: path.index(END_ACTION) + 1]
    out = render(path, string, actions)
    return EditCandidate(tuple(path), out, float(logp), float(score(logp, len(out), length_penalty)))


def _encode(engine, ids: np.ndarray):
    """(B, T) input ids -> (the engine's encoding of each line, (B,) input lengths n)."""
    x, n = with_end(ids)
    return engine.edit_encode(x), n


def greedy(engine, ids: np.ndarray, strings: list[str], actions: EditActions, limits,
           length_penalty: float = 1.0, on_step=None) -> list[EditCandidate]:
    """The most probable valid action at each step, per line. ids: (B, T) right-padded
    input ids of `strings` (the model's form); limits: an int or (B,) most output
    characters per line.

    on_step(active, probs, logp, choice), when given, is called after every step with the
    lines still decoding (a,), the model's action probabilities (a, A), their clamped
    log-probabilities with invalid actions at -inf (a, A) and the actions chosen (a,):
    explain.py's view of the same decode."""
    enc, n = _encode(engine, ids)
    return _greedy(engine, enc, n, strings, actions, _limits(limits, len(ids)), length_penalty, on_step)


def _limits(limits, B: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(limits, dtype=np.int64), (B,))


def _greedy(engine, enc, n, strings, actions: EditActions, limits: np.ndarray, length_penalty=1.0,
            on_step=None) -> list[EditCandidate]:
    """Greedy from encoded lines; finished lines leave the batch (their rows of `enc` are
    never copied: each step names the lines it runs)."""
    B = len(n)
    S = int((n + limits).max(initial=0)) + 1  # every path has ENDed by then
    states = engine.edit_initial_states(B)
    active = np.arange(B)  # lines still decoding
    pointer, written = np.zeros(B, np.int64), np.zeros(B, np.int64)
    prev = np.full(B, START_ACTION, np.int64)
    paths = np.full((B, S), PAD_ACTION, np.int64)  # (B, S)
    logp = np.zeros(B)
    for t in range(S):
        probs, states = engine.edit_step(enc, active, pointer, prev, n[active], states)  # (a, A)
        lp = log_probs(probs, actions, pointer, n[active], written, limits[active])  # (a, A)
        choice = lp.argmax(axis=-1)  # (a,)
        logp[active] += lp[np.arange(len(active)), choice]
        paths[active, t] = choice
        if on_step is not None:
            on_step(active, probs, lp, choice)
        pointer = pointer + actions.advance[choice]
        written = written + actions.writes[choice]
        prev = choice
        going = choice != END_ACTION
        if not going.all():
            active, pointer, written, prev = active[going], pointer[going], written[going], prev[going]
            states = [s[going] for s in states]
        if not len(active):
            break
    return [_candidate(p, s, l, actions, length_penalty) for p, s, l in zip(paths, strings, logp)]


@dataclass(frozen=True)
class _Live:
    """The live paths of every line, as rows sorted by line."""

    line: np.ndarray  # (N,) each row's line
    logp: np.ndarray  # (N,) log P of its actions so far
    paths: np.ndarray  # (N, t) its actions so far
    pointer: np.ndarray  # (N,) the input position under its pointer
    written: np.ndarray  # (N,) the characters it has written
    states: list  # decoder states, each (N, H)

    def prev(self) -> np.ndarray:
        """(N,) the action each row feeds the decoder next (the start symbol at first)."""
        if self.paths.shape[1] == 0:
            return np.full(len(self.line), START_ACTION, np.int64)
        return self.paths[:, -1]

    def select(self, keep: np.ndarray) -> "_Live":
        if keep.all():
            return self
        return _Live(self.line[keep], self.logp[keep], self.paths[keep], self.pointer[keep], self.written[keep],
                     [s[keep] for s in self.states])


def beam_search(engine, ids: np.ndarray, strings: list[str], actions: EditActions, limits, beam: int,
                nbest: int = 1, length_penalty: float = 1.0) -> list[list[EditCandidate]]:
    """The `nbest` best distinct output strings found by a width-`beam` search, per line,
    best first (see the module docstring). beam 1 is greedy."""
    B = len(ids)
    limits = _limits(limits, B)
    if beam == 1:
        return [[c] for c in greedy(engine, ids, strings, actions, limits, length_penalty)]
    enc, n = _encode(engine, ids)
    best = NBest(B, nbest, key=lambda c: c.output)
    for b, cand in enumerate(_greedy(engine, enc, n, strings, actions, limits, length_penalty)):
        best.add(b, cand)
    zeros = np.zeros(B, np.int64)
    live = _Live(np.arange(B), np.zeros(B), np.zeros((B, 0), np.int64), zeros, zeros, engine.edit_initial_states(B))
    for _ in range(int((n + limits).max(initial=0)) + 1):
        probs, states = engine.edit_step(enc, live.line, live.pointer, live.prev(), n[live.line], live.states)
        lp = log_probs(probs, actions, live.pointer, n[live.line], live.written, limits[live.line])  # (N, A)
        _finish(best, live, lp[:, END_ACTION], strings, actions, length_penalty)
        ext = live.logp[:, None] + lp  # (N, A): every one-action extension
        ext[:, END_ACTION] = -np.inf  # those are finished now
        line, src, act, logp = top_extensions(live.line, ext, beam)
        live = _Live(line, logp, np.concatenate([live.paths[src], act[:, None]], axis=1),
                     live.pointer[src] + actions.advance[act], live.written[src] + actions.writes[act],
                     [s[src] for s in states])
        bound = score(live.logp, limits[live.line], length_penalty)  # (N,) best reachable scores
        live = live.select(bound > best.threshold[live.line])
        if not len(live.line):
            break
    return best.items


def _finish(best: NBest, live: _Live, end_lp: np.ndarray, strings, actions: EditActions, length_penalty: float) -> None:
    """Offer every row's extension by END (-inf where END is not valid) to its line's n best."""
    logp = live.logp + end_lp  # (N,)
    end_score = score(logp, live.written, length_penalty)  # (N,): a row's output has `written` characters
    for r in np.flatnonzero(end_score > best.threshold[live.line]):  # the others cannot enter
        b = int(live.line[r])
        path = (*live.paths[r].tolist(), END_ACTION)
        best.add(b, _candidate(path, strings[b], logp[r], actions, length_penalty))
