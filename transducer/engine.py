"""Inference engines: turn (B, T) input ids into per-position output probabilities.

Two engines compute the same function:
  numpy  a TensorFlow-free forward pass over `weights.npz` (imports in ~0.1 s, small RSS);
         the default for `predict` and `evaluate`.
  keras  the saved `model.keras` run by TensorFlow; `--engine keras`.

The numpy engine is written per layer type from Keras's own equations (GRU with
reset_after True/False, Bidirectional concat, Dense). The first GRU layer's input is
one-hot, so `one_hot(x) @ kernel` is a row gather `kernel[x]`: same numbers, no matmul.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .artifacts import WEIGHTS, ModelInfo, load_keras_model
from .config import TransducerError

ENGINES = ("numpy", "keras")


def export_weights(model, path: Path) -> None:
    """Every variable of `model` by its Keras path (e.g. `gru_1/gru_cell/kernel`)."""
    arrays = {w.path: np.asarray(w.numpy()) for w in model.weights}
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_engine(info: ModelInfo, engine: str = "numpy"):
    if engine not in ENGINES:
        raise TransducerError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "keras":
        return KerasEngine(info)
    return NumpyEngine(info)


class KerasEngine:
    name = "keras"

    def __init__(self, info: ModelInfo, model=None):
        """`model`: an in-memory Keras model (e.g. just trained) instead of DIR/model.keras."""
        self.info = info
        self.model = model if model is not None else load_keras_model(info)
        self.decoder_layers = info.model.layers
        self._seq2seq = None  # (encoder, step) inference models, built on first use

    def _seq2seq_models(self):
        if self._seq2seq is None:
            from .seq2seq import inference_models

            self._seq2seq = inference_models(self.model, self.info.model)
        return self._seq2seq

    def seq2seq_encode(self, ids: np.ndarray):
        """(B, T) ids -> encoder outputs (B, T, W) and the decoder's initial state (B, W)."""
        from .vocab import one_hot

        encoder, _ = self._seq2seq_models()
        x = one_hot(ids, self.info.model.input_vocab_size)  # (B, T, Vin)
        enc, init = encoder.predict_on_batch(x)
        return np.asarray(enc, np.float32), np.asarray(init, np.float32)

    def seq2seq_step(self, prev: np.ndarray, enc: np.ndarray, states: list[np.ndarray]):
        """One decoder step for N hypotheses: previous symbol ids (N,) -> probs (N, V), states."""
        from .vocab import one_hot

        _, step = self._seq2seq_models()
        x = one_hot(prev[:, None], self.info.model.output_vocab_size)  # (N, 1, Vout)
        out = step.predict_on_batch([x, enc, *states])
        probs = np.asarray(out[0], np.float32)[:, 0]  # (N, Vout)
        return probs, [np.asarray(s, np.float32) for s in out[1:]]

    def aligned_probs(self, ids: np.ndarray) -> np.ndarray:
        """(B, T) ids -> (B, T, V) probabilities."""
        from .vocab import one_hot

        x = one_hot(ids, self.info.model.input_vocab_size)  # (B, T, Vin)
        return np.asarray(self.model.predict_on_batch(x), dtype=np.float32)  # (B, T, Vout)


