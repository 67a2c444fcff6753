"""The unaligned architecture: a GRU encoder-decoder with attention (`--arch seq2seq`).

Training model (teacher forcing), all layers named and looked up by name:

    chars              (None, max_len, Vin)        one-hot input characters, right-padded
    prev_chars         (None, max_len+1, Vout)     one-hot <s> + output: the previous output
                                                   character at each decoder step
    encoder_gru_i / encoder_bidirectional_i
                       (None, max_len, W)          W = hidden, or 2*hidden when bidirectional
    encoder_state      (None, W)                   the last encoder layer's final state
                                                   (forward and backward concatenated)
    decoder_gru_i      (None, max_len+1, W)        every decoder layer starts from encoder_state
    attention          (None, max_len+1, W)        Keras Attention (luong, dot product) or
                                                   AdditiveAttention (bahdanau): a context
                                                   vector per decoder step over encoder outputs
    attention_concat   (None, max_len+1, 2W)       [decoder output; context]
    attention_combine  (None, max_len+1, W)        Dense(tanh): Luong's attentional state
    dense / time_distributed
                       (None, max_len+1, Vout)     the --head choice
    softmax            (None, max_len+1, Vout)

The decoder GRU is W wide so the dot-product (and additive) attention can compare its
outputs with the encoder's directly.

Masks (ModelConfig.masked): the input is right-padded with <pad>, and blocks.padding_mask
marks the real characters. The encoder GRUs are masked (the forward final state is the
state after the last real character; the backward pass starts there), attention gives
padded encoder positions no weight, and the loss counts the target characters and the
first </s> only. So a string's output does not depend on how far it is padded, and the
training model (time axes None) runs each batch to its own longest string. A model
written before masks (masked False) has fixed max_len time axes, reads <pad> as a symbol
and is rebuilt and run exactly that way.

At inference the same layers are called one decoder step at a time
(inference/keras_engine.py; inference/numpy_engine.py computes them from the weights, by
the names in core/names.py); the search over output strings is in inference/decode.py.
"""

from __future__ import annotations

import numpy as np

from transducer.core import names
from transducer.core.config import ModelConfig
from transducer.networks.blocks import encoder as _encoder, encoder_width, head_layer, padding_mask, state_gru as _gru, time_steps
from transducer.networks.tf import keras, layers
from transducer.core.vocab import END_ID, PAD_ID, START_ID, Vocab

ATTENTION_LAYER = {"luong": "Attention", "bahdanau": "AdditiveAttention"}  # --attention -> Keras class


def decoder_len(max_len: int) -> int:
    """Decoder steps: up to max_len output characters, then </s>."""
    return max_len + 1


def seq2seq_arrays(pairs, in_vocab: Vocab, out_vocab: Vocab, max_len: int):
    """([encoder ids, decoder input ids], [Vin, Vout], target ids).

    Decoder input is <s> + output (teacher forcing); the target is output + </s>, filled
    with </s>, so build.char_acc / exact_match count the characters and the first </s>.
    """
    T = decoder_len(max_len)
    enc, _ = in_vocab.encode_batch([p[0] for p in pairs], max_len, fill=PAD_ID)  # (N, max_len)
    tgt, _ = out_vocab.encode_batch([p[1] for p in pairs], T, fill=END_ID)  # (N, T)
    dec_in = np.concatenate([np.full((len(pairs), 1), START_ID, np.int32), tgt[:, :-1]], axis=1)  # (N, T)
    # Past the end the decoder input is </s> (a shifted fill); those steps are counted
    # neither by the metrics nor by a masked model's loss (build.sequence_loss).
    return [enc, dec_in], [len(in_vocab), len(out_vocab)], tgt


def _attend(attend, y, enc_out, mask, **kwargs):
    """Context vectors for decoder outputs `y` over the encoder outputs; padded encoder
    positions (mask False) get no weight."""
    if mask is None:
        return attend([y, enc_out], **kwargs)  # (None, T+1, W): query = decoder, value = key = encoder
    return attend([y, enc_out], mask=[None, mask], **kwargs)


