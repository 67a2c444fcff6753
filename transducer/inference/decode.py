"""Searching for output strings: TensorFlow-free, engine-agnostic, batched over lines.

seq2seq (the decoder is called one step at a time through an engine):
  greedy        the most probable next symbol at every step, for all lines at once
  beam search   up to K live hypotheses per line; finished strings are ranked by

                    score = log P(string, </s>) / (len(string) + 1) ** length_penalty

                with length_penalty 1: the mean log probability per symbol, </s> included,
                so short outputs are not favoured just for having fewer factors below 1.
                Greedy's output is a finished candidate from the start, so the best of a
                beam never ranks below greedy's. A line ends only when no live hypothesis
                can still beat its nbest-th finished string (see beam_search).

Every seq2seq search writes at most `limit` characters per line: max_len, or the model's
learned output length bound (config.OutputLength: min(max_len, ceil(ratio * len(input))
+ extra)). At the limit only </s> may follow; its probability stays in the score.

aligned (one independent distribution per position): the exact K most probable strings,
  where P(s) = prod_{t<len(s)} p_t(s_t) * p_len(s)(</s>)  (no </s> factor at full length).
  Its length is at most the input's padded width; no learned bound applies.

<pad>, <unk> and <s> are never emitted: they are not characters of any output string, so
excluding them keeps candidate strings distinct.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from transducer.core.vocab import END_ID, PAD_ID, START_ID, UNK_ID, Labels

NOT_EMITTED = (PAD_ID, UNK_ID, START_ID)
LOG_FLOOR = float(np.log(1e-30))  # log-probabilities are clamped here: scores stay finite


@dataclass(frozen=True)
class Candidate:
    ids: tuple[int, ...]  # output symbol ids, </s> excluded
    logp: float  # log P(output) under the model, </s> included
    score: float  # what candidates are ranked by (see the module docstring)


def _log_probs(probs: np.ndarray) -> np.ndarray:
    """Clamped log-probabilities with the never-emitted symbols at -inf."""
    lp = np.log(np.maximum(probs, 1e-30))  # (..., V)
    lp[..., list(NOT_EMITTED)] = -np.inf
    return lp


def score(logp, n_chars, length_penalty: float = 1.0):
    """The ranking of seq2seq outputs: log P / (characters + 1) ** length_penalty."""
    return logp / (np.asarray(n_chars, dtype=np.float64) + 1.0) ** length_penalty


def output_limits(max_len, n_lines: int) -> np.ndarray:
    """(n_lines,) longest outputs in characters, from one int or a per-line array."""
    return np.broadcast_to(np.asarray(max_len, dtype=np.int64), (n_lines,))


def learned_limits(bound, ids: np.ndarray, max_len: int) -> np.ndarray:
    """(B,) the longest output for each row of (B, T) right-padded input ids: the learned
    bound (config.OutputLength), or max_len for a model directory written without one."""
    if bound is None:
        return np.full(len(ids), max_len, dtype=np.int64)
    return bound.limits(np.count_nonzero(ids != PAD_ID, axis=1), max_len)


# --- seq2seq -------------------------------------------------------------------------------


def greedy(engine, ids: np.ndarray, max_len, on_step=None) -> list[Candidate]:
    """The most probable symbol at each step. max_len: an int, or (B,) limits per line.

    on_step(active, probs, choice, attention), when given, is called after every step
    with the lines still decoding (A,), their distributions (A, V), the symbols chosen
    (A,) and the attention weights (A, T) (None without attention): explain.py's view of
    the same decode."""
    enc, init, mask = engine.seq2seq_encode(ids)  # (B, T, W), (B, W), (B, T) or None
    return _greedy(engine, enc, init, mask, output_limits(max_len, len(ids)), on_step=on_step)


def _greedy(engine, enc, init, mask, limits: np.ndarray, length_penalty: float = 1.0, on_step=None) -> list[Candidate]:
    """Greedy from encoded lines; finished lines leave the batch."""
    B = len(enc)
    states = [init] * engine.decoder_layers
    prev = np.full(B, START_ID, np.int32)
    active = np.arange(B)  # lines still decoding
    out: list[list[int]] = [[] for _ in range(B)]
    logp = np.zeros(B)
    for t in range(int(limits.max(initial=0)) + 1):
        if on_step is None:
            probs, states = engine.seq2seq_step(prev, enc, mask, states)  # (A, V)
        else:
            probs, states, attention = engine.seq2seq_step(prev, enc, mask, states, return_attention=True)
        lp = _log_probs(probs)
        choice = lp.argmax(axis=-1)  # (A,)
        choice[t >= limits[active]] = END_ID  # the limit: only </s> may follow
        logp[active] += lp[np.arange(len(active)), choice]
        if on_step is not None:
            on_step(active, probs, choice, attention)
        going = choice != END_ID
        for b, c in zip(active[going], choice[going]):
            out[b].append(int(c))
        prev = choice.astype(np.int32)
        if not going.all():  # drop finished lines (copying the encoder outputs only then)
            active, prev, enc, mask = active[going], prev[going], enc[going], _rows(mask, going)
            states = [s[going] for s in states]
        if not len(active):
            break
    return [Candidate(tuple(o), float(l), float(score(l, len(o), length_penalty))) for o, l in zip(out, logp)]


def _rows(mask: np.ndarray | None, keep: np.ndarray) -> np.ndarray | None:
    """The encoder mask's rows still decoding (None for a model without masks)."""
    return None if mask is None else mask[keep]


