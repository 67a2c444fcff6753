"""Edit actions, the stochastic edit distance that aligns training pairs, and the expert
that tells an edit-action transducer (`--arch edit`) which actions are optimal.

An edit model does not generate the output from scratch: it edits the input left to right.
A pointer sits on one input character, and each step takes one action:

  COPY          write the character under the pointer, move the pointer right
  DELETE        write nothing, move the pointer right
  SUBSTITUTE(c) write c, move the pointer right
  INSERT(c)     write c, leave the pointer where it is
  END           stop; allowed only once the pointer is past the last input character

Worked example, "phlox" -> "flɒks" (one of several scripts that produce it):

  step  pointer on   action        output so far
  1     p (0)        SUBSTITUTE(f) f
  2     h (1)        DELETE        f
  3     l (2)        COPY          fl
  4     o (3)        SUBSTITUTE(ɒ) flɒ
  5     x (4)        INSERT(k)     flɒk      the pointer stays on x
  6     x (4)        SUBSTITUTE(s) flɒks
  7     past (5)     END           flɒks

COPY needs no output character of its own, so a model copies a character it never saw in
training (a name, a digit) as easily as a known one. SUBSTITUTE(c) of the character under the
pointer by itself is redundant with COPY; the expert always says COPY there and never marks
the identity substitution optimal, so the model learns to copy (as the published CLUZH
transducer does). The action stays valid, so decoding needs no look at the input to mask.

Which script is right? A training pair says only what goes in and what comes out. The
stochastic edit distance (Ristad & Yianilos 1998) learns, by EM over all training pairs, how
probable each edit is: substituting each input character by each output character (an
identity substitution is a copy), deleting each input character, inserting each output
character, and ending. Its most probable (Viterbi) alignments are the scripts the model is
taught. At every state (pointer i, j output characters written) the expert gives the SET of
first actions of all optimal completions (Makarov & Clematide 2018), most preferred first;
teacher-forced training follows the preferred one (ExpertPath; why not the whole set:
networks/edit.py).

Everything here is numpy only and serialisable to plain JSON (`aligner.json` in a model
directory), so `--resume`, `--init-from` and ensemble members reuse one fitted aligner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, NamedTuple, Sequence

import numpy as np

# Action ids 0..4 are fixed; SUBSTITUTE(c) and INSERT(c) follow, one block each, in the
# order of the sorted output alphabet.
PAD_ACTION, START_ACTION, END_ACTION, COPY_ACTION, DELETE_ACTION = range(5)
SPECIAL_ACTIONS = ("<pad>", "<s>", "END", "COPY", "DELETE")
# The order in which the expert picks one action when several are optimal (lower first).
PREFERENCE = {"copy": 0, "substitute": 1, "insert": 2, "delete": 3, "end": 4}
# Log-probability floor: an edit with zero probability still has a finite cost, so the
# lattice arithmetic never meets inf - inf. exp(-1e4) is zero for every practical purpose.
LOG_FLOOR = -1e4
# Two costs (in nats) closer than this are a tie: both actions are optimal.
TIE_TOLERANCE = 1e-6
# Lattice cells per chunk of pairs in the batched dynamic programs (bounds the memory).
CHUNK_CELLS = 400_000

Pair = tuple[str, str]


# --- the action vocabulary -------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class EditActions:
    """The action vocabulary of an edit model, built from the output alphabet.

    Ids: 0 <pad> (fills action positions past the end), 1 <s> (the decoder's previous action
    at step 0), 2 END, 3 COPY, 4 DELETE, then SUBSTITUTE(c) for each output character c
    (5 .. 5+K-1), then INSERT(c) (5+K .. 5+2K-1), with K characters in sorted order."""

    chars: tuple[str, ...]  # the output alphabet, sorted; index k gives SUB and INS ids

    def __post_init__(self):
        if len(set(self.chars)) != len(self.chars) or not all(isinstance(c, str) and c for c in self.chars):
            raise ValueError("the output alphabet must be distinct non-empty strings")
        K = len(self.chars)
        object.__setattr__(self, "_index", {c: k for k, c in enumerate(self.chars)})
        moves = np.zeros(5 + 2 * K, dtype=np.int32)  # (A,)
        moves[[COPY_ACTION, DELETE_ACTION]] = 1
        moves[5 : 5 + K] = 1
        writes = np.zeros(5 + 2 * K, dtype=bool)  # (A,)
        writes[COPY_ACTION] = True
        writes[5:] = True
        moves.setflags(write=False)
        writes.setflags(write=False)
        object.__setattr__(self, "advance", moves)  # (A,) pointer move of each action
        object.__setattr__(self, "writes", writes)  # (A,) whether the action writes a character

    @classmethod
    def from_strings(cls, outputs: Iterable[str]) -> "EditActions":
        """The actions for all characters of `outputs`, sorted so the same data gives the same ids."""
        chars: set[str] = set()
        for s in outputs:
            chars.update(s)
        return cls(tuple(sorted(chars)))

    def __len__(self) -> int:
        return 5 + 2 * len(self.chars)

    def __eq__(self, other) -> bool:
        return isinstance(other, EditActions) and other.chars == self.chars

    def __hash__(self) -> int:
        return hash(self.chars)

    def substitute(self, c: str) -> int:
        """The id of SUBSTITUTE(c); KeyError for a character outside the output alphabet."""
        return 5 + self._index[c]

    def insert(self, c: str) -> int:
        """The id of INSERT(c); KeyError for a character outside the output alphabet."""
        return 5 + len(self.chars) + self._index[c]

    def kind(self, a: int) -> str:
        """pad | start | end | copy | delete | substitute | insert."""
        a = int(a)
        if not 0 <= a < len(self):
            raise ValueError(f"action id {a} is outside the vocabulary (0..{len(self) - 1})")
        if a < 5:
            return ("pad", "start", "end", "copy", "delete")[a]
        return "substitute" if a < 5 + len(self.chars) else "insert"

    def char(self, a: int) -> str | None:
        """The character SUBSTITUTE(c) or INSERT(c) writes; None for the other actions."""
        a = int(a)
        if self.kind(a) in ("substitute", "insert"):
            return self.chars[(a - 5) % len(self.chars)]
        return None

    def name(self, a: int) -> str:
        """A readable name: COPY, DELETE, END, SUB(c), INS(c), <pad>, <s>."""
        kind = self.kind(a)
        if kind == "substitute":
            return f"SUB({self.char(a)})"
        if kind == "insert":
            return f"INS({self.char(a)})"
        return SPECIAL_ACTIONS[int(a)]

    def names(self) -> tuple[str, ...]:
        return tuple(self.name(a) for a in range(len(self)))

    def step(self, a: int, x: str, i: int) -> tuple[str, int]:
        """What action `a` writes with the pointer at `i` of input `x`, and the new pointer.
        ValueError if the action is not allowed there (END is allowed; it writes nothing)."""
        kind = self.kind(a)
        if kind in ("pad", "start"):
            raise ValueError(f"{self.name(a)} is not an action a model takes")
        if kind in ("copy", "delete", "substitute") and i >= len(x):
            raise ValueError(f"{self.name(a)} with the pointer past the input (position {i})")
        if kind == "end" and i != len(x):
            raise ValueError(f"END with the pointer on input position {i} of {len(x)}")
        written = x[i] if kind == "copy" else self.char(a) or ""
        return written, i + int(self.advance[int(a)])

    def apply(self, actions: Iterable[int], x: str) -> str:
        """The output of executing `actions` on input `x`, up to and including the first END
        (what follows END, e.g. padding, is ignored). ValueError if an action is not allowed
        in its state or the sequence has no END."""
        out: list[str] = []
        i = 0
        for t, a in enumerate(actions):
            try:
                written, i = self.step(a, x, i)
            except ValueError as e:
                raise ValueError(f"step {t}: {e}") from None
            if self.kind(a) == "end":
                return "".join(out)
            out.append(written)
        raise ValueError("the action sequence has no END")

    def valid_mask(self, i, n, written=0, max_output=None) -> np.ndarray:
        """(..., A) bool: the actions allowed with the pointer at `i` of an input of length
        `n`, after writing `written` characters. Arguments broadcast (scalars or arrays).

        The rule: COPY, DELETE and SUBSTITUTE need a character under the pointer (i < n);
        END needs the pointer past the input (i == n); COPY, SUBSTITUTE and INSERT need room
        to write (written < max_output; no cap when max_output is None). So every script ends
        within n + max_output + 1 steps: each step moves the pointer, writes, or ends, and
        once the output is full only DELETE and then END remain. <pad> and <s> never."""
        cap = np.iinfo(np.int64).max if max_output is None else max_output
        i, n, written, cap = np.broadcast_arrays(np.asarray(i), np.asarray(n), np.asarray(written), np.asarray(cap))
        if np.any(i < 0) or np.any(i > n):
            raise ValueError("the pointer must lie within the input: 0 <= i <= n")
        room = written < cap
        inside = i < n
        K = len(self.chars)
        mask = np.zeros(i.shape + (len(self),), dtype=bool)  # (..., A)
        mask[..., END_ACTION] = i == n
        mask[..., COPY_ACTION] = inside & room
        mask[..., DELETE_ACTION] = inside
        mask[..., 5 : 5 + K] = (inside & room)[..., None]
        mask[..., 5 + K :] = room[..., None]
        return mask

    def to_json(self) -> list[str]:
        return list(self.chars)

    @classmethod
    def from_json(cls, chars: list[str]) -> "EditActions":
        if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
            raise ValueError("edit actions must be a list of output characters")
        return cls(tuple(chars))


# --- batched lattices --------------------------------------------------------------------


class _Encoded(NamedTuple):
    """Pairs as padded id arrays, ready for the lattice. Padding is at least one position so
    that gathers never meet an empty axis; padded positions hold the unknown id."""

    src: np.ndarray  # (B, N) input character ids (the aligner's source alphabet)
    tgt: np.ndarray  # (B, M) output character ids (the aligner's target alphabet)
    same: np.ndarray  # (B, N, M) bool: input char i equals output char j (a copy)
    n: np.ndarray  # (B,) input lengths
    m: np.ndarray  # (B,) output lengths


def _pad(rows: list[list[int]], fill: int) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))  # (B,)
    out = np.full((len(rows), max(1, int(lengths.max(initial=0)))), fill, dtype=np.int64)  # (B, L)
    for b, r in enumerate(rows):
        out[b, : len(r)] = r
    return out, lengths


def _chunks(pairs: Sequence[Pair]) -> list[np.ndarray]:
    """Indices of `pairs` in groups of similar length (sorted), each within CHUNK_CELLS
    lattice cells, so padding wastes little and memory stays bounded."""
    order = sorted(range(len(pairs)), key=lambda k: (len(pairs[k][0]), len(pairs[k][1])))
    groups, start, rows, cols = [], 0, 0, 0
    for pos, k in enumerate(order):
        rows, cols = max(rows, len(pairs[k][0]) + 2), max(cols, len(pairs[k][1]) + 2)
        if (pos - start + 1) * rows * cols > CHUNK_CELLS and pos > start:
            groups.append(np.array(order[start:pos]))
            start, rows, cols = pos, len(pairs[k][0]) + 2, len(pairs[k][1]) + 2
    if start < len(order):
        groups.append(np.array(order[start:]))
    return groups


def _lattice(lsub: np.ndarray, ldel: np.ndarray, lins: np.ndarray, viterbi: bool) -> np.ndarray:
    """(B, N+1, M+1) table: cell (i, j) sums (or, Viterbi, maximises) over all monotonic
    alignments of x[:i] with y[:j] the product of their edits' probabilities, in log space.

    lsub (B, N, M), ldel (B, N), lins (B, M): log-probabilities of each pair's edits. Row by
    row; within a row the insertions form a prefix scan, solved with one accumulate:
    row[j] = C[j] + acc_k<=j (base[k] - C[k]), C the running sum of insertion log-probs."""
    B, N, M = lsub.shape
    plus, acc = (np.maximum, np.maximum.accumulate) if viterbi else (np.logaddexp, np.logaddexp.accumulate)
    C = np.concatenate([np.zeros((B, 1)), np.cumsum(lins, axis=1)], axis=1)  # (B, M+1)
    table = np.empty((B, N + 1, M + 1))  # (B, N+1, M+1)
    table[:, 0] = C  # only insertions
    for i in range(1, N + 1):
        prev = table[:, i - 1]  # (B, M+1)
        base = prev + ldel[:, i - 1, None]  # (B, M+1) a deletion from the row above
        base[:, 1:] = plus(base[:, 1:], prev[:, :-1] + lsub[:, i - 1])  # or a substitution
        table[:, i] = C + acc(base - C, axis=1)
    return table


def _reverse(table: np.ndarray, n: np.ndarray, m: np.ndarray, fill: float) -> np.ndarray:
    """Map a table computed on reversed strings back to (B, N+1, M+1) suffix cells:
    out[b, i, j] = table[b, n_b - i, m_b - j]; `fill` outside each pair's own lattice."""
    B, R, S = table.shape
    I = n[:, None, None] - np.arange(R)[None, :, None]  # (B, R, 1)
    J = m[:, None, None] - np.arange(S)[None, None, :]  # (B, 1, S)
    out = table[np.arange(B)[:, None, None], np.clip(I, 0, R - 1), np.clip(J, 0, S - 1)]  # (B, R, S)
    return np.where((I >= 0) & (J >= 0), out, fill)


