"""What `summarize` shows of a network: its layer table, and Dense vs TimeDistributed(Dense)
compared on the same weights."""

from __future__ import annotations

import time

import numpy as np

from transducer.core.config import ModelConfig
from transducer.networks.aligned import build_aligned
from transducer.core.names import HEAD_LAYER
from transducer.networks.tf import keras


def layer_rows(model: keras.Model) -> list[tuple[str, str, str, int]]:
    """(name, type, output shape, parameters) per layer, input layers included, like summary()."""
    rows = []
    for inp in model.inputs:
        name = inp.name if isinstance(inp.name, str) else "input"
        rows.append((name, "InputLayer", _shape(inp), 0))
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        kind = type(layer).__name__
        inner = getattr(layer, "layer", None) or getattr(layer, "forward_layer", None)
        if inner is not None:
            kind += f"({type(inner).__name__})"
        rows.append((layer.name, kind, _shape(layer.output), int(layer.count_params())))
    return rows


def _shape(tensor_or_shape) -> str:
    """`(None, 64, 16)`; a layer with several outputs (a GRU returning its state) lists each."""
    if isinstance(tensor_or_shape, (list, tuple)) and tensor_or_shape and hasattr(tensor_or_shape[0], "shape"):
        return ", ".join(_shape(t) for t in tensor_or_shape)
    shape = getattr(tensor_or_shape, "shape", tensor_or_shape)
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


# --- Dense vs TimeDistributed(Dense) -----------------------------------------------------


def compare_heads(cfg: ModelConfig, batch: int = 256, repeats: int = 5, seed: int = 0) -> dict:
    """Build the model with each head, give both the same weights (copied by layer name),
    run the same random one-hot batch through both, and time them.

    Returns rows per head, the max absolute difference of their outputs, and the median
    seconds per batch for each head.
    """
    keras.utils.set_random_seed(seed)
    dense_model = build_aligned(cfg.replace(head="dense"))
    td_model = build_aligned(cfg.replace(head="time-distributed"))
    for layer in dense_model.layers:
        if layer.weights and layer.name != HEAD_LAYER["dense"]:
            td_model.get_layer(layer.name).set_weights(layer.get_weights())
    # TimeDistributed's weights are its inner Dense's: kernel (H, V) and bias (V,).
    td_model.get_layer(HEAD_LAYER["time-distributed"]).set_weights(
        dense_model.get_layer(HEAD_LAYER["dense"]).get_weights()
    )

    rng = np.random.default_rng(seed)
    ids = rng.integers(0, cfg.input_vocab_size, size=(batch, cfg.max_len))  # (B, T)
    x = np.eye(cfg.input_vocab_size, dtype=np.float32)[ids]  # (B, T, Vin)
    y_dense = np.asarray(dense_model.predict_on_batch(x))  # (B, T, Vout)
    y_td = np.asarray(td_model.predict_on_batch(x))  # (B, T, Vout)

    def median_seconds(model) -> float:
        model.predict_on_batch(x)  # warm-up: traces the graph
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.predict_on_batch(x)
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    def head_only_seconds(model, head_name) -> float:
        # The head alone on a GRU-shaped input, where the two differ: Dense is one matmul
        # over (B*T, H); TimeDistributed may reshape or loop over the T steps.
        head = model.get_layer(head_name)
        h = rng.standard_normal((batch, cfg.max_len, head.input.shape[-1])).astype(np.float32)
        head(h)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            head(h)
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    return {
        "dense_rows": layer_rows(dense_model),
        "td_rows": layer_rows(td_model),
        "max_abs_diff": float(np.max(np.abs(y_dense - y_td))),
        "batch": batch,
        "dense_seconds": median_seconds(dense_model),
        "td_seconds": median_seconds(td_model),
        "dense_head_seconds": head_only_seconds(dense_model, HEAD_LAYER["dense"]),
        "td_head_seconds": head_only_seconds(td_model, HEAD_LAYER["time-distributed"]),
    }
