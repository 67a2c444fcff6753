"""The names of layers and weights: what ties the Keras networks (networks/*.py build them
with these names) to the numpy engine (inference/numpy_engine.py reads weights.npz by them).

A weight's name in weights.npz is its path through the layers, joined with "/"
(networks/export.py writes it): `gru_1/gru_cell/kernel`,
`bidirectional_1/forward_gru_1/gru_cell/bias`, `time_distributed/dense/kernel`. Keras
names the copies a Bidirectional layer makes of its GRU `forward_<name>` and
`backward_<name>`, a GRU's weights live in its cell (`gru_cell`), and a Dense layer's are
`kernel` and `bias`: those parts are Keras's, spelled here so that both sides agree.

Strings only (no numpy, no TensorFlow): `core` is imported by everything.
"""

from __future__ import annotations

# --- layers --------------------------------------------------------------------------------

CHARS = "chars"  # the one-hot input characters
PREV_CHARS = "prev_chars"  # seq2seq: the previous output character at each decoder step
SOFTMAX = "softmax"  # the output probabilities
ENCODER = "encoder_"  # prefix of the seq2seq encoder's recurrent layers
ENCODER_STATE = "encoder_state"  # seq2seq: the decoder's initial state
ATTENTION = "attention"  # seq2seq: Keras Attention / AdditiveAttention
ATTENTION_SCORES = "attention_scores"  # its twin returning the weights (explain)
ATTENTION_CONCAT = "attention_concat"  # [decoder output; context]
ATTENTION_COMBINE = "attention_combine"  # Dense(tanh): Luong's attentional state
DENSE = "dense"  # the output layer (inside time_distributed for that head)
HEAD_LAYER = {"dense": DENSE, "time-distributed": "time_distributed"}  # --head -> the head layer
POINTERS = "pointers"  # edit: the pointer position before each action
PREV_ACTIONS = "prev_actions"  # edit: the previous action at each decoder step
POINTED = "pointed"  # edit: the encoder output under the pointer
DECODER_INPUT = "decoder_input"  # edit: [pointed; previous action]
ACTION_MASK = "action_mask"  # edit: invalid actions' logits pushed to -inf
DIRECTIONS = ("forward", "backward")  # a Bidirectional layer's two GRUs, in its output order


def gru(i: int, prefix: str = "") -> str:
    """The i-th (1-based) recurrent layer of a stack: `gru_1`, `encoder_gru_2`."""
    return f"{prefix}gru_{i}"


BIDIRECTIONAL = "bidirectional_"  # Bidirectional wrappers: bidirectional_<i>


def bidirectional(i: int, prefix: str = "") -> str:
    """The Bidirectional wrapper of the i-th (1-based) recurrent layer."""
    return f"{prefix}{BIDIRECTIONAL}{i}"


def dropout(i: int, prefix: str = "") -> str:
    """The Dropout after the i-th recurrent layer (`decoder_` prefix for the decoder's)."""
    return f"{prefix}dropout_{i}"


DECODER = "decoder_"  # prefix of the seq2seq decoder's layers


def decoder_gru(i: int) -> str:
    """The i-th (1-based) decoder GRU of a seq2seq model."""
    return gru(i, DECODER)


# --- weights (paths in weights.npz) --------------------------------------------------------

GRU_CELL = "gru_cell"  # where a Keras GRU keeps its weights
GRU_WEIGHTS = ("kernel", "recurrent_kernel", "bias")  # a GRU cell's, gates in Keras order [z, r, h~]
# Layers that wrap others: files written before wrappers were spelled out named the inner
# layer's arrays without them (`forward_gru_1/...`, `dense/...`).
WRAPPERS = (BIDIRECTIONAL, ENCODER + BIDIRECTIONAL, HEAD_LAYER["time-distributed"])


def path(*parts: str) -> str:
    """A weight's name: its path through the layers, `/`-joined."""
    return "/".join(parts)


def direction(which: str, layer: str) -> str:
    """Keras's name for the `which` ("forward" | "backward") copy of `layer` in a Bidirectional."""
    return f"{which}_{layer}"


def gru_weights(layer_path: str) -> tuple[str, str, str]:
    """The (kernel, recurrent kernel, bias) names of the GRU at `layer_path`."""
    return tuple(path(layer_path, GRU_CELL, w) for w in GRU_WEIGHTS)


def recurrent_layer(i: int, is_bidirectional: bool, prefix: str = "") -> list[str]:
    """The paths of the i-th recurrent layer's GRUs: [gru_i], or when bidirectional
    [bidirectional_i/forward_gru_i, bidirectional_i/backward_gru_i]."""
    if not is_bidirectional:
        return [gru(i, prefix)]
    return [path(bidirectional(i, prefix), direction(d, gru(i, prefix))) for d in DIRECTIONS]


def head(head_choice: str) -> str:
    """The path of the output Dense for --head `head_choice`: `dense` or `time_distributed/dense`."""
    layer = HEAD_LAYER[head_choice]
    return DENSE if layer == DENSE else path(layer, DENSE)


def dense_weights(layer_path: str) -> tuple[str, str]:
    """The (kernel, bias) names of the Dense at `layer_path`."""
    return path(layer_path, "kernel"), path(layer_path, "bias")


ATTENTION_SCALE = path(ATTENTION, "scale")  # AdditiveAttention's one weight (bahdanau)


def old_name(name: str) -> str | None:
    """The name an older weights.npz used for `name`: without its wrapper layer; None when
    `name` is not inside a wrapper."""
    outer, _, inner = name.partition("/")
    return inner if inner and outer.startswith(WRAPPERS) else None