class NBest:
    """Every line's n best finished strings, best first, each string once. Strings are
    told apart by `key` (a candidate's symbol ids; an edit model's: its output string).
    A string found again by another path keeps its best score (seq2seq finds each
    string once; an edit model may spell one string by several action paths)."""

    def __init__(self, n_lines: int, n: int, key=lambda c: c.ids):
        self.n = n
        self.key = key
        self.items: list[list] = [[] for _ in range(n_lines)]
        self.threshold = np.full(n_lines, -np.inf)  # (B,) the score a string must beat to
        #                                              enter: the n-th best's, -inf until n

    def add(self, b: int, cand) -> None:
        if cand.score <= self.threshold[b]:
            return
        items = self.items[b]
        key = self.key(cand)
        same = [i for i, c in enumerate(items) if self.key(c) == key]
        if same:
            if items[same[0]].score >= cand.score:
                return
            del items[same[0]]
        items.append(cand)
        items.sort(key=lambda c: -c.score)
        del items[self.n :]
        if len(items) == self.n:
            self.threshold[b] = items[-1].score


def beam_search(
    engine, ids: np.ndarray, max_len, beam: int, nbest: int = 1, length_penalty: float = 1.0,
) -> list[list[Candidate]]:
    """The `nbest` best strings found by a width-`beam` search, per line, best first.

    max_len: an int, or (B,) limits per line. Each step extends every live hypothesis by
    every symbol: an extension by </s> is a finished string (kept if it ranks among the
    line's nbest), the `beam` most probable others per line live on. Greedy's output is
    finished from the start. A live hypothesis with log probability L and a limit of
    `limit` characters can at best finish with score L / (limit + 1) ** length_penalty
    (log probabilities only fall as it grows, and it has at most `limit` characters), so
    it is dropped as soon as that bound cannot beat the line's nbest-th finished score;
    a line ends when no live hypothesis is left. Only live hypotheses are decoded.
    beam 1 is greedy.
    """
    if beam == 1:
        return [[c] for c in greedy(engine, ids, max_len)]
    B = len(ids)
    limits = output_limits(max_len, B)
    enc, init, mask = engine.seq2seq_encode(ids)  # (B, T, W), (B, W), (B, T) or None
    best = NBest(B, nbest)
    for b, cand in enumerate(_greedy(engine, enc, init, mask, limits, length_penalty)):
        best.add(b, cand)
    live = _Live(np.arange(B), np.zeros(B), np.zeros((B, 0), np.int32), [init] * engine.decoder_layers)
    for t in range(int(limits.max(initial=0)) + 1):
        probs, states = engine.seq2seq_step(live.prev(), enc[live.line], _rows(mask, live.line), live.states)
        lp = _log_probs(probs)  # (N, V)
        _finish(best, live, lp, t, length_penalty)
        ext = live.logp[:, None] + lp  # (N, V): every one-symbol extension
        ext[:, END_ID] = -np.inf  # those are finished strings now
        ext[t >= limits[live.line]] = -np.inf  # at the limit only </s> may follow
        live = _extend(live, ext, states, beam)
        bound = score(live.logp, limits[live.line], length_penalty)  # (N,) best reachable scores
        live = live.select(bound > best.threshold[live.line])
        if not len(live.line):
            break
    return best.items