def build_seq2seq(cfg: ModelConfig, variable_length: bool = False):
    """The training model: [chars, prev_chars] -> per-step output probabilities."""
    W = encoder_width(cfg)
    T = time_steps(cfg, variable_length)
    T_dec = None if T is None else decoder_len(cfg.max_len)
    chars = keras.Input(shape=(T, cfg.input_vocab_size), name=names.CHARS)  # (None, T, Vin)
    prev = keras.Input(shape=(T_dec, cfg.output_vocab_size), name=names.PREV_CHARS)  # (None, T+1, Vout)
    mask = padding_mask(chars) if cfg.masked else None  # (None, T) bool

    enc_out, state = _encoder(None, chars, cfg, mask)  # (None, T, W)
    if cfg.bidirectional:
        init = layers.Concatenate(name=names.ENCODER_STATE)(state)  # (None, 2H)
    else:
        init = layers.Identity(name=names.ENCODER_STATE)(state[0])  # (None, H)

    y = prev
    for i in range(1, cfg.layers + 1):
        y, _ = _gru(cfg, W, names.decoder_gru(i))(y, initial_state=init)  # (None, T+1, W)
        if cfg.dropout > 0:
            y = layers.Dropout(cfg.dropout, name=names.dropout(i, names.DECODER))(y)

    if cfg.attention != "none":
        # Dropout on the attention weights too (training only; Keras's default is 0).
        attend = getattr(layers, ATTENTION_LAYER[cfg.attention])(dropout=cfg.dropout, name=names.ATTENTION)
        context = _attend(attend, y, enc_out, mask)  # (None, T+1, W)
        y = layers.Concatenate(name=names.ATTENTION_CONCAT)([y, context])  # (None, T+1, 2W)
        y = layers.Dense(W, activation="tanh", name=names.ATTENTION_COMBINE)(y)  # (None, T+1, W)
    y = head_layer(cfg, cfg.output_vocab_size)(y)  # (None, T+1, Vout)
    probs = layers.Activation("softmax", name=names.SOFTMAX)(y)  # (None, T+1, Vout)
    return keras.Model([chars, prev], probs, name="seq2seq")


def inference_models(model, cfg: ModelConfig, attention_scores: bool = False):
    """(encoder, step) Keras models sharing the trained model's layers (by name).

    encoder: chars (B, T, Vin) -> [encoder outputs (B, T, W), initial state (B, W)]
    step:    [prev one-hot (B, 1, Vout), encoder outputs, (masked models: encoder mask
             (B, T) bool), state_1..state_L (B, W)] -> [probs (B, Vout), new state_1..state_L]
             with `attention_scores` (and attention), one more output: the attention
             layer's own weights (B, 1, T), from return_attention_scores=True
    A masked model's time axes are None: each batch runs to its own longest string.
    """
    W = encoder_width(cfg)
    T = time_steps(cfg, cfg.masked)
    chars = keras.Input(shape=(T, cfg.input_vocab_size), name=names.CHARS)
    mask = padding_mask(chars) if cfg.masked else None
    x, state = _encoder(model, chars, cfg, mask)
    init = model.get_layer(names.ENCODER_STATE)(state if cfg.bidirectional else state[0])  # (B, W)
    encoder = keras.Model(chars, [x, init], name="seq2seq_encoder")

    prev = keras.Input(shape=(1, cfg.output_vocab_size), name="prev_char")  # (B, 1, Vout)
    enc_out = keras.Input(shape=(T, W), name="encoder_outputs")  # (B, T, W)
    enc_mask = keras.Input(shape=(T,), dtype="bool", name="encoder_mask") if cfg.masked else None  # (B, T)
    states_in = [keras.Input(shape=(W,), name=f"state_{i}") for i in range(1, cfg.layers + 1)]
    y = prev
    states_out = []
    for i in range(1, cfg.layers + 1):
        y, h = model.get_layer(names.decoder_gru(i))(y, initial_state=states_in[i - 1])  # (B, 1, W)
        states_out.append(h)
    scores = []
    if cfg.attention != "none":
        attend = model.get_layer(names.ATTENTION)
        if attention_scores:
            # A twin of the trained layer (same config, same weights): Keras 3 cannot build
            # a model from a layer called once without and then with return_attention_scores
            # (Function.__init__ checks the outputs against the layer's first call).
            twin = type(attend).from_config({**attend.get_config(), "name": names.ATTENTION_SCORES})
            context, weights = _attend(twin, y, enc_out, enc_mask, return_attention_scores=True)  # (B, 1, W), (B, 1, T)
            twin.set_weights(attend.get_weights())
            scores = [weights]
        else:
            context = _attend(attend, y, enc_out, enc_mask)  # (B, 1, W)
        y = model.get_layer(names.ATTENTION_CONCAT)([y, context])
        y = model.get_layer(names.ATTENTION_COMBINE)(y)
    head = model.get_layer(names.HEAD_LAYER[cfg.head])
    probs = model.get_layer(names.SOFTMAX)(head(y))  # (B, 1, Vout)
    inputs = [prev, enc_out, *([enc_mask] if cfg.masked else []), *states_in]
    step = keras.Model(inputs, [probs, *states_out, *scores], name="seq2seq_step")
    return encoder, step
