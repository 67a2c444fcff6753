"""Searching for output strings: TensorFlow-free, engine-agnostic, batched over lines.

seq2seq (the decoder is called one step at a time through an engine):
  greedy        the most probable next symbol at every step, for all lines at once
  beam search   K hypotheses per line; finished ones are ranked by their log probability
                divided by their length in symbols (characters + </s>), so short outputs
                are not favoured just for having fewer factors below 1

aligned (one independent distribution per position): the exact K most probable strings,
  where P(s) = prod_{t<len(s)} p_t(s_t) * p_len(s)(</s>)  (no </s> factor at full length).

Every search emits at most `max_len` characters: a model that never produces </s> is
stopped there, with </s> forced (its tiny probability stays in the score).
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


# --- seq2seq -------------------------------------------------------------------------------


def greedy(engine, ids: np.ndarray, max_len: int) -> list[Candidate]:
    """Best next symbol at each step; finished lines leave the batch."""
    enc, init, mask = engine.seq2seq_encode(ids)  # (B, T, W), (B, W), (B, T) or None
    B = len(ids)
    states = [init] * engine.decoder_layers
    prev = np.full(B, START_ID, np.int32)
    active = np.arange(B)  # lines still decoding
    out: list[list[int]] = [[] for _ in range(B)]
    logp = np.zeros(B)
    for t in range(max_len + 1):
        probs, states = engine.seq2seq_step(prev, enc, mask, states)  # (A, V)
        lp = _log_probs(probs)
        if t == max_len:  # the cap: only </s> may follow
            choice = np.full(len(active), END_ID)
        else:
            choice = lp.argmax(axis=-1)  # (A,)
        logp[active] += lp[np.arange(len(active)), choice]
        going = choice != END_ID
        for b, c in zip(active[going], choice[going]):
            out[b].append(int(c))
        prev = choice.astype(np.int32)
        if not going.all():  # drop finished lines (copying the encoder outputs only then)
            active, prev, enc, mask = active[going], prev[going], enc[going], _rows(mask, going)
            states = [s[going] for s in states]
        if not len(active):
            break
    return [Candidate(tuple(o), float(l), _normalised(l, len(o))) for o, l in zip(out, logp)]


def _rows(mask: np.ndarray | None, keep: np.ndarray) -> np.ndarray | None:
    """The encoder mask's rows still decoding (None for a model without masks)."""
    return None if mask is None else mask[keep]


def _normalised(logp: float, n_chars: int) -> float:
    return float(logp) / (n_chars + 1)


def beam_search(engine, ids: np.ndarray, max_len: int, beam: int, nbest: int = 1) -> list[list[Candidate]]:
    """The `nbest` best of the finished hypotheses of a width-`beam` search, per line.

    Each step ranks the 2*beam best extensions of every line's hypotheses: those ending
    in </s> among the first `beam` are finished, the first `beam` others go on. A line is
    done once it has `beam` finished hypotheses; with beam 1 this is exactly greedy.
    """
    K = beam
    enc, init, mask = engine.seq2seq_encode(ids)  # (B, T, W), (B, W), (B, T) or None
    B = len(ids)
    enc = np.repeat(enc, K, axis=0)  # (B*K, T, W)
    mask = None if mask is None else np.repeat(mask, K, axis=0)  # (B*K, T)
    states = [np.repeat(init, K, axis=0)] * engine.decoder_layers  # each (B*K, W)
    logp = np.full((B, K), -np.inf)
    logp[:, 0] = 0.0  # one live hypothesis at the start, so the first step has no duplicates
    tokens = np.zeros((B, K, 0), np.int32)  # (A, K, t)
    prev = np.full(B * K, START_ID, np.int32)
    active = np.arange(B)
    finished: list[list[Candidate]] = [[] for _ in range(B)]
    for t in range(max_len + 1):
        A = len(active)
        probs, states = engine.seq2seq_step(prev, enc, mask, states)  # (A*K, V)
        lp = _log_probs(probs)
        V = lp.shape[-1]
        if t == max_len:
            lp[:, np.arange(V) != END_ID] = -np.inf
        cand = (logp.reshape(A * K, 1) + lp).reshape(A, K * V)  # (A, K*V)
        top = np.argsort(-cand, axis=1, kind="stable")[:, : 2 * K]  # (A, 2K)
        top_lp = np.take_along_axis(cand, top, axis=1)  # (A, 2K)
        is_end = (top % V) == END_ID
        rank = np.arange(2 * K)[None, :]
        for a, j in zip(*np.nonzero(is_end & (rank < K) & np.isfinite(top_lp))):
            src = top[a, j] // V
            ids_ = tuple(int(i) for i in tokens[a, src])
            finished[active[a]].append(Candidate(ids_, float(top_lp[a, j]), _normalised(top_lp[a, j], len(ids_))))
        # The first K non-</s> extensions go on (there are at least K among 2K).
        order = np.argsort(is_end, axis=1, kind="stable")[:, :K]  # (A, K)
        keep = np.take_along_axis(top, order, axis=1)  # (A, K) flat indices into K*V
        logp = np.take_along_axis(top_lp, order, axis=1)  # (A, K)
        src, sym = keep // V, keep % V  # (A, K)
        rows = np.arange(A)[:, None]
        tokens = np.concatenate([tokens[rows, src], sym[..., None].astype(np.int32)], axis=2)
        flat_src = (rows * K + src).reshape(-1)  # (A*K,)
        states = [s[flat_src] for s in states]
        prev = sym.reshape(-1).astype(np.int32)
        going = np.array([len(finished[b]) < K for b in active], dtype=bool) & np.isfinite(logp).any(axis=1)
        if t == max_len or not going.any():
            break
        if going.all():
            continue
        active, logp, tokens = active[going], logp[going], tokens[going]
        rows_kept = np.repeat(going, K)
        enc, prev, mask = enc[rows_kept], prev[rows_kept], _rows(mask, rows_kept)
        states = [s[rows_kept] for s in states]
    return [sorted(f, key=lambda c: -c.score)[:nbest] for f in finished]


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