class NumpyEngine:
    name = "numpy"

    def __init__(self, info: ModelInfo):
        self.info = info
        path = info.path / WEIGHTS
        if not path.is_file():
            raise TransducerError(
                f"{info.path}: {WEIGHTS} is missing; run `transducer export {info.path}`"
                " or use --engine keras"
            )
        try:
            with np.load(path, allow_pickle=False) as z:
                self.w = {k: z[k].astype(np.float32) for k in z.files}
        except (OSError, ValueError) as e:
            raise TransducerError(f"{path}: unreadable weights ({e})") from None

    def get(self, key: str) -> np.ndarray:
        try:
            return self.w[key]
        except KeyError:
            raise TransducerError(
                f"{self.info.path / WEIGHTS}: no weight {key!r}; re-export with `transducer export`"
            ) from None

    def gru_params(self, prefix: str):
        return (
            self.get(f"{prefix}/gru_cell/kernel"),
            self.get(f"{prefix}/gru_cell/recurrent_kernel"),
            self.get(f"{prefix}/gru_cell/bias"),
        )

    def recurrent_stack(self, ids: np.ndarray, prefix: str = "") -> np.ndarray:
        """(B, T) ids -> (B, T, H) outputs of the GRU stack (2H when bidirectional)."""
        cfg = self.info.model
        x = None  # (B, T, features) after the first layer
        for i in range(1, cfg.layers + 1):
            if cfg.bidirectional:
                base = f"{prefix}bidirectional_{i}"
                fwd = self.gru_params(f"{base}/forward_{prefix}gru_{i}")
                bwd = self.gru_params(f"{base}/backward_{prefix}gru_{i}")
                xf = _input_proj(ids, x, fwd[0])
                xb = _input_proj(ids, x, bwd[0])
                hf = gru_sequence(xf, fwd[1], fwd[2], cfg.reset_after)
                hb = gru_sequence(xb[:, ::-1], bwd[1], bwd[2], cfg.reset_after)[:, ::-1]
                x = np.concatenate([hf, hb], axis=-1)  # (B, T, 2H)
            else:
                k, rk, b = self.gru_params(f"{prefix}gru_{i}")
                x = gru_sequence(_input_proj(ids, x, k), rk, b, cfg.reset_after)  # (B, T, H)
        return x

    def head(self, h: np.ndarray) -> np.ndarray:
        """Per-position logits -> softmax probabilities (..., V)."""
        key = "time_distributed/dense" if self.info.model.head == "time-distributed" else "dense"
        logits = h @ self.get(f"{key}/kernel") + self.get(f"{key}/bias")
        return softmax(logits)

    def aligned_probs(self, ids: np.ndarray) -> np.ndarray:
        """(B, T) ids -> (B, T, V) probabilities."""
        return self.head(self.recurrent_stack(ids))

    # seq2seq: the equations of seq2seq.build_seq2seq's layers, one decoder step at a time.

    @property
    def decoder_layers(self) -> int:
        return self.info.model.layers

    def seq2seq_encode(self, ids: np.ndarray):
        """(B, T) ids -> encoder outputs (B, T, W) and the decoder's initial state (B, W)."""
        enc = self.recurrent_stack(ids, prefix="encoder_")  # (B, T, W)
        if self.info.model.bidirectional:
            # Final states: forward after the last position, backward after the first.
            H = self.info.model.hidden
            return enc, np.concatenate([enc[:, -1, :H], enc[:, 0, H:]], axis=-1)  # (B, 2H)
        return enc, enc[:, -1].copy()  # (B, H)

    def seq2seq_step(self, prev: np.ndarray, enc: np.ndarray, states: list[np.ndarray]):
        """One decoder step for N hypotheses: previous symbol ids (N,) -> probs (N, V), states."""
        cfg = self.info.model
        x = None
        new_states = []
        for i in range(1, cfg.layers + 1):
            k, rk, b = self.gru_params(f"decoder_gru_{i}")
            x = gru_step(_input_proj(prev, x, k), states[i - 1], rk, b, cfg.reset_after)  # (N, W)
            new_states.append(x)
        if cfg.attention != "none":
            if cfg.attention == "luong":
                scores = np.einsum("nw,ntw->nt", x, enc)  # (N, T): dot product, no scale
            else:  # bahdanau: Keras AdditiveAttention, sum(scale * tanh(q + k))
                scores = (np.tanh(x[:, None, :] + enc) * self.get("attention/scale")).sum(-1)  # (N, T)
            context = np.einsum("nt,ntw->nw", softmax(scores), enc)  # (N, W)
            combined = np.concatenate([x, context], axis=-1)  # (N, 2W)
            x = np.tanh(combined @ self.get("attention_combine/kernel") + self.get("attention_combine/bias"))
        return self.head(x), new_states  # (N, V)


def _input_proj(ids: np.ndarray, x: np.ndarray | None, kernel: np.ndarray) -> np.ndarray:
    """x @ kernel, where x is one-hot `ids` for the first layer (a row gather)."""
    if x is None:
        return kernel[ids]  # (B, T, 3H)
    return x @ kernel  # (B, T, 3H)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # overflow-free form of 1/(1+exp(-x))


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def gru_step(xp, h, rk, b, reset_after: bool):
    """One GRU step. xp: (B, 3H) input projection (bias not included); h: (B, H).

    Keras gate order in kernels and biases is [z, r, h~].
    """
    H = h.shape[-1]
    if reset_after:
        xb, rb = b[0], b[1]  # input and recurrent biases, (3H,) each
        xp = xp + xb
        hp = h @ rk + rb  # (B, 3H)
        z = sigmoid(xp[:, :H] + hp[:, :H])
        r = sigmoid(xp[:, H : 2 * H] + hp[:, H : 2 * H])
        hh = np.tanh(xp[:, 2 * H :] + r * hp[:, 2 * H :])
    else:
        xp = xp + b
        hp = h @ rk[:, : 2 * H]  # (B, 2H)
        z = sigmoid(xp[:, :H] + hp[:, :H])
        r = sigmoid(xp[:, H : 2 * H] + hp[:, H:])
        hh = np.tanh(xp[:, 2 * H :] + (r * h) @ rk[:, 2 * H :])
    return z * h + (1.0 - z) * hh  # (B, H)


def gru_sequence(xp: np.ndarray, rk: np.ndarray, b: np.ndarray, reset_after: bool, h0=None):
    """(B, T, 3H) input projections -> (B, T, H) hidden states."""
    B, T, _ = xp.shape
    H = rk.shape[0]
    h = np.zeros((B, H), dtype=np.float32) if h0 is None else h0
    out = np.empty((B, T, H), dtype=np.float32)
    for t in range(T):
        h = gru_step(xp[:, t], h, rk, b, reset_after)
        out[:, t] = h
    return out
