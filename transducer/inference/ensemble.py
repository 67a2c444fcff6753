"""Ensembles: N members of one model directory, run as one engine. TensorFlow-free.

`train --ensemble N` writes N members that differ only in their seed (artifacts.py has the
directory layout, training/ensemble.py the training). An EnsembleEngine is an Engine
(engine.py), the interface decode.py and predict.py use, so greedy search, beam search and
the aligned k-best search run unchanged.

Combining: at every decoder step (seq2seq) or output position (aligned) the members'
distributions are averaged in log space and renormalised:

    p(y) = exp(mean_k log p_k(y)) / sum_y' exp(mean_k log p_k(y'))

a geometric mean. Renormalised, so what search ranks and what `confidence` reports are
probabilities of a proper distribution, as for one model. N copies of one model give that
model's distribution back (up to float rounding). Each log p_k is clamped at log(1e-30),
as decode.py does, so one member's zero cannot veto a symbol on its own.

Members of different architectures or vocabularies (an assembled ensemble, artifacts.py)
have no common step distribution: the engine still holds them, for combine.py's vote and
rescore, but refuses to run the mean (EnsembleEngine.conflict says why).

seq2seq and edit states: the ensemble's encoder outputs and decoder states are the members'
concatenated on the last (feature) axis, so decode.py and edit_decode.py can select,
repeat and drop rows (hypotheses) without knowing there are several members; each step
splits them again. An edit model's invalid actions (masked by every member alike) keep
probability 0.
"""

from __future__ import annotations

import numpy as np

from transducer.core.artifacts import ModelInfo, mean_conflict, read_members
from transducer.core.config import TransducerError
from transducer.inference.engine import load_engine as load_one
from transducer.inference.probs import decode_in_slices

LOG_FLOOR = 1e-30  # probabilities are clamped here before the log, as in decode.py


def combine(probs: list[np.ndarray]) -> np.ndarray:
    """Members' probabilities, each (..., V) -> their renormalised geometric mean (..., V)."""
    logp = np.mean([np.log(np.maximum(p, LOG_FLOOR)) for p in probs], axis=0)  # (..., V)
    logp -= logp.max(axis=-1, keepdims=True)  # stable: the largest term is exp(0)
    p = np.exp(logp)
    p /= p.sum(axis=-1, keepdims=True)
    return p.astype(np.float32)


def load_engine(info: ModelInfo, engine: str = "numpy"):
    """engine.load_engine for a model directory that may hold an ensemble."""
    members = read_members(info)
    if len(members) == 1:
        return load_one(info, engine)
    return EnsembleEngine([load_one(m, engine) for m in members], mean_conflict(members))


