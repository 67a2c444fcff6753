"""Roll-in for edit models (`train --arch edit --rollin K`): train at the states the
model's own actions lead to, not only at those of the expert's path.

Teacher-forced, an edit model sees only the states (pointer, text written so far) of
the expert's path. At prediction it walks its own path: after one wrong action it is in
a state it never saw and nothing taught it how to recover. Roll-in (Makarov & Clematide
2018, imitation learning) trains it there too. Before each epoch after the first, every
training pair is walked once by the model being trained (the numpy engine on its
current weights: no graph to trace); at each step the action taken is the expert's
preferred one with probability

    p_expert(epoch) = K / (K + exp(epoch / K))        (inverse sigmoid decay; K = --rollin)

and otherwise one sampled from the model's own distribution. At every state reached the
expert (core/edits.Expert.optimal_actions) answers what is optimal from there: where the
text written has left the reference, it aligns it to the closest reference prefixes, so
the answer is the cheapest way to still end as near the reference as possible. The
epoch trains on those paths, the target at each step being the expert's preferred
answer, as on the expert's own path (networks/edit.py says why one action, not the set).

Epoch 0 trains on the expert's paths (an untrained model's actions show nothing), and
validation always does (its loss stays comparable from epoch to epoch). The published
schedule uses K = 12: p_expert is 0.92 at epoch 1, 0.82 at epoch 12, 0.5 at epoch 30.
The walk is seeded by the epoch (checkpoint.epoch_seed), so a resumed run rolls in as an
uninterrupted one would. Its cost: one greedy-decode's worth of numpy steps over the
training inputs, plus about 20 microseconds of expert per step in Python: about an
epoch's time on 8,000 pairs (14 s a walk on arm_e's, on a loaded machine).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from transducer.core.edits import END_ACTION, START_ACTION, EditActions, Expert
from transducer.networks.edit import EditArrays, walked_arrays

CHUNK = 512  # pairs walked together: bounds the encoder outputs held (CHUNK x T x 3H floats)
OPTIMAL_KEPT = 3  # optimal actions stored per step (the first is the target)


def expert_probability(k: float, epoch: int) -> float:
    """The share of steps that follow the expert in `epoch` (0-based): 1 at epoch 0, then
    K / (K + exp(epoch / K)). k <= 0 means no roll-in (always 1)."""
    if k <= 0 or epoch <= 0:
        return 1.0
    return k / (k + math.exp(epoch / k))


class RollIn:
    """The roll-in paths of one run's training pairs (the expert and its cost tables are
    built once; `arrays` walks them again for each epoch)."""

    def __init__(self, pairs: Sequence[tuple[str, str]], base: EditArrays, expert: Expert, max_output: int):
        self.pairs = list(pairs)  # the training pairs, in the order of `base`'s rows
        self.base = base  # their expert paths (chars, lengths: reused as they are)
        self.expert = expert
        self.actions: EditActions = expert.actions
        self.max_output = max_output  # no path writes more (the expert and the sampling agree)
        self.tables = expert.aligner.costs_to_go(self.pairs)  # each pair's Viterbi cost-to-go

    def arrays(self, engine, p_expert: float, seed: int) -> EditArrays:
        """The training arrays of one epoch: each pair walked by `engine` (an edit engine,
        e.g. NumpyEngine on the current weights) mixed with the expert at rate p_expert."""
        if p_expert >= 1.0:
            return self.base
        rng = np.random.default_rng(seed)
        # Chunks of like lengths: each is encoded to, and stepped until, its own longest.
        order = np.argsort(self.base.in_lengths * (2 * self.max_output + 2) + self.base.steps, kind="stable")
        paths: list = [None] * len(self.pairs)
        for start in range(0, len(order), CHUNK):
            idx = order[start : start + CHUNK]
            for r, walk in zip(idx, self._walk(engine, idx, p_expert, rng)):
                paths[r] = walk
        return walked_arrays(self.base.chars, self.base.in_lengths, paths)

    def _walk(self, engine, idx: np.ndarray, p_expert: float, rng) -> list[tuple]:
        """Each pair's walk in idx: (actions taken, the pointer before each, the expert's
        optimal actions at each step's state (L, OPTIMAL_KEPT), -1 filled)."""
        base, acts = self.base, self.actions
        B = len(idx)
        lengths = base.in_lengths[idx].astype(np.int64)  # (B,)
        enc = engine.edit_encode(base.chars[idx, : int(lengths.max()) + 1])  # (B, T, 3H)
        states = engine.edit_initial_states(B)  # [(B, H)] per layer
        pointer = np.zeros(B, np.int64)  # (B,)
        prev = np.full(B, START_ACTION, np.int64)  # (B,)
        written = [""] * B  # the text each path has written
        on_reference = np.ones(B, bool)  # written is still a prefix of the reference
        alive = np.ones(B, bool)
        taken: list[list[int]] = [[] for _ in range(B)]
        before: list[list[int]] = [[] for _ in range(B)]
        targets = np.full((B, int(lengths.max()) + self.max_output + 1, OPTIMAL_KEPT), -1, np.int32)  # (B, L, K)
        writes = acts.writes  # (A,)
        for _ in range(int(lengths.max()) + self.max_output + 1):  # every path ends by then
            live = np.flatnonzero(alive)
            if len(live) == 0:
                break
            probs, new = engine.edit_step(enc, live, pointer[live], prev[live], lengths[live], [s[live] for s in states])
            for s, h in zip(states, new):
                s[live] = h
            full = np.array([len(written[b]) >= self.max_output for b in live])  # (L,) no room to write
            probs = np.where(full[:, None] & writes[None, :], 0.0, probs)  # (L, A)
            follow = rng.random(len(live)) < p_expert  # (L,) this step follows the expert
            draws = _sample(probs, rng)  # (L,) the model's choice where it does not
            for k, b in enumerate(live):
                x, y = self.pairs[idx[b]]
                state = len(written[b]) if on_reference[b] else written[b]
                optimal = self.expert.optimal_actions(x, y, int(pointer[b]), state, self.tables[idx[b]], self.max_output)
                targets[b, len(taken[b]), : min(len(optimal), OPTIMAL_KEPT)] = optimal[:OPTIMAL_KEPT]
                action = optimal[0] if follow[k] or draws[k] < 0 else int(draws[k])
                before[b].append(int(pointer[b]))
                taken[b].append(action)
                if action == END_ACTION:
                    alive[b] = False
                    continue
                char, pointer[b] = acts.step(action, x, int(pointer[b]))
                written[b] += char
                on_reference[b] = on_reference[b] and y.startswith(written[b])
                prev[b] = action
        return [(taken[b], before[b], targets[b, : len(taken[b])]) for b in range(B)]


def _sample(probs: np.ndarray, rng) -> np.ndarray:
    """(L, A) probabilities (rows may not sum to 1) -> (L,) one action drawn from each row;
    -1 for a row with no mass (the expert decides there)."""
    total = probs.sum(axis=1)  # (L,)
    cumulative = np.cumsum(probs, axis=1)  # (L, A)
    u = rng.random(len(probs)) * total  # (L,)
    drawn = np.minimum((cumulative < u[:, None]).sum(axis=1), probs.shape[1] - 1)  # (L,) first reaching u
    # Rounding can land on an action of probability 0 (past the last one that has mass).
    drawn = np.where(probs[np.arange(len(probs)), drawn] > 0, drawn, probs.argmax(axis=1))
    return np.where(total > 0, drawn, -1)

