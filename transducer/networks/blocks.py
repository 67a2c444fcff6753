"""Building blocks shared by the architectures (aligned.py, seq2seq.py, label.py,
edit.py): the recurrent stack, the masked encoder of seq2seq and edit, the output head,
and the padding mask. Layers get their names from core/names.py, where the numpy engine
finds them too.

Imports point one way: build.py -> aligned.py / seq2seq.py / label.py / edit.py -> blocks.py -> tf.py.

Padding masks. Inputs are one-hot and right-padded with <pad> (id 0), so a position is a
real character exactly when its one-hot vector has no weight on <pad>. `padding_mask`
computes that with `keras.ops` inside the functional graph: operations, not layers, so
they add no row to `introspect.layer_rows` (the classic summaries stay exact) and they are
saved in model.keras as Keras's own ops (safe mode loads them). A GRU given the mask
carries its state through padded steps, so its final state is the state after the last
real character, and a Bidirectional layer's backward pass starts at each row's last real
character. Keras keeps the cuDNN kernel on a GPU for such strictly right-padded masks
(see bench/gpu_check.sh).
"""

from __future__ import annotations

from transducer.core import names
from transducer.core.config import ModelConfig
from transducer.core.vocab import PAD_ID
from transducer.networks.tf import keras, layers, ops


def time_steps(cfg: ModelConfig, variable_length: bool) -> int | None:
    """A model's time axis: None (batches as long as their longest string) or max_len."""
    return None if variable_length else cfg.max_len


def padding_mask(one_hot):
    """(B, T, V) one-hot, right-padded with <pad> -> (B, T) bool, True at real characters."""
    return ops.less(one_hot[..., PAD_ID], 0.5)  # (B, T)


def gru_layer(cfg: ModelConfig, units: int, name: str, return_sequences: bool = True, return_state: bool = False):
    """A GRU on cuDNN's path on a GPU: default activations, no recurrent dropout."""
    return layers.GRU(
        units,
        return_sequences=return_sequences,
        return_state=return_state,
        reset_after=cfg.reset_after,
        name=name,
    )


def state_gru(cfg: ModelConfig, units: int, name: str):
    """A GRU returning its sequence and its final state (encoders, decoders)."""
    return gru_layer(cfg, units, name, return_sequences=True, return_state=True)


def encoder_width(cfg: ModelConfig) -> int:
    """Width W of the encoder outputs: hidden, or 2 * hidden when bidirectional."""
    return cfg.hidden * (2 if cfg.bidirectional else 1)


def encoder(model, chars, cfg: ModelConfig, mask):
    """Encoder GRU layers over `chars` (seq2seq and edit): (outputs (B, T, W), [final
    state per direction]). New layers when `model` is None (with dropout), else the
    trained model's, by name."""
    x, state = chars, None
    for i in range(1, cfg.layers + 1):
        if cfg.bidirectional:
            name = names.bidirectional(i, names.ENCODER)
            bi = model.get_layer(name) if model is not None else layers.Bidirectional(state_gru(cfg, cfg.hidden, names.gru(i, names.ENCODER)), name=name)
            x, fwd, bwd = bi(x, mask=mask)  # (None, T, 2H), (None, H), (None, H)
            state = [fwd, bwd]
        else:
            name = names.gru(i, names.ENCODER)
            gru = model.get_layer(name) if model is not None else state_gru(cfg, cfg.hidden, name)
            x, h = gru(x, mask=mask)  # (None, T, H), (None, H)
            state = [h]
        if cfg.dropout > 0 and model is None:
            x = layers.Dropout(cfg.dropout, name=names.dropout(i, names.ENCODER))(x)
    return x, state


def recurrent_stack(x, cfg: ModelConfig, prefix: str = "", last_return_sequences: bool = True, mask=None):
    """`cfg.layers` GRUs (optionally bidirectional), each followed by Dropout if asked.

    mask: (B, T) bool from `padding_mask`, or None (every position is read)."""
    for i in range(1, cfg.layers + 1):
        seq = last_return_sequences if i == cfg.layers else True
        gru = gru_layer(cfg, cfg.hidden, names.gru(i, prefix), return_sequences=seq)
        if cfg.bidirectional:
            # Concatenated forward/backward states: (None, T, 2*hidden).
            x = layers.Bidirectional(gru, name=names.bidirectional(i, prefix))(x, mask=mask)
        else:
            x = gru(x, mask=mask)  # (None, T, hidden) or (None, hidden) for the last, label-style
        if cfg.dropout > 0:
            x = layers.Dropout(cfg.dropout, name=names.dropout(i, prefix))(x)
    return x


def head_layer(cfg: ModelConfig, units: int, time_axis: bool = True):
    """The user's output layer choice. TimeDistributed needs a time axis to map over."""
    dense = layers.Dense(units, name=names.DENSE)
    if cfg.head == "time-distributed" and time_axis:
        return TimeDistributed(dense, name=names.HEAD_LAYER["time-distributed"])
    return dense


@keras.saving.register_keras_serializable(package="transducer")
class TimeDistributed(layers.TimeDistributed):
    """Keras's TimeDistributed, mapping over the time axis when its length is only known
    at run time (length-bucketed batches, time axis None). Keras 3.15's own maps over
    `ops.shape(inputs)[0]`, the BATCH size, in that case, so its output has as many steps
    as the batch has rows and training fails ("Incompatible shapes: [7,58,28] vs.
    [7,7,28]"). Same weights, same per-step computation; a time axis of fixed length
    (and a mask) take Keras's own path."""

    def call(self, inputs, training=None, mask=None):
        if inputs.shape[1] is not None or mask is not None:
            return super().call(inputs, training=training, mask=mask)
        by_time = ops.transpose(inputs, [1, 0, *range(2, len(inputs.shape))])  # (T, B, ...)
        outputs = ops.vectorized_map(
            lambda t: self.layer.call(by_time[t]), ops.arange(ops.shape(inputs)[1])
        )  # (T, B, units)
        return ops.transpose(outputs, [1, 0, *range(2, len(outputs.shape))])  # (B, T, units)