@dataclass(frozen=True)
class _Live:
    """The live hypotheses of every line, as rows sorted by line."""

    line: np.ndarray  # (N,) each row's line
    logp: np.ndarray  # (N,) log P of its symbols so far
    tokens: np.ndarray  # (N, t) its symbols so far
    states: list  # decoder states, each (N, W)

    def prev(self) -> np.ndarray:
        """(N,) the symbol each row feeds the decoder next."""
        if self.tokens.shape[1] == 0:
            return np.full(len(self.line), START_ID, np.int32)
        return self.tokens[:, -1].astype(np.int32)

    def select(self, keep: np.ndarray) -> "_Live":
        if keep.all():
            return self
        return _Live(self.line[keep], self.logp[keep], self.tokens[keep], [s[keep] for s in self.states])


def _finish(best: NBest, live: _Live, lp: np.ndarray, t: int, length_penalty: float) -> None:
    """Offer every row's extension by </s> to its line's n best."""
    end_lp = live.logp + lp[:, END_ID]  # (N,)
    end_score = score(end_lp, t, length_penalty)  # (N,): every row has t characters
    for r in np.flatnonzero(end_score > best.threshold[live.line]):  # the others cannot enter
        best.add(int(live.line[r]), Candidate(tuple(live.tokens[r].tolist()), float(end_lp[r]), float(end_score[r])))


def _extend(live: _Live, ext: np.ndarray, states: list, beam: int) -> _Live:
    """The `beam` most probable finite extensions (N, V) of each line's rows."""
    line, src, sym, logp = top_extensions(live.line, ext, beam)
    tokens = np.concatenate([live.tokens[src], sym[:, None]], axis=1)
    return _Live(line, logp, tokens, [s[src] for s in states])


def top_extensions(line: np.ndarray, ext: np.ndarray, beam: int):
    """The `beam` most probable finite extensions of each line's rows (at most `beam`
    rows per line, sorted by line): ext (N, V) log P of each row extended by each symbol
    -> (line (N',), source row (N',), symbol (N',) int32, log P (N',)), sorted by line."""
    N, V = ext.shape
    lines, start, count = np.unique(line, return_index=True, return_counts=True)
    which = np.repeat(np.arange(len(lines)), count)  # (N,) row -> index into lines
    grid = np.full((len(lines), beam, V), -np.inf)  # (A, K, V): each line's rows side by side
    grid[which, np.arange(N) - start[which]] = ext
    grid = grid.reshape(len(lines), beam * V)
    k = min(beam, beam * V)
    top = np.argpartition(-grid, k - 1, axis=1)[:, :k]  # (A, K), unordered
    top_lp = np.take_along_axis(grid, top, axis=1)
    a, j = np.nonzero(np.isfinite(top_lp))  # row-major: rows stay sorted by line
    flat = top[a, j]
    return lines[a], start[a] + flat // V, (flat % V).astype(np.int32), top_lp[a, j]


