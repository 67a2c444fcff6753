"""Combining an ensemble's members by their OUTPUTS: `--combine vote` and `--combine rescore`.
TensorFlow-free. (`--combine mean` combines the members' per-step distributions inside
the search instead: ensemble.py. `--combine auto`, the default, is mean where the members
allow it and rescore where they do not: predict.Predictor.)

    mean     p(y) ∝ exp(mean_k log p_k(y)) at every decoder step or position; one search.
             Members of one architecture and one vocabulary only.
    vote     every member decodes its own output (greedy, or its beam search with --beam);
             the output most members wrote wins. A tie in votes goes to the output whose
             voters' log-probabilities (each voter's log P of its own output) sum highest;
             a tie in that too, to the member listed first. confidence = the fraction of
             members that voted for the winner (1.0: unanimous).
    rescore  every member proposes its k best outputs (k = max(--beam, --nbest, 4)); the
             union of the proposals is scored by EVERY member by forced decoding (forced.py:
             log P_k(candidate | input)), and the candidate with the highest

                 sum_k log P_k(candidate) / (len(candidate) + 1)

             wins (ties to the first proposed): the summed log-probability per symbol, </s>
             included, as decode.score ranks one seq2seq model's beam, so an ensemble of
             copies of one model rescores its n-best back into its own order. Measured
             against the plain sum (LENGTH_PENALTY 0) on SIGMORPHON 2021 dev, five
             ensembles (seq2seq, and seq2seq with an edit member): equal or 0.1 better on
             every one. confidence = exp(mean_k log P_k), the geometric mean of the
             members' probabilities of the winner (for one member: its own confidence).

vote and rescore work across architectures (an assembled ensemble of seq2seq, aligned and
edit members, artifacts.assemble) since members only meet as strings; a member's output is
compared in the model's normalization form, which all members share. With --nbest K the
n-best list holds the K best combined outputs: for vote, the distinct outputs that got a
vote, by votes (score = probability = their share of the votes); for rescore, the union's
best candidates (score = mean_k log P_k / (len + 1), probability = exp(mean_k log P_k)).

A member here is anything with the two methods predict.Predictor gives one model:
  search(strings)        -> per line, [(output, score, log P)], its own best first
  forced(strings, cands) -> per line, (len(cands[b]),) log P of each candidate
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESCORE_K = 4  # candidates each member proposes for rescoring, at least
LENGTH_PENALTY = 1.0  # rescore ranks by sum_k log P_k / (len + 1) ** LENGTH_PENALTY (0: the
#                       plain sum; see the module docstring for what was measured)


@dataclass(frozen=True)
class Ranked:
    output: str  # a combined output (the model's normalization form)
    score: float  # what the rule ranks by (vote: share of the votes; rescore: mean log P per symbol)
    probability: float  # its confidence (vote: share of the votes; rescore: exp(mean log P))


def rescore_k(beam: int, nbest: int) -> int:
    """How many candidates each member proposes for rescoring."""
    return max(beam, nbest, RESCORE_K)


def vote(members: Sequence, strings: list[str]) -> list[list[Ranked]]:
    """Per line, the members' distinct outputs ranked by votes (see the module docstring)."""
    found = [m.search(strings) for m in members]  # [member][line] -> candidates
    return [tally([f[b][0] for f in found]) for b in range(len(strings))]


def tally(ballots: list[tuple[str, float, float]]) -> list[Ranked]:
    """One line's ballots, one (output, score, log P) per member, in member order -> the
    distinct outputs, most votes first, then the highest sum of their voters' log P, then
    the first member's."""
    votes: dict[str, list[float]] = {}  # output -> its voters' log P, in member order
    for output, _, logp in ballots:
        votes.setdefault(output, []).append(logp)
    order = sorted(votes, key=lambda o: (-len(votes[o]), -sum(votes[o])))  # stable: first voter wins ties
    n = len(ballots)
    return [Ranked(o, len(votes[o]) / n, len(votes[o]) / n) for o in order]


def rescore(members: Sequence, strings: list[str], k: int) -> list[list[Ranked]]:
    """Per line, the union of the members' k-best outputs ranked by the sum of every
    member's forced log P (see the module docstring). Each member was built to propose k."""
    found = [m.search(strings) for m in members]  # [member][line] -> candidates
    union = [list(dict.fromkeys(c[0] for f in found for c in f[b][:k])) for b in range(len(strings))]
    total = [np.zeros(len(u)) for u in union]
    for m in members:
        for b, logp in enumerate(m.forced(strings, union)):
            total[b] += logp
    return [rank_sums(u, t, len(members)) for u, t in zip(union, total)]


def rank_sums(candidates: list[str], total: np.ndarray, n_members: int) -> list[Ranked]:
    """One line's candidates and their summed log P -> best first (ties: first proposed).
    score: the mean log P over the members, per symbol (see LENGTH_PENALTY)."""
    mean = total / n_members
    score = mean / (np.array([len(c) for c in candidates]) + 1.0) ** LENGTH_PENALTY
    order = np.argsort(-score, kind="stable")
    return [Ranked(candidates[i], float(score[i]), float(np.exp(mean[i]))) for i in order]