# --- the stochastic edit distance ----------------------------------------------------------


@dataclass(frozen=True, eq=False)
class StochasticEditDistance:
    """A memoryless stochastic transducer (Ristad & Yianilos 1998): one distribution over
    all edits (substitutions, deletions, insertions) and END; an alignment's probability is
    the product of its edits' and END's. Character ids index the sorted alphabets, and the
    last id of each side stands for any character outside it (it keeps only smoothing mass).
    An identity edit of a character outside either alphabet takes the mean copy probability
    of the characters inside both, so an unseen character is still copied."""

    source: tuple[str, ...]  # input alphabet, sorted; id len(source) = any other character
    target: tuple[str, ...]  # output alphabet, sorted; id len(target) = any other character
    log_sub: np.ndarray  # (S+1, T+1) log p(substitute source s with target t); s == t is a copy
    log_del: np.ndarray  # (S+1,) log p(delete source s)
    log_ins: np.ndarray  # (T+1,) log p(insert target t)
    log_end: float  # log p(END)

    def __post_init__(self):
        for side in (self.source, self.target):
            if not all(isinstance(c, str) for c in side) or len(set(side)) != len(side):
                raise ValueError("aligner alphabets must be distinct strings")
        S, T = len(self.source) + 1, len(self.target) + 1
        shapes = (np.shape(self.log_sub), np.shape(self.log_del), np.shape(self.log_ins))
        if shapes != ((S, T), (S,), (T,)):
            raise ValueError(f"aligner parameters have shapes {shapes}, expected {((S, T), (S,), (T,))}")
        given = (self.log_sub, self.log_del, self.log_ins)
        arrays = [np.maximum(np.asarray(a, dtype=np.float64), LOG_FLOOR) for a in given]
        total = np.logaddexp.reduce(np.concatenate([a.ravel() for a in arrays] + [[float(self.log_end)]]))
        if not abs(total) < 1e-6:
            raise ValueError(f"aligner probabilities sum to {np.exp(total):.6f}, not 1")
        for name, a in zip(("log_sub", "log_del", "log_ins"), arrays):
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        object.__setattr__(self, "log_end", max(float(self.log_end), LOG_FLOOR))
        object.__setattr__(self, "_src", {c: k for k, c in enumerate(self.source)})
        object.__setattr__(self, "_tgt", {c: k for k, c in enumerate(self.target)})
        shared = [(self._src[c], self._tgt[c]) for c in self.source if c in self._tgt]
        unseen_copy = np.mean([self.log_sub[s, t] for s, t in shared]) if shared else self.log_sub[-1, -1]
        object.__setattr__(self, "_unseen_copy", float(unseen_copy))

    # --- construction and EM

    @classmethod
    def initial(cls, pairs: Sequence[Pair], copy_probability: float | None = 0.5) -> "StochasticEditDistance":
        """The starting point of EM: uniform over all edits, except that `copy_probability`
        of the mass is spread over the identity substitutions of characters on both sides
        (when there are any; None: uniform)."""
        source = tuple(sorted({c for x, _ in pairs for c in x}))
        target = tuple(sorted({c for _, y in pairs for c in y}))
        S, T = len(source) + 1, len(target) + 1
        events = S * T + S + T + 1
        sub = np.ones((S, T))
        shared = [(k, target.index(c)) for k, c in enumerate(source) if c in target]
        if copy_probability is not None and shared:
            if not 0 < copy_probability < 1:
                raise ValueError(f"copy_probability must lie in (0, 1), not {copy_probability}")
            rest = (1 - copy_probability) / (events - len(shared))
            sub *= rest
            sub[tuple(zip(*shared))] = copy_probability / len(shared)
            weights = (sub, np.full(S, rest), np.full(T, rest), rest)
        else:
            weights = (sub / events, np.full(S, 1 / events), np.full(T, 1 / events), 1 / events)
        sub, dele, ins, end = weights
        return cls(source, target, np.log(sub), np.log(dele), np.log(ins), float(np.log(end)))

    @classmethod
    def fit(
        cls,
        pairs: Sequence[Pair],
        iterations: int = 10,
        smoothing: float = 0.1,
        copy_probability: float | None = 0.5,
        tolerance: float = 1e-4,
        progress: Callable[[int, float], None] | None = None,
    ) -> "StochasticEditDistance":
        """EM on the training pairs: at most `iterations` steps, stopping early once the mean
        log-likelihood per pair gains less than `tolerance`. `smoothing` is a pseudo-count
        added to every edit at each M-step (a Dirichlet prior), so edits never seen in
        training keep some probability. progress(iteration, mean log-likelihood per pair)
        is called after each E-step with the likelihood of the parameters entering it."""
        pairs = list(pairs)
        sed = cls.initial(pairs, copy_probability)
        chunks = sed._encode_chunks(pairs)
        previous = -np.inf
        for it in range(iterations):
            new, ll = sed._em_step(chunks, smoothing)
            mean = ll / max(1, len(pairs))
            if progress is not None:
                progress(it, mean)
            if mean - previous < tolerance:
                break  # the gain is tiny: keep the parameters that gave it
            sed, previous = new, mean
        return sed

    def em_step(self, pairs: Sequence[Pair], smoothing: float = 0.1) -> tuple["StochasticEditDistance", float]:
        """One EM iteration: (the re-estimated aligner, the total log-likelihood of `pairs`
        under this one). With smoothing 0 the likelihood never decreases; with smoothing s
        the log-likelihood plus s * (sum of all log-probabilities) never does (MAP-EM)."""
        return self._em_step(self._encode_chunks(list(pairs)), smoothing)

    def _em_step(self, chunks, smoothing: float) -> tuple["StochasticEditDistance", float]:
        S, T = self.log_sub.shape
        counts = np.zeros(S * T + S + T)  # expected counts: substitutions, deletions, insertions
        total_ll, pairs = 0.0, 0
        for _, enc, rev in chunks:
            ll, c = self._expected_counts(enc, rev)
            counts += c
            total_ll += ll
            pairs += len(enc.n)
        counts = np.append(counts, pairs) + smoothing  # END is used once per pair
        if counts.sum() == 0:  # no pairs and no smoothing: nothing to learn from
            counts = np.ones_like(counts)
        with np.errstate(divide="ignore"):  # an edit with no count and no smoothing: log 0, floored
            logp = np.log(counts / counts.sum())
        sub, rest = logp[: S * T].reshape(S, T), logp[S * T :]
        new = StochasticEditDistance(self.source, self.target, sub, rest[:S], rest[S : S + T], float(rest[-1]))
        return new, total_ll

    def _expected_counts(self, enc: _Encoded, rev: _Encoded) -> tuple[float, np.ndarray]:
        """(total log-likelihood of the chunk, expected count of every edit) by forward-backward."""
        S, T = self.log_sub.shape
        lsub, ldel, lins = self._weights(enc)  # (B, N, M), (B, N), (B, M)
        alpha = _lattice(lsub, ldel, lins, viterbi=False)  # (B, N+1, M+1)
        beta = _reverse(_lattice(*self._weights(rev), viterbi=False), enc.n, enc.m, -np.inf) + self.log_end
        B = len(enc.n)
        logz = alpha[np.arange(B), enc.n, enc.m] + self.log_end  # (B,)
        rows_n = np.arange(lsub.shape[1] + 1)[None, :] < enc.n[:, None]  # (B, N+1) i < n
        cols_m = np.arange(lsub.shape[2] + 1)[None, :] < enc.m[:, None]  # (B, M+1) j < m
        rows_in = np.arange(lsub.shape[1] + 1)[None, :] <= enc.n[:, None]  # (B, N+1) i <= n
        cols_in = np.arange(lsub.shape[2] + 1)[None, :] <= enc.m[:, None]  # (B, M+1) j <= m
        z = logz[:, None, None]
        post_sub = np.exp(alpha[:, :-1, :-1] + lsub + beta[:, 1:, 1:] - z)  # (B, N, M)
        post_del = np.exp(alpha[:, :-1, :] + ldel[:, :, None] + beta[:, 1:, :] - z)  # (B, N, M+1)
        post_ins = np.exp(alpha[:, :, :-1] + lins[:, None, :] + beta[:, :, 1:] - z)  # (B, N+1, M)
        ok_sub = rows_n[:, :-1, None] & cols_m[:, None, :-1]
        ok_del = rows_n[:, :-1, None] & cols_in[:, None, :]
        ok_ins = rows_in[:, :, None] & cols_m[:, None, :-1]
        sub_ids = enc.src[:, :, None] * T + enc.tgt[:, None, :]  # (B, N, M)
        del_ids = np.broadcast_to(S * T + enc.src[:, :, None], post_del.shape)
        ins_ids = np.broadcast_to(S * T + S + enc.tgt[:, None, :], post_ins.shape)
        ids = np.concatenate([sub_ids[ok_sub], del_ids[ok_del], ins_ids[ok_ins]])
        weights = np.concatenate([post_sub[ok_sub], post_del[ok_del], post_ins[ok_ins]])
        return float(logz.sum()), np.bincount(ids, weights=weights, minlength=S * T + S + T)

    # --- scoring

    def log_probs(self, pairs: Sequence[Pair]) -> np.ndarray:
        """(B,) log p(x, y) of each pair: the sum over all its alignments (forward algorithm)."""
        pairs = list(pairs)
        out = np.empty(len(pairs))
        for idx, enc, _ in self._encode_chunks(pairs, reverse=False):
            alpha = _lattice(*self._weights(enc), viterbi=False)  # (B, N+1, M+1)
            out[idx] = alpha[np.arange(len(idx)), enc.n, enc.m] + self.log_end
        return out

    def log_likelihood(self, pairs: Sequence[Pair]) -> float:
        """The total log-likelihood of `pairs`."""
        return float(self.log_probs(pairs).sum())

    def cost_to_go(self, x: str, y: str) -> np.ndarray:
        """(n+1, m+1) table: cell (i, j) is the cost (-log p) of the best alignment of
        x[i:] with y[j:], END included. Cell (0, 0) is the Viterbi distance of the pair."""
        return self.costs_to_go([(x, y)])[0]

    def costs_to_go(self, pairs: Sequence[Pair]) -> list[np.ndarray]:
        """`cost_to_go` for each pair, batched."""
        pairs = list(pairs)
        out: list[np.ndarray] = [None] * len(pairs)  # type: ignore[list-item]
        for idx, enc, rev in self._encode_chunks(pairs):
            V = self._chunk_cost_to_go(enc, rev)  # (B, N+1, M+1)
            for b, k in enumerate(idx):
                out[k] = V[b, : enc.n[b] + 1, : enc.m[b] + 1].copy()
        return out

    def _chunk_cost_to_go(self, enc: _Encoded, rev: _Encoded) -> np.ndarray:
        """(B, N+1, M+1) Viterbi cost-to-go of each cell, +inf outside each pair's lattice:
        the best prefix score of the reversed strings is the best suffix score."""
        best = _lattice(*self._weights(rev), viterbi=True)  # (B, N+1, M+1) on reversed strings
        return -(_reverse(best, enc.n, enc.m, -np.inf) + self.log_end)

    # --- encoding

    def _weights(self, enc: _Encoded) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each pair's edit log-probabilities: (B, N, M) substitutions, (B, N) deletions,
        (B, M) insertions. A copy of a character outside the alphabets: the mean copy."""
        S, T = self.log_sub.shape
        lsub = self.log_sub[enc.src[:, :, None], enc.tgt[:, None, :]]  # (B, N, M)
        unseen = enc.same & ((enc.src == S - 1)[:, :, None] | (enc.tgt == T - 1)[:, None, :])
        lsub = np.where(unseen, self._unseen_copy, lsub)
        return lsub, self.log_del[enc.src], self.log_ins[enc.tgt]

    def _sub_log_prob(self, a: str, b: str) -> float:
        """log p(substitute a by b) for one pair of characters, as `_weights` gives it."""
        s, t = self._src.get(a, len(self.source)), self._tgt.get(b, len(self.target))
        unseen = a == b and (s == len(self.source) or t == len(self.target))
        return self._unseen_copy if unseen else float(self.log_sub[s, t])

    def _encode(self, pairs: Sequence[Pair]) -> _Encoded:
        S, T = len(self.source), len(self.target)
        src, n = _pad([[self._src.get(c, S) for c in x] for x, _ in pairs], S)
        tgt, m = _pad([[self._tgt.get(c, T) for c in y] for _, y in pairs], T)
        xs, _ = _pad([[ord(c) for c in x] for x, _ in pairs], -1)
        ys, _ = _pad([[ord(c) for c in y] for _, y in pairs], -2)
        return _Encoded(src, tgt, xs[:, :, None] == ys[:, None, :], n, m)

    def _encode_chunks(self, pairs: Sequence[Pair], reverse: bool = True) -> list[tuple]:
        """(indices into pairs, the chunk encoded, the chunk with both strings reversed or
        None) for each chunk of similar lengths."""
        out = []
        for idx in _chunks(pairs):
            chunk = [pairs[k] for k in idx]
            rev = self._encode([(x[::-1], y[::-1]) for x, y in chunk]) if reverse else None
            out.append((idx, self._encode(chunk), rev))
        return out

    # --- serialisation

    def to_dict(self) -> dict:
        """Plain JSON-able parameters (floats round-trip exactly through json)."""
        return {
            "kind": "stochastic-edit-distance",
            "source": list(self.source),
            "target": list(self.target),
            "log_sub": self.log_sub.tolist(),
            "log_del": self.log_del.tolist(),
            "log_ins": self.log_ins.tolist(),
            "log_end": self.log_end,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "StochasticEditDistance":
        """The inverse of to_dict; ValueError naming what is wrong."""
        if not isinstance(d, dict) or d.get("kind") != "stochastic-edit-distance":
            raise ValueError("not a stochastic edit distance (kind must be 'stochastic-edit-distance')")
        try:
            return cls(
                tuple(d["source"]),
                tuple(d["target"]),
                np.asarray(d["log_sub"], dtype=np.float64),
                np.asarray(d["log_del"], dtype=np.float64),
                np.asarray(d["log_ins"], dtype=np.float64),
                float(d["log_end"]),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"aligner parameters are incomplete or malformed: {e}") from None


# --- the expert ------------------------------------------------------------------------------


class ExpertPath(NamedTuple):
    """One optimal script for a pair, for teacher forcing, and the optimal sets along it."""

    actions: np.ndarray  # (L,) int32 action ids; the last is END
    pointers: np.ndarray  # (L,) int32 pointer position (input index) before each action
    optimal: np.ndarray  # (L, 3) int32 ids of every optimal action at each step's state, -1 padded;
    #                      column 0 is the action taken (the preferred optimal one)

    def optimal_mask(self, size: int) -> np.ndarray:
        """(L, size) bool: the optimal actions of each step as a mask over the vocabulary."""
        mask = np.zeros((len(self.actions), size + 1), dtype=bool)  # column `size` absorbs -1
        mask[np.arange(len(self.actions))[:, None], np.where(self.optimal < 0, size, self.optimal)] = True
        return mask[:, :size]


@dataclass(frozen=True, eq=False)
class Expert:
    """Optimal actions from the aligner's Viterbi costs (-log p of each edit).

    At state (i, j) of pair (x, y) the candidate actions are: COPY if x[i] == y[j], else
    SUBSTITUTE(y[j]), each costing the substitution of x[i] by y[j], then the cost-to-go
    from (i+1, j+1); INSERT(y[j]) then (i, j+1); DELETE then (i+1, j); END at (n, m). The
    optimal set: every candidate within TIE_TOLERANCE of the best. Among optimal actions
    the script takes the first of COPY > SUBSTITUTE > INSERT > DELETE (copy as much as
    possible, and write before skipping), so the teacher-forced path is deterministic.
    Every output character must be in the action vocabulary (ValueError otherwise)."""

    aligner: StochasticEditDistance  # the fitted stochastic edit distance
    actions: EditActions  # the action vocabulary the ids refer to

    def expert_actions(self, x: str, y: str) -> ExpertPath:
        """One optimal script for (x, y), the pointer before each action and the optimal sets."""
        return self.expert_batch([(x, y)])[0]

    def expert_batch(self, pairs: Sequence[Pair]) -> list[ExpertPath]:
        """`expert_actions` for every pair, batched (all pairs of a length chunk walk their
        optimal paths together)."""
        pairs = list(pairs)
        self._check_outputs(pairs)
        out: list[ExpertPath] = [None] * len(pairs)  # type: ignore[list-item]
        for idx, enc, rev in self.aligner._encode_chunks(pairs):
            for k, path in zip(idx, self._walk([pairs[k] for k in idx], enc, rev)):
                out[k] = path
        return out

    def _check_outputs(self, pairs: Sequence[Pair]) -> None:
        known = set(self.actions.chars)
        for k, (_, y) in enumerate(pairs):
            missing = set(y) - known
            if missing:
                raise ValueError(f"pair {k}: output characters {sorted(missing)!r} have no edit action")

    def _walk(self, pairs: Sequence[Pair], enc: _Encoded, rev: _Encoded) -> list[ExpertPath]:
        V = self.aligner._chunk_cost_to_go(enc, rev)  # (B, N+1, M+1)
        lsub, ldel, lins = self.aligner._weights(enc)  # (B, N, M), (B, N), (B, M)
        diag_id, ins_id = self._write_ids(pairs, enc)  # (B, N, M), (B, M)
        B, N, M = lsub.shape
        steps = int((enc.n + enc.m).max(initial=0)) + 1
        acts = np.full((B, steps), PAD_ACTION, dtype=np.int32)  # (B, L)
        ptrs = np.zeros((B, steps), dtype=np.int32)  # (B, L)
        opt = np.full((B, steps, 3), -1, dtype=np.int32)  # (B, L, 3)
        i, j = np.zeros(B, dtype=np.int64), np.zeros(B, dtype=np.int64)
        length = np.zeros(B, dtype=np.int64)
        for t in range(steps):
            b = np.flatnonzero(length == 0)  # pairs still walking
            if len(b) == 0:
                break
            ii, jj, n, m = i[b], j[b], enc.n[b], enc.m[b]
            ic, jc = np.minimum(ii, N - 1), np.minimum(jj, M - 1)  # safe gathers
            i1, j1 = np.minimum(ii + 1, N), np.minimum(jj + 1, M)
            costs = np.stack([
                np.where((ii < n) & (jj < m), -lsub[b, ic, jc] + V[b, i1, j1], np.inf),  # COPY/SUB
                np.where(jj < m, -lins[b, jc] + V[b, ii, j1], np.inf),  # INSERT
                np.where(ii < n, -ldel[b, ic] + V[b, i1, jj], np.inf),  # DELETE
            ], axis=1)  # (b, 3)
            ids = np.stack([diag_id[b, ic, jc], ins_id[b, jc], np.full(len(b), DELETE_ACTION)], axis=1)
            ok = costs <= costs.min(axis=1, keepdims=True) + TIE_TOLERANCE  # (b, 3)
            ended = (ii == n) & (jj == m)
            ok[ended] = False
            ranked = np.where(ok, ids, -1)
            ranked = np.take_along_axis(ranked, np.argsort(~ok, axis=1, kind="stable"), axis=1)  # optimal first
            ranked[ended] = [END_ACTION, -1, -1]
            first = np.argmax(ok, axis=1)  # the preferred optimal action: diag, insert, delete
            acts[b, t], ptrs[b, t], opt[b, t] = ranked[:, 0], ii, ranked
            i[b] += (first != 1) & ~ended
            j[b] += (first != 2) & ~ended
            length[b[ended]] = t + 1
        return [ExpertPath(acts[k, : length[k]], ptrs[k, : length[k]], opt[k, : length[k]]) for k in range(B)]

    def _write_ids(self, pairs: Sequence[Pair], enc: _Encoded) -> tuple[np.ndarray, np.ndarray]:
        """(B, N, M) the diagonal action at each cell (COPY if the characters match, else
        SUBSTITUTE(y[j])) and (B, M) INSERT(y[j]) ids; PAD_ACTION on padding."""
        sub = np.full(enc.tgt.shape, PAD_ACTION, dtype=np.int64)  # (B, M)
        ins = np.full(enc.tgt.shape, PAD_ACTION, dtype=np.int64)  # (B, M)
        for b, (_, y) in enumerate(pairs):
            sub[b, : len(y)] = [self.actions.substitute(c) for c in y]
            ins[b, : len(y)] = [self.actions.insert(c) for c in y]
        diag = np.where(enc.same, COPY_ACTION, sub[:, None, :])  # (B, N, M)
        return diag, ins

    def optimal_actions(
        self, x: str, y: str, i: int, written: str | int, table: np.ndarray | None = None, max_output: int | None = None
    ) -> tuple[int, ...]:
        """The optimal next actions, most preferred first, with the pointer at `i` and
        `written` output so far: an int j means y[:j] was written (the reference path).

        For roll-in, the written text may have left y. Then (as the published expert does)
        the expert aligns it to the prefixes y[:j] closest to it in Levenshtein distance
        and, for each such j, scores the actions that would produce y[j:] from x[i:]; the
        optimal set is every action within TIE_TOLERANCE of the cheapest over all those j.
        Actions that would write beyond `max_output` characters are left out; if nothing on
        a path to y remains, the answer is END (pointer past the input) or DELETE.
        `table`: this pair's cost_to_go, to skip recomputing it at every step."""
        n, m = len(x), len(y)
        if not 0 <= i <= n:
            raise ValueError(f"pointer {i} outside input of length {n}")
        self._check_outputs([(x, y)])
        V = self.aligner.cost_to_go(x, y) if table is None else table
        text = isinstance(written, str)
        count = len(written) if text else int(written)
        prefixes = _closest_prefixes(written, y) if text else [count]
        room = max_output is None or count < max_output
        costs = self._rollin_costs(x, y, i, prefixes, V, room)
        if not costs:
            return (END_ACTION,) if i == n else (DELETE_ACTION,)
        best = min(costs.values())
        ok = [a for a, c in costs.items() if c <= best + TIE_TOLERANCE]
        return tuple(sorted(ok, key=lambda a: (PREFERENCE[self.actions.kind(a)], a)))

    def _rollin_costs(self, x: str, y: str, i: int, prefixes: list[int], V: np.ndarray, room: bool) -> dict[int, float]:
        """action id -> the best cost of taking it now, over the target prefixes."""
        a, n, m = self.aligner, len(x), len(y)
        xi = a._src.get(x[i], len(a.source)) if i < n else None
        costs: dict[int, float] = {}

        def offer(action: int, cost: float):
            costs[action] = min(cost, costs.get(action, np.inf))

        for j in prefixes:
            if i == n and j == m:
                offer(END_ACTION, -a.log_end)
            if i < n:
                offer(DELETE_ACTION, -a.log_del[xi] + V[i + 1, j])
            if j < m and room:
                offer(self.actions.insert(y[j]), -a.log_ins[a._tgt.get(y[j], len(a.target))] + V[i, j + 1])
                if i < n:
                    diag = COPY_ACTION if x[i] == y[j] else self.actions.substitute(y[j])
                    offer(diag, -a._sub_log_prob(x[i], y[j]) + V[i + 1, j + 1])
        return costs


def _closest_prefixes(written: str, y: str) -> list[int]:
    """Every j for which y[:j] is closest to `written` in Levenshtein distance."""
    yc = np.array([ord(c) for c in y], dtype=np.int64)  # (m,)
    steps = np.arange(len(y) + 1)  # (m+1,)
    row = steps.astype(np.float64)  # distance of "" to each y[:j]
    for w in written:
        base = row + 1  # skip the written character
        base[1:] = np.minimum(base[1:], row[:-1] + (yc != ord(w)))  # match or substitute
        base[0] = row[0] + 1
        row = np.minimum.accumulate(base - steps) + steps  # or skip characters of y
    return np.flatnonzero(row == row.min()).tolist()
