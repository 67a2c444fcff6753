"""Loading a model directory's model.keras: safe mode, no code, vocabularies checked."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from transducer.core.artifacts import CONFIG, MODEL, ModelInfo
from transducer.core.config import TransducerError
from transducer.networks import edit  # noqa: F401  registers the edit model's custom layers for loading
from transducer.networks.tf import keras


def load_keras_model(info: ModelInfo):
    """The saved Keras model, loaded in safe mode (no Lambda/pickled code) and checked."""
    path = info.path / MODEL
    if not path.is_file():
        raise TransducerError(f"{info.path}: {MODEL} is missing")
    if not zipfile.is_zipfile(path):
        raise TransducerError(f"{path}: corrupt model file (not a .keras zip archive)")
    _refuse_code(path)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # Keras raises many types for bad files; all mean "cannot load"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TransducerError(f"{path}: cannot load model ({first[:300]})") from None
    _check_vocab_shapes(model, info)
    return model


SAFE_MODULES = ("keras", "transducer")  # where every class of a model we wrote comes from


def _refuse_code(path: Path) -> None:
    """Refuse, before Keras reads it, a model whose architecture holds code: a Lambda
    layer (serialized Python bytecode) or a class from outside Keras and transducer.
    Safe mode refuses the first too; this makes the refusal explicit and independent of it."""
    try:
        with zipfile.ZipFile(path) as z:
            arch = json.loads(z.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise TransducerError(f"{path}: corrupt model file ({e})") from None

    def walk(node):
        if isinstance(node, dict):
            name, module = node.get("class_name"), node.get("module")
            if name == "Lambda":
                raise TransducerError(
                    f"{path}: refused: it contains a Lambda layer (Python code run on load);"
                    " transducer never writes one"
                )
            if isinstance(name, str) and isinstance(module, str) and module.split(".")[0] not in SAFE_MODULES + ("builtins",):
                raise TransducerError(f"{path}: refused: it contains a {module}.{name} object, not a Keras layer")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(arch)


def _check_vocab_shapes(model, info: ModelInfo) -> None:
    out = model.outputs[0].shape[-1]
    inp = model.inputs[0].shape[-1]
    if out != len(info.output_vocab) or inp != len(info.input_vocab):
        raise TransducerError(
            f"{info.path}: vocabularies in {CONFIG} ({len(info.input_vocab)} in,"
            f" {len(info.output_vocab)} out) do not match the model ({inp} in, {out} out)"
        )
