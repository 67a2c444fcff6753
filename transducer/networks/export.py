"""weights.npz from a Keras model: every weight named by its path through the layers
(core/names.py), the file the numpy engine (inference/numpy_engine.py) reads.

`train` writes it next to model.keras; `transducer export DIR` (re)writes it from DIR's
model.keras, for every member of an ensemble. TensorFlow is imported only to load a
model.keras (`load_keras`, through networks/saved.py), so this module imports without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from transducer.core import names
from transducer.core.artifacts import WEIGHTS, ModelInfo, read_info, read_members
from transducer.core.config import TransducerError


def weight_arrays(model) -> dict[str, np.ndarray]:
    """Every weight of `model`, named from the layer structure, the names NumpyEngine reads:
    `gru_1/gru_cell/kernel`, `bidirectional_1/forward_gru_1/gru_cell/bias`,
    `time_distributed/dense/kernel`. Keras's own variable paths are not used: after
    `load_model` they lose the wrapper's prefix (`forward_gru_1/...`, `dense/...`), so a
    model exported from model.keras would not match one written by `train`."""
    arrays = {}
    for layer in model.layers:
        for name, var in _layer_variables(layer):
            arrays[names.path(layer.name, name)] = np.asarray(var.numpy())
    return arrays


def _layer_variables(layer):
    """(name inside the layer, variable) pairs, wrappers spelled out by their inner layers."""
    forward = getattr(layer, "forward_layer", None)
    if forward is not None:  # Bidirectional
        for inner in (forward, layer.backward_layer):
            for name, var in _layer_variables(inner):
                yield names.path(inner.name, name), var
        return
    inner = getattr(layer, "layer", None)
    if inner is not None:  # TimeDistributed
        for name, var in _layer_variables(inner):
            yield names.path(inner.name, name), var
        return
    cell = getattr(layer, "cell", None)
    if cell is not None:  # GRU: its weights live in its cell
        for var in cell.weights:
            yield names.path(cell.name, var.name), var
        return
    for var in layer.weights:
        yield var.name, var


def export_weights(model, path: Path) -> None:
    """`weight_arrays(model)` written to a temporary file next to `path` and renamed over
    it, so readers never see half a file."""
    path = Path(path)
    arrays = weight_arrays(model)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # same directory: rename is atomic
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_keras(info: ModelInfo):
    """saved.load_keras_model, with a one-line error where TensorFlow is not installed."""
    try:
        from transducer.networks.saved import load_keras_model  # imports TensorFlow

        return load_keras_model(info)
    except ImportError as e:
        raise TransducerError(
            f"this needs TensorFlow, which cannot be imported ({e}); the numpy engine"
            " (the default for predict) does not"
        ) from None


def export_member(info: ModelInfo) -> Path:
    """Write (or refresh) one model's weights.npz from its model.keras; returns its path."""
    model = load_keras(info)  # clear errors for a missing or corrupt model.keras
    path = info.path / WEIGHTS
    try:
        export_weights(model, path)
    except OSError as e:
        raise TransducerError(f"{path}: cannot write ({e.strerror or e})") from None
    return path


def export_model_dir(model_dir) -> list[Path]:
    """`transducer export`: (re)write every member's weights.npz; their paths, member 1 first."""
    return [export_member(m) for m in read_members(read_info(model_dir))]
