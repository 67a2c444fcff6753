"""The aligned network (the classic model): one softmax per input position.

    chars   (None, max_len, input_vocab)     one-hot characters
    gru_1   (None, max_len, hidden)          GRU(return_sequences=True), stacked for --layers
    dense / time_distributed
            (None, max_len, output_vocab)    the per-timestep output layer
    softmax (None, max_len, output_vocab)    Activation('softmax')

`Dense` applied to a 3-D tensor already acts on the last axis at every timestep with one
shared kernel, so `Dense(V)` and `TimeDistributed(Dense(V))` compute the same function with
the same parameters; introspect.compare_heads checks exactly that.
"""

from __future__ import annotations

from transducer.core import names
from transducer.core.config import ModelConfig
from transducer.networks.blocks import head_layer, recurrent_stack, time_steps
from transducer.networks.tf import keras, layers


def build_aligned(cfg: ModelConfig, variable_length: bool = False) -> keras.Model:
    # The aligned GRUs are not masked: output position t may lie past the input (outputs
    # longer than inputs are written into the padding), a unidirectional stack is causal
    # (padding after t never reaches t) and a bidirectional one always spans max_len
    # (ModelConfig.variable_length). The loss and metrics count the real positions only.
    T = time_steps(cfg, variable_length)
    chars = keras.Input(shape=(T, cfg.input_vocab_size), name=names.CHARS)  # (None, T, Vin)
    x = recurrent_stack(chars, cfg, last_return_sequences=cfg.return_sequences)
    x = head_layer(cfg, cfg.output_vocab_size, time_axis=cfg.return_sequences)(x)  # (None, T, Vout)
    probs = layers.Activation("softmax", name=names.SOFTMAX)(x)  # (None, T, Vout)
    return keras.Model(chars, probs, name="aligned")
