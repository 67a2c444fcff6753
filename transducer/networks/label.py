"""The sequence-to-label architecture (`--arch label`): a whole string -> one label.

The third model of the classic question, `GRU(return_sequences=False) -> Dense`, trainable:

    chars      (None, max_len, Vin)     one-hot characters, right-padded with <pad>
    gru_i / bidirectional_i
               (None, max_len, W)       lower layers for --layers > 1 (W = hidden, or 2*hidden)
    gru_L / bidirectional_L
               (None, W)                the last layer: return_sequences=False, one vector
    dense      (None, n_labels)         Dense over the labels seen in training
    softmax    (None, n_labels)

There is no time axis after the last GRU, so `--head time-distributed` is refused
(config.ModelConfig); the head is a plain Dense.

Padding is masked: the mask is "this position is not <pad>" (blocks.padding_mask, Keras
ops on the one-hot input's <pad> channel: no Lambda, no custom layer, so the model loads
in safe mode and the layer table stays the classic one), passed to every GRU. A
masked step leaves the state unchanged, so the final state is the state after the last
real character (forward) and after reading from the last real character back to the
first (backward), and the label does not depend on how far a string is padded. The numpy
engine (inference.numpy_engine.NumpyEngine.label_probs) runs each row to its own length and computes the
same function.

The output vocabulary is the set of labels seen in training (vocab.Labels), listed in
config.json as `labels`. Targets are one id per row: (B,) ints, sparse cross-entropy.
"""

from __future__ import annotations

import numpy as np

from transducer.core import names
from transducer.core.config import ModelConfig
from transducer.core.vocab import PAD_ID, Labels, Vocab
from transducer.networks.blocks import head_layer, padding_mask, recurrent_stack, time_steps
from transducer.networks.tf import keras, layers


def label_arrays(pairs, in_vocab: Vocab, labels: Labels, max_len: int):
    """([input ids], [Vin], label ids): the in-memory reference encoding (see
    training.loop.training_arrays); stream.py's pipeline gives the same features."""
    x, _ = in_vocab.encode_batch([p[0] for p in pairs], max_len, fill=PAD_ID)  # (N, T)
    y = np.array([labels.id_of(p[1]) for p in pairs], dtype=np.int32)  # (N,)
    return [x], [len(in_vocab)], y


def build_label(cfg: ModelConfig, variable_length: bool = False):
    """The training (and inference) model: chars -> label probabilities. variable_length:
    a free time axis, for training batches padded to their own longest string."""
    chars = keras.Input(shape=(time_steps(cfg, variable_length), cfg.input_vocab_size), name=names.CHARS)  # (None, T, Vin)
    x = recurrent_stack(chars, cfg, last_return_sequences=False, mask=padding_mask(chars))  # (None, W)
    x = head_layer(cfg, cfg.output_vocab_size, time_axis=False)(x)  # (None, n_labels)
    probs = layers.Activation("softmax", name=names.SOFTMAX)(x)  # (None, n_labels)
    return keras.Model(chars, probs, name="label")


def label_metrics():
    """Training metrics: the fraction of strings given the right label."""
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
