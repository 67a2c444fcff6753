"""The layer table of a model directory without TensorFlow: what `summarize DIR` shows.

Keras's table (networks.introspect.layer_rows on the loaded model.keras) costs a
TensorFlow import and a model load, seconds for a table whose every cell follows from
config.json. Here the network is described from config.json as networks/*.py build it:
each layer with its Keras type, its output shapes and the weights.npz arrays it holds.
Parameter counts are the sizes of those arrays, read from weights.npz (a directory
without one, written before it existed, counts the shapes config.json implies).

Rows come in Keras's order, which is not the order the layers are built in: Keras sorts
a functional model's layers by their distance from the output, farthest first, ties in
the order a depth-first walk from the output meets them (keras/src/ops/function.py,
map_graph). So each layer also names the layers it is called on, and `keras_order`
applies that rule: a seq2seq encoder's last Dropout feeds only the attention, so it is
listed after the decoder. tests/test_summarize.py checks the table against Keras's, row
by row, for every architecture and option.

The layer and weight names come from core/names.py, as networks/*.py's and the numpy
engine's do (`gru_1/gru_cell/kernel`, `bidirectional_1/forward_gru_1/gru_cell/bias`,
`time_distributed/dense/kernel`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from transducer.core import names
from transducer.core.artifacts import WEIGHTS, ModelInfo
from transducer.core.config import ModelConfig, TransducerError
from transducer.inference.numpy_engine import read_weights


@dataclass(frozen=True)
class Layer:
    """One row of the table, with what Keras's ordering and the counts need."""

    name: str  # the Keras layer name
    kind: str  # Keras class, a wrapper with its inner layer: "Bidirectional(GRU)"
    shapes: tuple[tuple, ...]  # output shapes, None for the batch axis and a free time axis
    inputs: tuple[str, ...] = ()  # the layers (or model inputs) it is called on, in call order
    weights: dict = field(default_factory=dict)  # weights.npz name -> the shape config.json implies


Row = tuple[str, str, str, int]  # (name, type, output shape, parameters), as introspect.layer_rows


def model_dir_rows(info: ModelInfo) -> list[Row]:
    """The layer table of the model in `info`: input layers first, then every layer in
    Keras's order, each with the parameters its weights.npz arrays hold (without a
    weights.npz: the shapes config.json implies). A weights.npz that does not fit
    config.json is a one-line error, as for predict."""
    path = info.path / WEIGHTS
    arrays = read_weights(path, info.path) if path.exists() else None
    inputs, layers = network(info.model)
    rows = [(layer.name, layer.kind, _shape_text(layer.shapes), 0) for layer in inputs]
    for layer in keras_order(layers, names.SOFTMAX):
        shapes = layer.weights if arrays is None else _held(layer, arrays, info)
        rows.append((layer.name, layer.kind, _shape_text(layer.shapes), sum(math.prod(s) for s in shapes.values())))
    return rows


def _held(layer: Layer, arrays: dict, info: ModelInfo) -> dict:
    """The shapes of `layer`'s arrays in weights.npz, checked against config.json."""
    held = {}
    for name, want in layer.weights.items():
        array = arrays.get(name)
        if array is None and names.old_name(name) is not None:
            array = arrays.get(names.old_name(name))  # written before wrappers were spelled out
        if array is None:
            raise TransducerError(
                f"{info.path / WEIGHTS}: no weight {name!r}; re-export with `transducer export {info.path}`"
            )
        if tuple(array.shape) != want:
            raise TransducerError(
                f"{info.path}: the weights do not fit the vocabularies and sizes in config.json"
                f" ({name} is {tuple(array.shape)}, config.json makes it {want})"
            )
        held[name] = tuple(array.shape)
    return held



def keras_order(layers: list[Layer], output: str) -> list[Layer]:
    """The layers that reach `output`, ordered as Keras lists a functional model's
    layers: farthest from the output first (the longest path); ties by when a depth-first
    walk from the output, through each layer's inputs in call order, first meets them."""
    by_name = {layer.name: layer for layer in layers}
    met: dict[str, int] = {}  # layer -> its place in the walk

    def walk(name: str) -> None:
        if name in met or name not in by_name:  # met already, or a model input
            return
        met[name] = len(met)
        for parent in by_name[name].inputs:
            walk(parent)

    walk(output)
    consumers = {name: [c for c in met if name in by_name[c].inputs] for name in met}
    depth: dict[str, int] = {}

    def distance(name: str) -> int:
        if name not in depth:
            depth[name] = max((distance(c) + 1 for c in consumers[name]), default=0)
        return depth[name]

    return [by_name[n] for n in sorted(met, key=lambda n: (-distance(n), met[n]))]


