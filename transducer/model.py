"""The networks, as functional Keras models with named layers.

Aligned (the classic model):

    chars   (None, max_len, input_vocab)     one-hot characters
    gru_1   (None, max_len, hidden)          GRU(return_sequences=True), stacked for --layers
    dense / time_distributed
            (None, max_len, output_vocab)    the per-timestep output layer
    softmax (None, max_len, output_vocab)    Activation('softmax')

`Dense` applied to a 3-D tensor already acts on the last axis at every timestep with one
shared kernel, so `Dense(V)` and `TimeDistributed(Dense(V))` compute the same function with
the same parameters; `compare_heads` checks exactly that.

`summarize` builds it with a time axis of max_len (the classic shapes); `train` builds a
masked model with a time axis of None, because its batches are as long as their longest
string (ModelConfig.variable_length), so a trained model's summary shows `(None, None, ...)`.

Shared building blocks (recurrent stack, head, padding mask) live in blocks.py.
Layers are looked up by name (`model.get_layer("gru_1")`), never by index.
"""

from __future__ import annotations

from .blocks import HEAD_LAYER, gru_name, head_layer, keras, layers, ops, recurrent_stack, tf, time_steps  # noqa: F401
from .config import ModelConfig
from .seq2seq import build_seq2seq
from .vocab import END_ID


def build_aligned(cfg: ModelConfig, variable_length: bool = False) -> keras.Model:
    # The aligned GRUs are not masked: output position t may lie past the input (outputs
    # longer than inputs are written into the padding), a unidirectional stack is causal
    # (padding after t never reaches t) and a bidirectional one always spans max_len
    # (ModelConfig.variable_length). The loss and metrics count the real positions only.
    T = time_steps(cfg, variable_length)
    chars = keras.Input(shape=(T, cfg.input_vocab_size), name="chars")  # (None, T, Vin)
    x = recurrent_stack(chars, cfg, last_return_sequences=cfg.return_sequences)
    x = head_layer(cfg, cfg.output_vocab_size, time_axis=cfg.return_sequences)(x)  # (None, T, Vout)
    probs = layers.Activation("softmax", name="softmax")(x)  # (None, T, Vout)
    return keras.Model(chars, probs, name="aligned")


def build_model(cfg: ModelConfig, variable_length: bool = False) -> keras.Model:
    """The training model for `cfg.arch`. variable_length: a time axis of None, for
    training on length-bucketed batches; otherwise max_len, as `summarize` shows it."""
    if cfg.arch == "seq2seq":
        return build_seq2seq(cfg, variable_length)
    if cfg.arch == "label":
        from .label import build_label

        return build_label(cfg, variable_length)
    return build_aligned(cfg, variable_length)


# --- metrics ---------------------------------------------------------------------------
# Targets are (B, T) ids filled with </s> after the string. A position counts if no </s>
# comes before it: the characters plus the first </s>, which is where the output ends.


def _counted(y_true):
    is_end = ops.cast(ops.equal(y_true, END_ID), "int32")  # (B, T)
    return ops.equal(ops.cumsum(is_end, axis=1) - is_end, 0)  # (B, T) bool


def _correct(y_true, y_pred):
    y_true = ops.cast(y_true, "int32")
    pred = ops.cast(ops.argmax(y_pred, axis=-1), "int32")  # (B, T)
    return ops.equal(pred, y_true), _counted(y_true)


def char_acc(y_true, y_pred):
    """Per sequence: the fraction of counted positions predicted right."""
    correct, counted = _correct(y_true, y_pred)
    hits = ops.sum(ops.cast(ops.logical_and(correct, counted), "float32"), axis=1)
    return hits / ops.maximum(ops.sum(ops.cast(counted, "float32"), axis=1), 1.0)  # (B,)


def exact_match(y_true, y_pred):
    """Per sequence: 1.0 when the decoded string equals the target string."""
    correct, counted = _correct(y_true, y_pred)
    return ops.cast(ops.all(ops.logical_or(correct, ops.logical_not(counted)), axis=1), "float32")


def sequence_loss(masked: bool = True, label_smoothing: float = 0.0):
    """The training loss, per sequence (B,). Cross-entropy per position, label-smoothed when
    asked (Keras's sparse loss has no smoothing): the target distribution is (1 - e) on the
    right symbol plus e spread evenly over all V, so loss = (1 - e) * -log p[y] + e *
    mean_v(-log p[v]). masked: the mean over each sequence's counted positions (the
    characters and the first </s>), so a batch's padding adds nothing; False: the mean
    over every position (models written before masks)."""
    e = float(label_smoothing)

    def loss(y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        if e:
            logp = ops.log(ops.clip(y_pred, keras.config.epsilon(), 1.0))  # (B, T, V)
            nll = -ops.take_along_axis(logp, ops.expand_dims(y_true, -1), axis=-1)[..., 0]  # (B, T)
            ce = (1.0 - e) * nll - e * ops.mean(logp, axis=-1)  # (B, T)
        else:
            ce = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)  # (B, T)
        if not masked:
            return ops.mean(ce, axis=1)  # (B,)
        counted = ops.cast(_counted(y_true), ce.dtype)  # (B, T)
        return ops.sum(ce * counted, axis=1) / ops.maximum(ops.sum(counted, axis=1), 1.0)  # (B,)

    loss.__name__ = "sequence_loss"
    return loss


def compile_model(
    model: keras.Model, learning_rate: float, masked: bool = True, label_smoothing: float = 0.0,
    steps_per_execution: int = 1,
) -> None:
    """masked False: the loss of models written before masks (every position, padding too).
    steps_per_execution: training steps run per call into the compiled graph (the same
    steps, so the same weights; callbacks see every Nth batch)."""
    if model.name == "label":  # one label id per string (label.py), not a string of ids
        from .label import label_metrics

        loss, metrics = "sparse_categorical_crossentropy", label_metrics()
    else:
        loss, metrics = sequence_loss(masked, label_smoothing), [char_acc, exact_match]
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=loss,
        metrics=metrics,
        steps_per_execution=steps_per_execution,
    )


# --- introspection ---------------------------------------------------------------------


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
    import time

    import numpy as np

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
