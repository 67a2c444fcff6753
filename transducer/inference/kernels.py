"""The numpy engine's arithmetic: Keras's GRU equations (reset_after True and False),
softmax, and the small array helpers its layers share. Pure numpy, float32, in place
where it saves temporaries; no model, no weights file (numpy_engine.py has those).

Keras's gate order in a GRU's kernels and biases is [z, r, h~]. exp is about twice as
fast as tanh in numpy, so every gate (tanh included) is computed through one exp.
"""

from __future__ import annotations

import numpy as np


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (a new array)."""
    z = z - z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def _sigmoid_(x: np.ndarray) -> np.ndarray:
    """sigmoid(x) in place, float32, no temporaries. Callers silence the harmless overflow
    of exp(-x) for x << 0 (result 0)."""
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += 1.0
    np.reciprocal(x, out=x)
    return x


def _tanh_(x: np.ndarray) -> np.ndarray:
    """tanh(x) = 2 sigmoid(2x) - 1, in place."""
    x *= 2.0
    _sigmoid_(x)
    x *= 2.0
    x -= 1.0
    return x


def input_bias(b: np.ndarray, reset_after: bool) -> np.ndarray:
    """The part of a GRU's bias added to the input projection: (3H,). With reset_after the
    bias is (2, 3H), input then recurrent; without, one (3H,) bias."""
    return b[0] if reset_after else b


def gru_step(xp, h, rk, b, reset_after: bool):
    """One GRU step. xp: (B, 3H) input projection (bias not included); h: (B, H)."""
    with np.errstate(over="ignore"):
        return gru_step_biased(xp + input_bias(b, reset_after), h, rk, b, reset_after)


def gru_step_biased(xp, h, rk, b, reset_after: bool):
    """gru_step with the input bias already in xp (B, 3H), which it overwrites."""
    H = h.shape[-1]
    zr = xp[:, : 2 * H]  # (B, 2H): z then r
    hh = xp[:, 2 * H :]  # (B, H): the candidate
    if reset_after:
        hp = h @ rk  # (B, 3H)
        hp += b[1]  # recurrent bias
        zr += hp[:, : 2 * H]
        _sigmoid_(zr)
        hp_h = hp[:, 2 * H :]
        hp_h *= zr[:, H:]  # r * (h @ rk_h + b_h)
        hh += hp_h
    else:
        zr += h @ rk[:, : 2 * H]
        _sigmoid_(zr)
        hh += (zr[:, H:] * h) @ rk[:, 2 * H :]  # (r * h) @ rk_h
    _tanh_(hh)
    # z * h + (1 - z) * hh, as hh + z * (h - hh): one temporary instead of three
    out = h - hh
    out *= zr[:, :H]
    out += hh
    return out  # (B, H)


def gru_sequence(xp: np.ndarray, rk: np.ndarray, b: np.ndarray, reset_after: bool, h0=None):
    """(B, T, 3H) input projections (bias not included) -> (B, T, H) hidden states."""
    B, T, _ = xp.shape
    H = rk.shape[0]
    h = np.zeros((B, H), dtype=np.float32) if h0 is None else h0
    out = np.empty((B, T, H), dtype=np.float32)
    in_bias = input_bias(b, reset_after)
    with np.errstate(over="ignore"):
        for t in range(T):
            h = gru_step_biased(xp[:, t] + in_bias, h, rk, b, reset_after)
            out[:, t] = h
    return out


def input_proj(ids: np.ndarray, x: np.ndarray | None, kernel: np.ndarray) -> np.ndarray:
    """x @ kernel, where x is one-hot `ids` for the first layer (a row gather)."""
    if x is None:
        return kernel[ids]  # (B, T, 3H)
    return x @ kernel  # (B, T, 3H)


def reverse(x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """Reverse each row of x (B, T, ...) along time: the whole row, or (with lengths) only
    its first lengths[b] positions, as tf.reverse_sequence does; the rest stays in place."""
    if lengths is None:
        return x[:, ::-1]
    t = np.arange(x.shape[1])
    idx = np.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, T)
    return x[np.arange(len(x))[:, None], idx]