def _shape_text(shapes: tuple[tuple, ...]) -> str:
    """`(None, 64, 16)`; several outputs (a GRU returning its state) each, comma-separated."""
    return ", ".join("(" + ", ".join("None" if d is None else str(d) for d in s) + ")" for s in shapes)


# --- the networks, as networks/*.py build them -----------------------------------------------


def network(cfg: ModelConfig) -> tuple[list[Layer], list[Layer]]:
    """(model inputs, layers) of the network `train` builds for `cfg`."""
    T = None if cfg.variable_length else cfg.max_len  # networks.blocks.time_steps
    if cfg.arch == "seq2seq":
        return _seq2seq(cfg, T)
    if cfg.arch == "edit":
        return _edit(cfg)
    return _aligned_or_label(cfg, T)


def gru_shapes(path: str, d_in: int, units: int, reset_after: bool) -> dict:
    """The arrays of the Keras GRU at `path` and their shapes: gates [z, r, h~] side by
    side; with reset_after a second bias row, for the recurrent projection."""
    kernel, recurrent, bias = names.gru_weights(path)
    return {kernel: (d_in, 3 * units), recurrent: (units, 3 * units),
            bias: (2, 3 * units) if reset_after else (3 * units,)}


def dense_shapes(path: str, d_in: int, units: int) -> dict:
    kernel, bias = names.dense_weights(path)
    return {kernel: (d_in, units), bias: (units,)}


def _recurrent(cfg: ModelConfig, i: int, d_in: int, source: str, T, prefix: str = "", sequences: bool = True,
               states: bool = False) -> Layer:
    """The i-th recurrent layer (blocks.recurrent_stack, seq2seq._encoder): a GRU, or a
    Bidirectional pair of them. `states`: it also returns its final state(s)."""
    H, W = cfg.hidden, cfg.hidden * (2 if cfg.bidirectional else 1)
    out = ((None, T, W) if sequences else (None, W),)
    weights = {k: v for gru in names.recurrent_layer(i, cfg.bidirectional, prefix)
               for k, v in gru_shapes(gru, d_in, H, cfg.reset_after).items()}
    if not cfg.bidirectional:
        return Layer(names.gru(i, prefix), "GRU", out + (((None, H),) if states else ()), (source,), weights)
    return Layer(names.bidirectional(i, prefix), "Bidirectional(GRU)", out + (((None, H), (None, H)) if states else ()),
                 (source,), weights)


def _stack(cfg: ModelConfig, source: str, d_in: int, T, prefix: str = "", last_sequences: bool = True,
           states: bool = False) -> list[Layer]:
    """cfg.layers recurrent layers, each followed by its Dropout when cfg.dropout > 0."""
    layers: list[Layer] = []
    for i in range(1, cfg.layers + 1):
        rec = _recurrent(cfg, i, d_in, source, T, prefix, last_sequences or i < cfg.layers, states)
        layers.append(rec)
        source, d_in = rec.name, rec.shapes[0][-1]
        if cfg.dropout > 0:
            layers.append(Layer(names.dropout(i, prefix), "Dropout", rec.shapes[:1], (source,)))
            source = layers[-1].name
    return layers


def _decoder_stack(cfg: ModelConfig, source: str, d_in: int, units: int, T, state: str | None = None) -> list[Layer]:
    """cfg.layers decoder GRUs of `units` (seq2seq's and edit's), each returning its final
    state and followed by its Dropout when cfg.dropout > 0; `state`: the layer whose output
    is every GRU's initial state (seq2seq's encoder state), None for zero states."""
    layers: list[Layer] = []
    for i in range(1, cfg.layers + 1):
        gru = names.decoder_gru(i)
        layers.append(Layer(gru, "GRU", ((None, T, units), (None, units)), (source, *([state] if state else [])),
                            gru_shapes(gru, d_in, units, cfg.reset_after)))
        source, d_in = gru, units
        if cfg.dropout > 0:
            layers.append(Layer(names.dropout(i, names.DECODER), "Dropout", ((None, T, units),), (source,)))
            source = layers[-1].name
    return layers


def _head(cfg: ModelConfig, source: str, d_in: int, shape: tuple, time_axis: bool = True) -> list[Layer]:
    """The --head layer (blocks.head_layer) and the softmax after it."""
    choice = cfg.head if time_axis else "dense"  # no time axis (label): always Dense
    kind = "TimeDistributed(Dense)" if choice == "time-distributed" else "Dense"
    head = Layer(names.HEAD_LAYER[choice], kind, (shape,), (source,), dense_shapes(names.head(choice), d_in, shape[-1]))
    return [head, Layer(names.SOFTMAX, "Activation", (shape,), (head.name,))]


