"""Forced scoring: how probable a GIVEN output string is under one model. TensorFlow-free,
engine-agnostic, batched over lines and candidates. combine.py's rescoring calls it with
every member on every member's candidates, whatever their architectures.

The score is log P(output | input), the quantity the model's own searches rank by
(decode.py, edit_decode.py), computed by running the model along the candidate instead
of along its own choices:

  seq2seq  teacher forcing: sum_t log p(y_t | y_<t, x) + log p(</s> | y, x), one decoder
           step per symbol, every candidate of every line at once.
  aligned  prod_{t < len(y)} p_t(y_t) * p_len(y)(</s>) (no </s> factor at full length),
           as decode.aligned_kbest scores strings; with --unk copy a position whose input
           character is unseen is the input's character with probability 1 (any other
           character there, or the end of the string, has probability 0: the floor).
  label    log p(label).
  edit     log P of the most probable action path that spells the candidate: a search
           constrained to the actions that keep writing it (COPY where the input
           character is the next one, SUBSTITUTE and INSERT of exactly that character,
           DELETE, END once the input and the candidate are both used up), keeping the
           FORCED_BEAM most probable partial paths per candidate and dropping any that
           can no longer beat the best finished one (log P only falls). Exact when the
           beam holds every partial path (checked against an exhaustive enumeration on
           tiny models); the decoder's own output scores at least its search's log P,
           equal when the search found the string's best path. Paths differ in
           probability, not in the string, so this is the Viterbi score the edit
           decoder's n-best also reports (edit_decode.py).

For the model's own output, forced scoring gives the search's log P back (up to float
rounding: the batch differs; an edit model's: at least that), tested in
tests/test_combine.py.

Probabilities are clamped at 1e-30 before the log (LOG_FLOOR, as decode.py clamps them):
a character a model cannot write (outside its output vocabulary: an edit member may copy
an unseen input character through) costs log(1e-30) per occurrence instead of making the
sum -inf, so one member's gap penalises a candidate without vetoing it outright (an edit
model scores the candidate without such characters, plus that cost; a candidate no action
path can spell at all gets log(1e-30) per character and one more for the end). Output
length bounds (config.OutputLength) are search limits, not part of the model: a
candidate longer than a member would have written is scored all the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transducer.core.edits import COPY_ACTION, DELETE_ACTION, END_ACTION, START_ACTION
from transducer.core.vocab import END_ID, PAD_ID, START_ID, UNK_ID
from transducer.inference.decode import top_extensions
from transducer.inference.edit_decode import with_end

LOG_FLOOR = float(np.log(1e-30))  # the log-probability of an impossible symbol (see above)
FORCED_BEAM = 8  # edit: partial action paths kept per candidate (see above)


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(p, 1e-30))


def _symbol_logp(probs: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """(..., V) probabilities, (...) symbol ids -> (...) their clamped log-probabilities;
    <unk> (a character outside the vocabulary) gets the floor: no search emits it."""
    lp = _log(np.take_along_axis(probs, symbols[..., None], axis=-1)[..., 0])
    return np.where(symbols == UNK_ID, LOG_FLOOR, lp)


def _flatten(cands: list[list[str]]) -> tuple[np.ndarray, list[str]]:
    """Per-line candidate lists -> ((R,) each candidate's line, R candidates)."""
    line = np.array([b for b, cs in enumerate(cands) for _ in cs], dtype=np.int64)
    return line, [s for cs in cands for s in cs]


def _unflatten(values: np.ndarray, cands: list[list[str]]) -> list[np.ndarray]:
    """(R,) values in _flatten's order -> one array per line."""
    return np.split(np.asarray(values, dtype=np.float64), np.cumsum([len(cs) for cs in cands])[:-1])


def logp(engine, ids: np.ndarray, strings: list[str], cands: list[list[str]], copy_unk: bool = False) -> list[np.ndarray]:
    """Per line, log P of each of its candidates (model-form strings) under the engine's
    model (one model, not an ensemble): ids (B, T) right-padded input ids of `strings`
    (the model's form). copy_unk: an aligned model's --unk copy."""
    info = engine.info
    arch, vocab = info.model.arch, info.output_vocab
    if arch == "seq2seq":
        return seq2seq_logp(engine, ids, cands, vocab)
    if arch == "aligned":
        return aligned_logp(engine, ids, strings, cands, vocab, copy_unk)
    if arch == "label":
        return label_logp(engine, ids, cands, vocab)
    return edit_logp(engine, ids, strings, cands, vocab)


def seq2seq_logp(engine, ids: np.ndarray, cands: list[list[str]], vocab) -> list[np.ndarray]:
    """log P of each candidate (model-form strings) of each line of (B, T) input ids.

    Candidates are sorted longest first, so the ones still being scored at step t are a
    prefix of the rows and finished ones simply drop off the end."""
    line, flat = _flatten(cands)
    if not flat:
        return _unflatten(np.zeros(0), cands)
    lens = np.array([len(s) for s in flat], dtype=np.int64)
    order = np.argsort(-lens, kind="stable")
    lens_o = lens[order]
    R, L = len(flat), int(lens.max())
    tgt, _ = vocab.encode_batch([flat[i] for i in order], L + 1, fill=PAD_ID)  # (R, L + 1)
    tgt[np.arange(R), lens_o] = END_ID
    enc, init, mask = engine.seq2seq_encode(ids)  # (B, T, W), (B, W), (B, T) or None
    rows = line[order]
    enc, mask = enc[rows], None if mask is None else mask[rows]  # (R, T, W), (R, T)
    states = [init[rows]] * engine.decoder_layers
    prev = np.full(R, START_ID, np.int32)
    logp = np.zeros(R)
    for t in range(L + 1):
        n = int(np.count_nonzero(lens_o >= t))  # rows still scoring: a prefix
        enc, mask, prev = enc[:n], None if mask is None else mask[:n], prev[:n]
        probs, states = engine.seq2seq_step(prev, enc, mask, [s[:n] for s in states])  # (n, V)
        logp[:n] += _symbol_logp(probs, tgt[:n, t])
        prev = tgt[:n, t].astype(np.int32)
    out = np.empty(R)
    out[order] = logp
    return _unflatten(out, cands)


def aligned_logp(engine, ids: np.ndarray, strings: list[str], cands: list[list[str]], vocab,
                 copy_unk: bool = False) -> list[np.ndarray]:
    """log P of each candidate of each line of (B, T) input ids under an aligned model
    (strings: the lines, model form, for --unk copy's copied characters)."""
    line, flat = _flatten(cands)
    if not flat:
        return _unflatten(np.zeros(0), cands)
    probs = engine.aligned_probs(ids)  # (B, T, V)
    T = ids.shape[1]
    lens = np.array([len(s) for s in flat], dtype=np.int64)
    tgt, _ = vocab.encode_batch(flat, T, fill=PAD_ID)  # (R, T): characters past T are dropped
    ended = lens < T
    tgt[np.flatnonzero(ended), lens[ended]] = END_ID
    counted = np.arange(T)[None, :] <= lens[:, None]  # (R, T): the characters and the </s>
    per = _symbol_logp(probs[line], tgt)  # (R, T)
    if copy_unk:
        copied = ids[line] == UNK_ID  # (R, T)
        for r, t in zip(*np.nonzero(copied & counted)):
            same = t < lens[r] and flat[r][t] == strings[line[r]][t]
            per[r, t] = 0.0 if same else LOG_FLOOR
    logp = np.where(counted, per, 0.0).sum(axis=1) + LOG_FLOOR * np.maximum(lens - T, 0)
    return _unflatten(logp, cands)


def label_logp(engine, ids: np.ndarray, cands: list[list[str]], labels) -> list[np.ndarray]:
    """log p(label) of each candidate label of each line; an unknown label gets the floor."""
    lp = _log(engine.label_probs(ids))  # (B, n_labels)
    return [
        np.array([lp[b, labels.id_of(c)] if labels.id_of(c) >= 0 else LOG_FLOOR for c in cs], dtype=np.float64)
        for b, cs in enumerate(cands)
    ]


def edit_logp(engine, ids: np.ndarray, strings: list[str], cands: list[list[str]], actions,
              beam: int | None = None) -> list[np.ndarray]:
    """log P of the best action path spelling each candidate of each line (see the module
    docstring); all candidates' paths advance together, `beam` (FORCED_BEAM) per candidate."""
    beam = beam or FORCED_BEAM
    line, flat = _flatten(cands)
    if not flat:
        return _unflatten(np.zeros(0), cands)
    targets, penalty = zip(*(_writable(y, strings[b], actions) for b, y in zip(line, flat)))
    x, n = with_end(ids)
    enc = engine.edit_encode(x)  # (B, T + 1, X)
    tables = _tables(targets, line, strings, actions)
    R = len(flat)
    live = _Paths(np.arange(R), np.zeros(R), np.zeros(R, np.int64), np.zeros(R, np.int64),
                  np.full(R, START_ACTION, np.int64), engine.edit_initial_states(R))
    best = np.full(R, -np.inf)  # (R,) the best finished path's log P so far
    for _ in range(int((n[line] + tables.lengths).max()) + 1):
        rows = line[live.cand]
        probs, states = engine.edit_step(enc, rows, live.i, live.prev, n[rows], live.states)  # (N, A)
        lp = np.where(_spelling_mask(live, tables, n[rows], len(actions)), _log(probs), -np.inf)  # (N, A)
        np.maximum.at(best, live.cand, live.logp + lp[:, END_ACTION])
        ext = live.logp[:, None] + lp
        ext[:, END_ACTION] = -np.inf  # finished above
        cand, src, act, logp = top_extensions(live.cand, ext, beam)
        live = _Paths(cand, logp, live.i[src] + actions.advance[act], live.j[src] + actions.writes[act],
                      act.astype(np.int64), [s[src] for s in states])
        live = live.select(live.logp > best[live.cand])  # log P only falls: these cannot win
        if not len(live.cand):
            break
    lens = np.array([len(y) for y in flat])
    out = np.where(np.isfinite(best), best + np.array(penalty), LOG_FLOOR * (lens + 1))
    return _unflatten(out, cands)


def _writable(y: str, x: str, actions) -> tuple[str, float]:
    """A candidate without the characters no action can write (neither an output
    character of the model nor in the input to COPY), and their cost."""
    alphabet = set(actions.chars)
    kept = "".join(c for c in y if c in alphabet or c in x)
    return kept, LOG_FLOOR * (len(y) - len(kept))


@dataclass(frozen=True)
class _Tables:
    """What each candidate asks for, as arrays (R candidates; one column per character
    to write and one past the end), and each line's input, for _spelling_mask."""

    line: np.ndarray  # (R,) each candidate's line
    lengths: np.ndarray  # (R,) characters to write
    code: np.ndarray  # (R, L + 1) each character's code point (-1 past the end)
    sub: np.ndarray  # (R, L + 1) the id of SUBSTITUTE(that character) (-1: none)
    ins: np.ndarray  # (R, L + 1) the id of INSERT(that character) (-1: none)
    input: np.ndarray  # (B, T + 1) each line's input code points (-2 past the end)


def _tables(targets, line: np.ndarray, strings: list[str], actions) -> _Tables:
    R, L = len(targets), max(map(len, targets))
    code, sub, ins = (np.full((R, L + 1), -1, np.int64) for _ in range(3))
    alphabet = set(actions.chars)
    for r, y in enumerate(targets):
        for j, c in enumerate(y):
            code[r, j] = ord(c)
            if c in alphabet:
                sub[r, j], ins[r, j] = actions.substitute(c), actions.insert(c)
    inputs = np.full((len(strings), max(map(len, strings)) + 1), -2, np.int64)  # (B, T + 1)
    for b, s in enumerate(strings):
        inputs[b, : len(s)] = [ord(c) for c in s]
    return _Tables(line, np.array([len(y) for y in targets], dtype=np.int64), code, sub, ins, inputs)


@dataclass(frozen=True)
class _Paths:
    """The live partial paths, rows sorted by candidate."""

    cand: np.ndarray  # (N,) each path's candidate
    logp: np.ndarray  # (N,) log P of its actions so far
    i: np.ndarray  # (N,) its pointer
    j: np.ndarray  # (N,) the candidate's characters it has written
    prev: np.ndarray  # (N,) its last action (the start symbol at first)
    states: list  # decoder states, each (N, H)

    def select(self, keep: np.ndarray) -> "_Paths":
        return _Paths(self.cand[keep], self.logp[keep], self.i[keep], self.j[keep], self.prev[keep],
                      [s[keep] for s in self.states])


def _spelling_mask(live: _Paths, tables: _Tables, n: np.ndarray, A: int) -> np.ndarray:
    """(N, A) the actions that keep each path spelling its candidate (n: (N,) input lengths)."""
    N = len(live.cand)
    has_i = live.i < n  # a character under the pointer
    has_j = live.j < tables.lengths[live.cand]  # candidate characters still to write
    j = np.minimum(live.j, tables.code.shape[1] - 1)
    want = tables.code[live.cand, j]  # (N,) the next character to write (-1: none)
    here = tables.input[tables.line[live.cand], np.minimum(live.i, tables.input.shape[1] - 1)]  # (N,)
    mask = np.zeros((N, A), dtype=bool)
    mask[:, COPY_ACTION] = has_i & has_j & (here == want)
    mask[:, DELETE_ACTION] = has_i
    mask[:, END_ACTION] = ~has_i & ~has_j
    for ids, ok in ((tables.sub[live.cand, j], has_i & has_j), (tables.ins[live.cand, j], has_j)):
        rows = np.flatnonzero(ok & (ids >= 0))
        mask[rows, ids[rows]] = True
    return mask