class EnsembleEngine:
    """N engines (members) with one engine's interface; see the module docstring."""

    def __init__(self, engines: list, conflict: str | None = None):
        self.engines = engines
        self.conflict = conflict  # why the members have no common step distribution, or None
        self.info = engines[0].info  # member 1: the vocabularies and sizes all members share
        self.name = engines[0].name
        self.decoder_layers = engines[0].decoder_layers
        self._widths: list[int] = []  # each member's encoder width, set by seq2seq_encode

    def check_mean(self) -> None:
        """Refuse the per-step mean, in one line, when the members cannot share it."""
        if self.conflict:
            raise TransducerError(
                f"{self.info.path}: {self.conflict}, so their step distributions cannot be averaged"
                " (--combine mean); predict and evaluate combine them with --combine vote or --combine rescore"
            )

    def _split(self, x: np.ndarray) -> list[np.ndarray]:
        """(..., sum of widths) -> each member's (..., width)."""
        return np.split(x, np.cumsum(self._widths)[:-1], axis=-1)

    def seq2seq_encode(self, ids: np.ndarray):
        """(B, T) ids -> concatenated encoder outputs (B, T, N*W), initial states (B, N*W)
        and the encoder mask (B, T) (the members share the architecture, so the mask too)."""
        self.check_mean()
        encoded = [e.seq2seq_encode(ids) for e in self.engines]
        self._widths = [enc.shape[-1] for enc, _, _ in encoded]
        enc = np.concatenate([enc for enc, _, _ in encoded], axis=-1)  # (B, T, N*W)
        init = np.concatenate([init for _, init, _ in encoded], axis=-1)  # (B, N*W)
        return enc, init, encoded[0][2]

    def seq2seq_step(
        self, prev: np.ndarray, enc: np.ndarray, mask: np.ndarray | None, states: list[np.ndarray],
        return_attention: bool = False,
    ):
        """One step of every member: combined probs (n, V), concatenated states (and with
        `return_attention`, the members' attention weights averaged, (n, T), for explain)."""
        encs = self._split(enc)  # each (n, T, W)
        per_layer = [self._split(s) for s in states]  # [layer][member] -> (n, W)
        probs, new_states, weights = [], [], []
        for k, engine in enumerate(self.engines):
            out = engine.seq2seq_step(prev, encs[k], mask, [layer[k] for layer in per_layer], return_attention)
            probs.append(out[0])
            new_states.append(out[1])
            if return_attention:
                weights.append(out[2])
        joined = [np.concatenate([s[i] for s in new_states], axis=-1) for i in range(len(states))]
        if not return_attention:
            return combine(probs), joined
        attention = None if weights[0] is None else np.mean(weights, axis=0)  # (n, T)
        return combine(probs), joined, attention

    def edit_encode(self, ids: np.ndarray) -> np.ndarray:
        """(B, T) ids with </s> at n -> the members' encodings concatenated (B, T, N*X)."""
        self.check_mean()
        return np.concatenate([e.edit_encode(ids) for e in self.engines], axis=-1)

    def edit_initial_states(self, n: int) -> list[np.ndarray]:
        """The members' zero decoder states, concatenated per layer: (n, N*H) each."""
        per_member = [e.edit_initial_states(n) for e in self.engines]
        return [np.concatenate(layer, axis=-1) for layer in zip(*per_member)]

    def edit_step(self, enc, rows, pointer, prev, lengths, states):
        """One step of every member (an edit model): combined probs (n, A), concatenated
        states. The members share the architecture, so their encodings and states are
        equal slices of the concatenations. An action the members mask keeps probability 0."""
        k = len(self.engines)
        encs = np.split(enc, k, axis=-1)  # each (B, T, X)
        per_layer = [np.split(s, k, axis=-1) for s in states]  # [layer][member] -> (n, H)
        probs, new_states = [], []
        for m, engine in enumerate(self.engines):
            p, st = engine.edit_step(encs[m], rows, pointer, prev, lengths, [layer[m] for layer in per_layer])
            probs.append(p)
            new_states.append(st)
        joined = [np.concatenate(layer, axis=-1) for layer in zip(*new_states)]
        valid = self.info.output_vocab.valid_mask(pointer, lengths)  # (n, A): what every member allows
        return np.where(valid, combine(probs), 0.0).astype(np.float32), joined

    def aligned_probs(self, ids: np.ndarray) -> np.ndarray:
        """(B, T) ids -> combined (B, T, V) probabilities."""
        self.check_mean()
        return combine([e.aligned_probs(ids) for e in self.engines])

    def label_probs(self, ids: np.ndarray) -> np.ndarray:
        """(B, T) ids -> combined (B, n_labels) probabilities (--arch label)."""
        self.check_mean()
        return combine([e.label_probs(ids) for e in self.engines])

    def aligned_decode(self, ids: np.ndarray, copy_unk: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(B, T) ids -> (B, T) chosen ids (per-position argmax of the combined
        distribution) and (B,) P(output string) under it; copy_unk as in probs.decode_probs."""
        return decode_in_slices(self.aligned_probs, ids, copy_unk)