def _aligned_or_label(cfg: ModelConfig, T) -> tuple[list[Layer], list[Layer]]:
    """aligned.build_aligned / label.build_label: chars -> GRUs -> head -> softmax."""
    chars = Layer(names.CHARS, "InputLayer", ((None, T, cfg.input_vocab_size),))
    label = cfg.arch == "label"
    stack = _stack(cfg, chars.name, cfg.input_vocab_size, T, last_sequences=not label)
    last = stack[-1]
    out = (None, cfg.output_vocab_size) if label else (None, T, cfg.output_vocab_size)
    return [chars], stack + _head(cfg, last.name, last.shapes[0][-1], out, time_axis=not label)


def _seq2seq(cfg: ModelConfig, T) -> tuple[list[Layer], list[Layer]]:
    """seq2seq.build_seq2seq: encoder, its final state, decoder from that state,
    attention, head."""
    W = cfg.hidden * (2 if cfg.bidirectional else 1)
    T_dec = None if T is None else cfg.max_len + 1  # seq2seq.decoder_len
    V_out = cfg.output_vocab_size
    inputs = [Layer(names.CHARS, "InputLayer", ((None, T, cfg.input_vocab_size),)),
              Layer(names.PREV_CHARS, "InputLayer", ((None, T_dec, V_out),))]
    encoder = _stack(cfg, names.CHARS, cfg.input_vocab_size, T, prefix=names.ENCODER, states=True)
    last_rec = [layer for layer in encoder if layer.kind != "Dropout"][-1]
    kind = "Concatenate" if cfg.bidirectional else "Identity"
    layers = encoder + [Layer(names.ENCODER_STATE, kind, ((None, W),), (last_rec.name,))]
    decoder = _decoder_stack(cfg, names.PREV_CHARS, V_out, W, T_dec, state=names.ENCODER_STATE)
    layers += decoder
    y = decoder[-1].name
    if cfg.attention != "none":
        additive = cfg.attention == "bahdanau"
        layers += [
            Layer(names.ATTENTION, "AdditiveAttention" if additive else "Attention", ((None, T_dec, W),),
                  (y, encoder[-1].name), {names.ATTENTION_SCALE: (W,)} if additive else {}),
            Layer(names.ATTENTION_CONCAT, "Concatenate", ((None, T_dec, 2 * W),), (y, names.ATTENTION)),
            Layer(names.ATTENTION_COMBINE, "Dense", ((None, T_dec, W),), (names.ATTENTION_CONCAT,),
                  dense_shapes(names.ATTENTION_COMBINE, 2 * W, W)),
        ]
        y = names.ATTENTION_COMBINE
    return inputs, layers + _head(cfg, y, W, (None, T_dec, V_out))


def _edit(cfg: ModelConfig) -> tuple[list[Layer], list[Layer]]:
    """edit.build_edit: seq2seq's encoder, the encoder output under each pointer beside the
    previous action, a decoder GRU stack from zero states, head, action mask, softmax.
    An edit model is always masked, so its time axes (T input positions, S steps) are None."""
    T = S = None
    W = cfg.hidden * (2 if cfg.bidirectional else 1)
    A = cfg.output_vocab_size
    inputs = [Layer(names.CHARS, "InputLayer", ((None, T, cfg.input_vocab_size),)),
              Layer(names.POINTERS, "InputLayer", ((None, S),)),
              Layer(names.PREV_ACTIONS, "InputLayer", ((None, S, A),))]
    encoder = _stack(cfg, names.CHARS, cfg.input_vocab_size, T, prefix=names.ENCODER, states=True)
    layers = encoder + [
        Layer(names.POINTED, "PointerGather", ((None, S, W),), (encoder[-1].name, names.POINTERS)),
        Layer(names.DECODER_INPUT, "Concatenate", ((None, S, W + A),), (names.POINTED, names.PREV_ACTIONS)),
    ]
    decoder = _decoder_stack(cfg, names.DECODER_INPUT, W + A, cfg.hidden, S)
    layers += decoder
    y = decoder[-1].name
    head, softmax = _head(cfg, y, cfg.hidden, (None, S, A))
    mask = Layer(names.ACTION_MASK, "ActionMask", ((None, S, A),), (head.name, names.POINTERS))
    return inputs, layers + [head, mask, replace(softmax, inputs=(mask.name,))]
