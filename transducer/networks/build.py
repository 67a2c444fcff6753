"""Every network by its --arch, and what training needs of it: the loss (masked and
label-smoothed), the metrics, compile.

    aligned.py   the classic model: one softmax per input position
    seq2seq.py   the GRU encoder-decoder with attention
    label.py     one softmax per string
    edit.py      edit actions (copy, delete, substitute, insert) under a pointer

`summarize` builds with a time axis of max_len (the classic shapes); `train` builds a
masked model with a time axis of None, because its batches are as long as their longest
string (ModelConfig.variable_length), so a trained model's summary shows `(None, None, ...)`.
Layers are looked up by name (`model.get_layer("gru_1")`), never by index.
"""

from __future__ import annotations

from transducer.core.config import ModelConfig
from transducer.core.vocab import END_ID
from transducer.networks.aligned import build_aligned
from transducer.networks.edit import build_edit, edit_loss, edit_metrics
from transducer.networks.label import build_label, label_metrics
from transducer.networks.seq2seq import build_seq2seq
from transducer.networks.tf import eager, keras, ops


def build_model(cfg: ModelConfig, variable_length: bool = False, kinds=None) -> keras.Model:
    """The training model for `cfg.arch`. variable_length: a time axis of None, for
    training on length-bucketed batches; otherwise max_len, as `summarize` shows it.
    kinds: an edit model's action kinds (edit.ActionKinds; None: the canonical layout)."""
    if cfg.arch == "edit":
        return build_edit(cfg, variable_length, kinds)
    if cfg.arch == "seq2seq":
        return build_seq2seq(cfg, variable_length)
    if cfg.arch == "label":
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
        return sequence_mean(ce, y_true, masked)  # (B,)

    loss.__name__ = "sequence_loss"
    return loss


def sequence_mean(values, y_true, masked: bool = True):
    """Per-position values (B, T) -> their mean per sequence (B,): over the counted
    positions (the characters and the first </s>) when masked, else over every position.
    The one place a loss decides which positions count (training/distill.py too)."""
    if not masked:
        return ops.mean(values, axis=1)  # (B,)
    counted = ops.cast(_counted(ops.cast(y_true, "int32")), values.dtype)  # (B, T)
    return ops.sum(values * counted, axis=1) / ops.maximum(ops.sum(counted, axis=1), 1.0)  # (B,)


def compile_model(
    model: keras.Model, learning_rate: float, masked: bool = True, label_smoothing: float = 0.0,
    steps_per_execution: int = 1, like: keras.Model | None = None,
) -> None:
    """masked False: the loss of models written before masks (every position, padding too).
    steps_per_execution: training steps run per call into the compiled graph (the same
    steps, so the same weights; callbacks see every Nth batch). like: the network whose
    loss and metrics `model` takes (a --teacher run's wrapper takes its student's); None: its own."""
    kind = (like or model).name
    if kind == "label":  # one label id per string (label.py), not a string of ids
        loss, metrics = "sparse_categorical_crossentropy", label_metrics()
    elif kind == "edit":  # multi-hot action sets (edit.py)
        loss, metrics = edit_loss(label_smoothing), edit_metrics()
    else:
        loss, metrics = sequence_loss(masked, label_smoothing), [char_acc, exact_match]
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=loss,
        metrics=metrics,
        steps_per_execution=steps_per_execution,
        run_eagerly=eager(),  # TRANSDUCER_EAGER=1: no traced training graph (networks/tf.py)
    )