# --- aligned -------------------------------------------------------------------------------


def aligned_kbest(probs: np.ndarray, k: int) -> list[list[Candidate]]:
    """(B, T, V) per-position probabilities -> the exact k most probable strings per line.

    For each output length L the best strings are the best combinations of independent
    per-position choices: a heap over rank vectors (each position's characters sorted by
    probability) enumerates them in order. Lengths are visited best-first and the search
    stops once no unvisited length can beat the k-th best string found.
    """
    lp = _log_probs(probs)  # (B, T, V)
    B, T, V = lp.shape
    n_chars = V - len(NOT_EMITTED) - 1  # ids 4.. are characters
    kk = max(1, min(k, n_chars))
    char_lp = lp.copy()
    char_lp[..., END_ID] = -np.inf
    order = np.argsort(-char_lp, axis=-1, kind="stable")[..., :kk]  # (B, T, kk) best characters
    vals = np.take_along_axis(char_lp, order, axis=-1)  # (B, T, kk)
    prefix = np.concatenate([np.zeros((B, 1)), np.cumsum(vals[..., 0], axis=1)], axis=1)  # (B, T+1)
    end = np.concatenate([lp[..., END_ID], np.zeros((B, 1))], axis=1)  # (B, T+1): no </s> at T
    best_by_len = prefix + end  # (B, T+1): the best string of each length
    results = []
    for b in range(B):
        top: list[tuple[float, tuple[int, ...]]] = []  # min-heap of the k best (logp, ids)
        for L in np.argsort(-best_by_len[b], kind="stable"):
            if not np.isfinite(best_by_len[b, L]) or (len(top) == k and best_by_len[b, L] <= top[0][0]):
                break
            for logp, ranks in _kbest_fixed_length(vals[b], int(L), float(best_by_len[b, L]), k):
                if len(top) == k and logp <= top[0][0]:
                    break
                ids = tuple(int(order[b, t, r]) for t, r in enumerate(ranks))
                item = (logp, ids)
                heapq.heappush(top, item) if len(top) < k else heapq.heapreplace(top, item)
        best = sorted(top, key=lambda x: -x[0])
        results.append([Candidate(ids, lg, lg) for lg, ids in best])
    return results


def _kbest_fixed_length(vals: np.ndarray, L: int, best: float, k: int):
    """Yield up to k (logp, ranks) for strings of length L, best first.

    Every rank vector is reached exactly once by raising ranks at positions in
    non-decreasing order (a child may only raise positions >= its parent's last one).
    """
    kk = vals.shape[1]
    heap = [(-best, (0,) * L, 0)]
    for _ in range(k):
        if not heap:
            return
        neg, ranks, last = heapq.heappop(heap)
        if not np.isfinite(neg):
            return
        yield -neg, ranks
        for i in range(last, L):
            r = ranks[i]
            if r + 1 < kk and np.isfinite(vals[i, r + 1]):
                child = ranks[:i] + (r + 1,) + ranks[i + 1 :]
                heapq.heappush(heap, (neg - vals[i, r + 1] + vals[i, r], child, i))


def label_candidates(probs: np.ndarray, labels: Labels, nbest: int) -> list[tuple[str, float, list | None]]:
    """(B, n_labels) probabilities -> [(label, its probability, n-best list or None)].

    The n-best list holds the min(nbest, n_labels) most probable labels, best first, as
    (label, score, probability) with score = probability (every label is scored exactly;
    there is no search and no length to normalise by)."""
    k = min(nbest, len(labels))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]  # (B, k) best first; ties by id
    top = np.take_along_axis(probs, order, axis=1).astype(np.float64)  # (B, k)
    results = []
    for ids, ps in zip(order.tolist(), top.tolist()):
        cands = [(labels.symbols[i], p, p) for i, p in zip(ids, ps)]
        results.append((cands[0][0], cands[0][2], cands if nbest > 1 else None))
    return results
