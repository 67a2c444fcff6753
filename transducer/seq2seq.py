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
outputs with the encoder's directly. Input padding is not masked: <pad> is a symbol of
its own, always after the string (right-padded), so the encoder learns to carry its
state through it and attention learns to ignore it; without masks the GRUs keep the
cuDNN-compatible path and both inference engines compute exactly the same function.

At inference the same layers are called one decoder step at a time (engine.py); the
search over output strings is in decode.py.
"""

from __future__ import annotations

import numpy as np

from .config import ModelConfig
from .vocab import END_ID, PAD_ID, START_ID, Vocab

ATTENTION_LAYER = {"luong": "Attention", "bahdanau": "AdditiveAttention"}  # --attention -> Keras class


def decoder_len(max_len: int) -> int:
    """Decoder steps: up to max_len output characters, then </s>."""
    return max_len + 1


def encoder_width(cfg: ModelConfig) -> int:
    return cfg.hidden * (2 if cfg.bidirectional else 1)


def seq2seq_arrays(pairs, in_vocab: Vocab, out_vocab: Vocab, max_len: int):
    """([encoder ids, decoder input ids], [Vin, Vout], target ids).

    Decoder input is <s> + output (teacher forcing); the target is output + </s>, filled
    with </s>, so model.char_acc / exact_match count the characters and the first </s>.
    """
    T = decoder_len(max_len)
    enc, _ = in_vocab.encode_batch([p[0] for p in pairs], max_len, fill=PAD_ID)  # (N, max_len)
    tgt, _ = out_vocab.encode_batch([p[1] for p in pairs], T, fill=END_ID)  # (N, T)
    dec_in = np.concatenate([np.full((len(pairs), 1), START_ID, np.int32), tgt[:, :-1]], axis=1)  # (N, T)
    # Past the end the decoder input is </s> (a shifted fill); those steps are not counted
    # by the metrics, and the loss on them only teaches "after </s> comes </s>".
    return [enc, dec_in], [len(in_vocab), len(out_vocab)], tgt


def _gru(cfg: ModelConfig, units: int, name: str):
    from .model import layers

    # Default activations and no recurrent dropout: cuDNN-eligible on a GPU.
    return layers.GRU(units, return_sequences=True, return_state=True, reset_after=cfg.reset_after, name=name)


def build_seq2seq(cfg: ModelConfig):
    """The training model: [chars, prev_chars] -> per-step output probabilities."""
    from .model import head_layer, keras, layers

    W = encoder_width(cfg)
    T_dec = decoder_len(cfg.max_len)
    chars = keras.Input(shape=(cfg.max_len, cfg.input_vocab_size), name="chars")  # (None, T, Vin)
    prev = keras.Input(shape=(T_dec, cfg.output_vocab_size), name="prev_chars")  # (None, T+1, Vout)

    x = chars
    state = None
    for i in range(1, cfg.layers + 1):
        gru = _gru(cfg, cfg.hidden, f"encoder_gru_{i}")
        if cfg.bidirectional:
            x, fwd, bwd = layers.Bidirectional(gru, name=f"encoder_bidirectional_{i}")(x)  # (None, T, 2H)
            state = (fwd, bwd)
        else:
            x, state = gru(x)  # (None, T, H), (None, H)
            state = (state,)
        if cfg.dropout > 0:
            x = layers.Dropout(cfg.dropout, name=f"encoder_dropout_{i}")(x)
    enc_out = x  # (None, T, W)
    if cfg.bidirectional:
        init = layers.Concatenate(name="encoder_state")(list(state))  # (None, 2H)
    else:
        init = layers.Identity(name="encoder_state")(state[0])  # (None, H)

    y = prev
    for i in range(1, cfg.layers + 1):
        y, _ = _gru(cfg, W, f"decoder_gru_{i}")(y, initial_state=init)  # (None, T+1, W)
        if cfg.dropout > 0:
            y = layers.Dropout(cfg.dropout, name=f"decoder_dropout_{i}")(y)

    if cfg.attention != "none":
        attend = getattr(layers, ATTENTION_LAYER[cfg.attention])(name="attention")
        context = attend([y, enc_out])  # (None, T+1, W): query = decoder, value = key = encoder
        y = layers.Concatenate(name="attention_concat")([y, context])  # (None, T+1, 2W)
        y = layers.Dense(W, activation="tanh", name="attention_combine")(y)  # (None, T+1, W)
    y = head_layer(cfg, cfg.output_vocab_size)(y)  # (None, T+1, Vout)
    probs = layers.Activation("softmax", name="softmax")(y)  # (None, T+1, Vout)
    return keras.Model([chars, prev], probs, name="seq2seq")


def inference_models(model, cfg: ModelConfig, attention_scores: bool = False):
    """(encoder, step) Keras models sharing the trained model's layers (by name).

    encoder: chars (B, T, Vin) -> [encoder outputs (B, T, W), initial state (B, W)]
    step:    [prev one-hot (B, 1, Vout), encoder outputs, state_1..state_L (B, W)]
             -> [probs (B, Vout), new state_1..state_L]
             with `attention_scores` (and attention), one more output: the attention
             layer's own weights (B, 1, T), from return_attention_scores=True
    """
    from .model import keras

    W = encoder_width(cfg)
    chars = keras.Input(shape=(cfg.max_len, cfg.input_vocab_size), name="chars")
    x = chars
    state = None
    for i in range(1, cfg.layers + 1):
        if cfg.bidirectional:
            x, fwd, bwd = model.get_layer(f"encoder_bidirectional_{i}")(x)
            state = [fwd, bwd]
        else:
            x, h = model.get_layer(f"encoder_gru_{i}")(x)
            state = [h]
    init = model.get_layer("encoder_state")(state if cfg.bidirectional else state[0])  # (B, W)
    encoder = keras.Model(chars, [x, init], name="seq2seq_encoder")

    prev = keras.Input(shape=(1, cfg.output_vocab_size), name="prev_char")  # (B, 1, Vout)
    enc_out = keras.Input(shape=(cfg.max_len, W), name="encoder_outputs")  # (B, T, W)
    states_in = [keras.Input(shape=(W,), name=f"state_{i}") for i in range(1, cfg.layers + 1)]
    y = prev
    states_out = []
    for i in range(1, cfg.layers + 1):
        y, h = model.get_layer(f"decoder_gru_{i}")(y, initial_state=states_in[i - 1])  # (B, 1, W)
        states_out.append(h)
    scores = []
    if cfg.attention != "none":
        attend = model.get_layer("attention")
        if attention_scores:
            # A twin of the trained layer (same config, same weights): Keras 3 cannot build
            # a model from a layer called once without and then with return_attention_scores
            # (Function.__init__ checks the outputs against the layer's first call).
            twin = type(attend).from_config({**attend.get_config(), "name": "attention_scores"})
            context, weights = twin([y, enc_out], return_attention_scores=True)  # (B, 1, W), (B, 1, T)
            twin.set_weights(attend.get_weights())
            scores = [weights]
        else:
            context = attend([y, enc_out])  # (B, 1, W)
        y = model.get_layer("attention_concat")([y, context])
        y = model.get_layer("attention_combine")(y)
    head = "time_distributed" if cfg.head == "time-distributed" else "dense"
    probs = model.get_layer("softmax")(model.get_layer(head)(y))  # (B, 1, Vout)
    step = keras.Model([prev, enc_out, *states_in], [probs, *states_out, *scores], name="seq2seq_step")
    return encoder, step
