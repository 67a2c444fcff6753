"""Inference engines: turn (B, T) input ids into per-position output probabilities.

Two engines compute the same function, behind one interface (`Engine`):
  numpy  numpy_engine.NumpyEngine: a TensorFlow-free forward pass over `weights.npz`
         (imports in ~0.1 s, small RSS); the default for `predict` and `evaluate`.
  keras  keras_engine.KerasEngine: the saved `model.keras` run by TensorFlow; `--engine keras`.

An ensemble (ensemble.EnsembleEngine) is an Engine too, so decoding (decode.py),
prediction (predict.py) and explanations (explain.py) never ask which one they have.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from transducer.core.artifacts import ModelInfo
from transducer.core.config import ENGINES, TransducerError
from transducer.inference.numpy_engine import NumpyEngine


class Engine(Protocol):
    """What decode.py, predict.py, ensemble.py and explain.py call. Ids are right-padded
    with <pad>; probabilities are float32 and sum to 1 over the last axis."""

    name: str  # "numpy" or "keras": what --engine chose
    info: ModelInfo  # the model directory's vocabularies and config (member 1 of an ensemble)

    @property
    def decoder_layers(self) -> int:
        """seq2seq: how many decoder states seq2seq_step takes and returns."""
        ...

    def aligned_probs(self, ids: np.ndarray) -> np.ndarray:
        """aligned: (B, T) ids -> (B, T, V) probabilities per position."""
        ...

    def aligned_decode(self, ids: np.ndarray, copy_unk: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """aligned: (B, T) ids -> (B, T) chosen ids and (B,) P(output string); copy_unk as
        in probs.decode_probs."""
        ...

    def label_probs(self, ids: np.ndarray) -> np.ndarray:
        """label: (B, T) ids -> (B, n_labels) probabilities."""
        ...

    def seq2seq_encode(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """seq2seq: (B, T) ids -> encoder outputs (B, T, W), the decoder's initial state
        (B, W) and the encoder mask (B, T) bool (None for a model written before masks)."""
        ...

    def seq2seq_step(
        self, prev: np.ndarray, enc: np.ndarray, mask: np.ndarray | None, states: list[np.ndarray],
        return_attention: bool = False,
    ) -> tuple:
        """seq2seq: one decoder step for N hypotheses: previous symbol ids (N,) -> probs
        (N, V) and the new states (decoder_layers of (N, W)); with `return_attention`, also
        the attention weights (N, T) (None for a model without attention)."""
        ...

    def edit_encode(self, ids: np.ndarray) -> np.ndarray:
        """edit: (B, T) ids, each row's </s> at its length n, <pad> after -> the engine's
        encoding of each line (B, T, X), read only by edit_step (Keras: the encoder outputs;
        numpy: those times the first decoder layer's kernel; an ensemble: its members'
        concatenated)."""
        ...

    def edit_initial_states(self, n: int) -> list[np.ndarray]:
        """edit: the decoder's initial (zero) states for n hypotheses, one array per layer."""
        ...

    def edit_step(
        self, enc: np.ndarray, rows: np.ndarray, pointer: np.ndarray, prev: np.ndarray,
        lengths: np.ndarray, states: list[np.ndarray],
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """edit: one decoder step for N hypotheses: enc from edit_encode, each hypothesis's
        line in it (N,), pointer (N,), previous action id (N,), input length n (N,), states
        -> action probabilities (N, A) (actions invalid at the pointer exactly 0) and the
        new states."""
        ...


def load_engine(info: ModelInfo, engine: str = "numpy") -> Engine:
    """The engine `engine` ("numpy" | "keras") for one model (an ensemble's member)."""
    if engine not in ENGINES:
        raise TransducerError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "keras":  # imported here: the numpy engine's processes never need it
        from transducer.inference.keras_engine import KerasEngine

        return KerasEngine(info)
    return NumpyEngine(info)
