"""The edit-action transducer (`--arch edit`): a pointer walks the input left to right and
a decoder chooses, at each step, an edit action (Makarov & Clematide 2018).

Actions (the expert's action vocabulary, core/edits.py; `ActionKinds` holds what this
network needs of it): COPY (write the input character under the pointer, advance),
DELETE (advance), SUBSTITUTE(c) (write c, advance), INSERT(c) (write c, stay), END (only
once the pointer is past the input), plus two reserved ids never chosen (padding, and the
"no previous action" start symbol fed at step 0).

Training model (teacher forced on the expert's action sequence), layers named and looked
up by name; T = max_len + 1 input positions, S decoder steps (None when variable-length):

    chars            (None, T, Vin)       one-hot input characters, then </s> at position n
                                          (where the pointer sits past the input), then <pad>
    pointers         (None, S)            int: the pointer position before each action (0..n)
    prev_actions     (None, S, A)         one-hot previous action (the start symbol at step 0)
    encoder_gru_i / encoder_bidirectional_i
                     (None, T, W)         seq2seq's masked encoder (blocks.encoder);
                                          W = hidden, or 2 * hidden when bidirectional
    pointed          (None, S, W)         the encoder output under each pointer (PointerGather)
    decoder_input    (None, S, W + A)     [pointed; prev_actions]
    decoder_gru_i    (None, S, H)         GRU(s) from a zero state
    dense / time_distributed
                     (None, S, A)         the --head choice: logits over the actions
    action_mask      (None, S, A)         invalid actions lose 1e9 (ActionMask)
    softmax          (None, S, A)

The encoder reads the characters and the </s> after them (blocks.padding_mask: every
position that is not <pad>), so the state under the pointer at position n is the state
of </s>, and the input length n is the count of real positions minus one. Padded decoder
steps (past a sequence's END) are computed but never counted: the decoder is causal, so
they change no earlier step, and the loss and metrics skip rows whose target set is
empty.

Loss per sequence: the mean over its real steps of -log sum_{a in target set} p(a), the
targets (B, S, A) a set of actions per step. Training (training/edit_data.py) gives the
one action the teacher-forced path takes there, so the set is that action: the loss is
written for sets (equally good actions, Makarov & Clematide 2018), but a set is only
right when the model is also trained at the states its other choices lead to (roll-in).
Teacher-forced on one path, a set target let the model prefer an equally good action the
path does not take, and go on from states it never saw: Hungarian `dd` -> `dː` came out as
DELETE, DELETE (dev WER 13.8 with sets, 1.8 with the path's action; docs/benchmarks/
sigmorphon.md). Metrics, named like the other architectures' so progress, early stopping
and summaries read them alike: `char_acc` (per sequence, the fraction of steps whose most
probable action is a target) and `exact_match` (every step's is: the whole action path
right under teacher forcing).

At inference the same layers run one step at a time (`inference_models`); the search over
action sequences is inference's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transducer.core import names
from transducer.core.config import ModelConfig
from transducer.core.edits import END_ACTION, PAD_ACTION, START_ACTION, EditActions, Expert
from transducer.core.vocab import END_ID, PAD_ID, Vocab
from transducer.networks.blocks import encoder, encoder_width, head_layer, padding_mask, state_gru
from transducer.networks.tf import keras, layers, ops

MASK_PENALTY = 1e9  # subtracted from an invalid action's logit: its probability is exactly 0


@dataclass(frozen=True)
class ActionKinds:
    """Per action id, what the mask needs: whether it consumes the input character under
    the pointer, whether it is END, whether it is never chosen (reserved)."""

    consumes: tuple[bool, ...]  # COPY, DELETE, SUBSTITUTE(c): valid while pointer < n
    ends: tuple[bool, ...]  # END: valid only when pointer == n
    never: tuple[bool, ...]  # reserved ids (padding, start): never valid; the rest
    #                          (INSERT(c)) is always valid

    def __post_init__(self):
        if not len(self.consumes) == len(self.ends) == len(self.never):
            raise ValueError("action kinds must have one entry per action")

    def __len__(self) -> int:
        return len(self.consumes)

    def valid(self, pointers: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """(...,) pointers and input lengths -> (..., A) bool: the actions allowed there
        (the numpy twin of ActionMask)."""
        before = (np.asarray(pointers) < np.asarray(lengths))[..., None]  # (..., 1)
        consumes, ends, never = (np.asarray(v, bool) for v in (self.consumes, self.ends, self.never))
        inserts = ~(consumes | ends | never)  # (A,)
        return np.where(before, consumes | inserts, ends | inserts)  # (..., A)

    @classmethod
    def of(cls, actions: EditActions) -> "ActionKinds":
        """The kinds of an action vocabulary (core/edits.py)."""
        ids = np.arange(len(actions))
        return cls(
            tuple(bool(a) for a in actions.advance),
            tuple(bool(a) for a in ids == END_ACTION),
            tuple(bool(a) for a in (ids == PAD_ACTION) | (ids == START_ACTION)),
        )

    @classmethod
    def canonical(cls, n_actions: int) -> "ActionKinds":
        """The kinds of an action vocabulary laid out as core/edits.py lays it out, from
        its size alone (`summarize` without a model directory): 0 padding, 1 start, 2 END,
        3 COPY, 4 DELETE, then SUBSTITUTE(c) for each output character, then INSERT(c)."""
        n_chars = max(0, (n_actions - 5) // 2)
        kinds = ["never", "never", "end", "consumes", "consumes"] + ["consumes"] * n_chars
        kinds += ["insert"] * (n_actions - len(kinds))
        kinds = kinds[:n_actions]
        return cls(*(tuple(k == want for k in kinds) for want in ("consumes", "end", "never")))


# --- custom layers: registered, so model.keras saves and loads them in safe mode --------


@keras.saving.register_keras_serializable(package="transducer")
class PointerGather(layers.Layer):
    """[encoder outputs (B, T, W), pointers (B, S) int] -> (B, S, W): the encoder output
    at each step's pointer position. No weights."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # It takes the encoder's padding mask (no warning) and gives the steps none.
        self.supports_masking = True

    def call(self, inputs):
        enc, pointers = inputs
        index = ops.expand_dims(ops.cast(pointers, "int32"), -1)  # (B, S, 1)
        return ops.take_along_axis(enc, index, axis=1)  # (B, S, W)

    def compute_output_shape(self, input_shape):
        enc, pointers = input_shape
        return (enc[0], pointers[1], enc[2])

    def compute_mask(self, inputs, mask=None):
        return None  # the decoder steps carry no mask; the loss skips padded steps


@keras.saving.register_keras_serializable(package="transducer")
class ActionMask(layers.Layer):
    """[logits (B, S, A), pointers (B, S) int, input lengths (B,) int] -> logits with
    MASK_PENALTY subtracted from every action invalid at its step (ActionKinds.valid):
    after the softmax their probability is 0. No weights; the kinds are its config."""

    def __init__(self, consumes, ends, never, **kwargs):
        super().__init__(**kwargs)
        self.kinds = ActionKinds(tuple(map(bool, consumes)), tuple(map(bool, ends)), tuple(map(bool, never)))

    def call(self, inputs):
        logits, pointers, lengths = inputs
        k = self.kinds
        consumes = ops.convert_to_tensor(np.asarray(k.consumes, bool))  # (A,)
        ends = ops.convert_to_tensor(np.asarray(k.ends, bool))  # (A,)
        inserts = ops.convert_to_tensor(~np.asarray(k.consumes, bool) & ~np.asarray(k.ends, bool) & ~np.asarray(k.never, bool))
        before = ops.less(ops.cast(pointers, "int32"), ops.expand_dims(ops.cast(lengths, "int32"), -1))  # (B, S)
        valid = ops.where(
            ops.expand_dims(before, -1), ops.logical_or(consumes, inserts), ops.logical_or(ends, inserts)
        )  # (B, S, A)
        return logits - MASK_PENALTY * (1.0 - ops.cast(valid, logits.dtype))  # (B, S, A)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        k = self.kinds
        return {**super().get_config(), "consumes": list(k.consumes), "ends": list(k.ends), "never": list(k.never)}


# --- the network ------------------------------------------------------------------------


def input_len(max_len: int) -> int:
    """Encoder positions: up to max_len characters, then </s> (the pointer past the input)."""
    return max_len + 1


def decoder_steps(max_len: int) -> int:
    """Most actions of a training pair: one per input character consumed, one per output
    character inserted, and END (the summary's fixed decoder axis)."""
    return 2 * max_len + 1


def input_lengths(mask):
    """(B, T) encoder mask (characters and </s>) -> (B,) int input lengths n."""
    return ops.sum(ops.cast(mask, "int32"), axis=1) - 1  # (B,)


def _decoder(model, x, cfg: ModelConfig, states=None):
    """The decoder GRU stack over (B, S, W + A): (outputs (B, S, H), final states). New
    layers when `model` is None (with dropout), else the trained model's, by name;
    `states`: initial states per layer (None: zeros)."""
    finals = []
    for i in range(1, cfg.layers + 1):
        name = names.decoder_gru(i)
        gru = model.get_layer(name) if model is not None else state_gru(cfg, cfg.hidden, name)
        x, h = gru(x) if states is None else gru(x, initial_state=states[i - 1])  # (B, S, H), (B, H)
        finals.append(h)
        if cfg.dropout > 0 and model is None:
            x = layers.Dropout(cfg.dropout, name=names.dropout(i, names.DECODER))(x)
    return x, finals


def build_edit(cfg: ModelConfig, variable_length: bool = False, kinds: ActionKinds | None = None) -> keras.Model:
    """The training model: [chars, pointers, prev_actions] -> per-step action
    probabilities. kinds: the action vocabulary's (None: ActionKinds.canonical of
    cfg.output_vocab_size, the layout core/edits.py writes)."""
    A = cfg.output_vocab_size
    kinds = kinds or ActionKinds.canonical(A)
    if len(kinds) != A:
        raise ValueError(f"{len(kinds)} action kinds for {A} actions")
    T = None if variable_length else input_len(cfg.max_len)
    S = None if variable_length else decoder_steps(cfg.max_len)
    chars = keras.Input(shape=(T, cfg.input_vocab_size), name=names.CHARS)  # (None, T, Vin)
    pointers = keras.Input(shape=(S,), dtype="int32", name=names.POINTERS)  # (None, S)
    prev = keras.Input(shape=(S, A), name=names.PREV_ACTIONS)  # (None, S, A)
    mask = padding_mask(chars)  # (None, T) bool: characters and </s>

    enc, _ = encoder(None, chars, cfg, mask)  # (None, T, W)
    pointed = PointerGather(name=names.POINTED)([enc, pointers])  # (None, S, W)
    x = layers.Concatenate(name=names.DECODER_INPUT)([pointed, prev])  # (None, S, W + A)
    y, _ = _decoder(None, x, cfg)  # (None, S, H)
    logits = head_layer(cfg, A)(y)  # (None, S, A)
    masked = ActionMask(*_kind_lists(kinds), name=names.ACTION_MASK)([logits, pointers, input_lengths(mask)])
    probs = layers.Activation("softmax", name=names.SOFTMAX)(masked)  # (None, S, A)
    return keras.Model([chars, pointers, prev], probs, name="edit")


def _kind_lists(kinds: ActionKinds):
    return list(kinds.consumes), list(kinds.ends), list(kinds.never)


def model_kinds(model) -> ActionKinds:
    """The action kinds a (trained or loaded) edit model masks with."""
    return model.get_layer(names.ACTION_MASK).kinds


def inference_models(model, cfg: ModelConfig):
    """(encoder, step) Keras models sharing the trained model's layers (by name).

    encoder: chars (B, T, Vin) with </s> at each row's n -> encoder outputs (B, T, W)
    step:    [encoder outputs (N, T, W), pointers (N, 1) int, previous action one-hot
             (N, 1, A), input lengths (N,) int, state_1..state_L (N, H)]
             -> [probs (N, A), new state_1..state_L]
    Time axes are None: each batch runs to its own longest string.
    """
    A = cfg.output_vocab_size
    chars = keras.Input(shape=(None, cfg.input_vocab_size), name=names.CHARS)
    enc, _ = encoder(model, chars, cfg, padding_mask(chars))  # (B, T, W)
    enc_model = keras.Model(chars, enc, name="edit_encoder")

    enc_in = keras.Input(shape=(None, encoder_width(cfg)), name="encoder_outputs")  # (N, T, W)
    pointer = keras.Input(shape=(1,), dtype="int32", name="pointer")  # (N, 1)
    prev = keras.Input(shape=(1, A), name="prev_action")  # (N, 1, A)
    lengths = keras.Input(shape=(), dtype="int32", name="lengths")  # (N,)
    states = [keras.Input(shape=(cfg.hidden,), name=f"state_{i}") for i in range(1, cfg.layers + 1)]
    pointed = model.get_layer(names.POINTED)([enc_in, pointer])  # (N, 1, W)
    x = model.get_layer(names.DECODER_INPUT)([pointed, prev])  # (N, 1, W + A)
    y, finals = _decoder(model, x, cfg, states)  # (N, 1, H)
    head = model.get_layer(names.HEAD_LAYER[cfg.head])
    logits = model.get_layer(names.ACTION_MASK)([head(y), pointer, lengths])  # (N, 1, A)
    probs = model.get_layer(names.SOFTMAX)(logits)[:, 0]  # (N, A)
    step = keras.Model([enc_in, pointer, prev, lengths, *states], [probs, *finals], name="edit_step")
    return enc_model, step


# --- the loss and metrics ---------------------------------------------------------------
# Targets are (B, S, A) multi-hot action sets; a step is real when its set is not empty.


def _real_steps(y_true):
    return ops.cast(ops.greater(ops.sum(y_true, axis=-1), 0.0), "float32")  # (B, S)


def _step_hits(y_true, y_pred):
    """(B, S) 1.0 where the most probable action is in the target set."""
    best = ops.argmax(y_pred, axis=-1)  # (B, S)
    hit = ops.take_along_axis(y_true, ops.expand_dims(best, -1), axis=-1)[..., 0]  # (B, S)
    return ops.cast(ops.greater(hit, 0.0), "float32")


def char_acc(y_true, y_pred):
    """Per sequence: the fraction of real steps whose most probable action is a target."""
    y_true = ops.cast(y_true, "float32")
    real = _real_steps(y_true)
    return ops.sum(_step_hits(y_true, y_pred) * real, axis=1) / ops.maximum(ops.sum(real, axis=1), 1.0)  # (B,)


def exact_match(y_true, y_pred):
    """Per sequence: 1.0 when every real step's most probable action is a target."""
    y_true = ops.cast(y_true, "float32")
    missed = _real_steps(y_true) * (1.0 - _step_hits(y_true, y_pred))  # (B, S)
    return ops.cast(ops.equal(ops.sum(missed, axis=1), 0.0), "float32")  # (B,)


def edit_loss(label_smoothing: float = 0.0):
    """Per sequence (B,): the mean over real steps of -log sum_{a in target set} p(a).

    label_smoothing e: (1 - e) times that, plus e times the mean of -log p over the
    actions valid at the step (those the mask left a probability above 0), so smoothing
    never pushes probability towards actions the mask forbids."""
    e = float(label_smoothing)

    def loss(y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        eps = keras.config.epsilon()
        p_opt = ops.sum(y_true * y_pred, axis=-1)  # (B, S)
        nll = -ops.log(ops.clip(p_opt, eps, 1.0))  # (B, S)
        if e:
            valid = ops.cast(ops.greater(y_pred, 0.0), y_pred.dtype)  # (B, S, A)
            logp = ops.log(ops.clip(y_pred, eps, 1.0))  # (B, S, A)
            spread = -ops.sum(logp * valid, axis=-1) / ops.maximum(ops.sum(valid, axis=-1), 1.0)  # (B, S)
            nll = (1.0 - e) * nll + e * spread
        return real_step_mean(nll, y_true)  # (B,)

    loss.__name__ = "edit_loss"
    return loss


def real_step_mean(values, y_true):
    """Per-step values (B, S) -> their mean over each sequence's real steps (B,): those
    whose target set is not empty. The one place an edit loss decides which steps count
    (training/distill.py too)."""
    real = _real_steps(ops.cast(y_true, values.dtype))  # (B, S)
    return ops.sum(values * real, axis=1) / ops.maximum(ops.sum(real, axis=1), 1.0)  # (B,)


def edit_metrics() -> list:
    return [char_acc, exact_match]


# --- in-memory arrays -------------------------------------------------------------------


@dataclass(frozen=True)
class EditArrays:
    """A set of pairs encoded for training, padded to the longest of them: what batches
    are cut from (each cropped to its own longest row)."""

    chars: np.ndarray  # (N, T) int32 input ids, </s> at n, <pad> after
    pointers: np.ndarray  # (N, S) int32 pointer before each action (0 after END)
    prev: np.ndarray  # (N, S) int32 previous action id (start at step 0, padding after END)
    optimal: np.ndarray  # (N, S, K) int32 the optimal actions of each step, -1 filled
    in_lengths: np.ndarray  # (N,) int input characters n
    steps: np.ndarray  # (N,) int actions of the expert's sequence, END included

    def __len__(self) -> int:
        return len(self.chars)

    def batch(self, rows: np.ndarray):
        """([chars ids (B, T_b), pointers (B, S_b), prev ids (B, S_b)], optimal ids
        (B, S_b, K)) for `rows`, cropped to their own longest input and action sequence
        (multi_hot turns the optimal ids into targets)."""
        T = int(self.in_lengths[rows].max(initial=0)) + 1
        S = max(int(self.steps[rows].max(initial=0)), 1)
        return [self.chars[rows, :T], self.pointers[rows, :S], self.prev[rows, :S]], self.optimal[rows, :S]


def multi_hot(optimal: np.ndarray, n_actions: int) -> np.ndarray:
    """(..., K) action ids, -1 filled -> (..., A) float32 multi-hot."""
    out = np.zeros((*optimal.shape[:-1], n_actions + 1), np.float32)  # the last column takes -1
    np.put_along_axis(out, np.where(optimal < 0, n_actions, optimal), 1.0, axis=-1)
    return out[..., :n_actions]


def edit_arrays(pairs, in_vocab: Vocab, actions: EditActions, expert: Expert, max_len: int) -> EditArrays:
    """The pairs encoded for training, from the expert's answers (core/edits.py): its
    action sequence (END last), the pointer before each action and each step's set of
    optimal actions."""
    N = len(pairs)
    chars, _ = in_vocab.encode_batch([p[0] for p in pairs], input_len(max_len), fill=PAD_ID)  # (N, T)
    in_lengths = np.array([min(len(p[0]), max_len) for p in pairs], np.int64)  # (N,)
    chars[np.arange(N), in_lengths] = END_ID
    paths = [(p.actions, p.pointers, p.optimal) for p in expert.expert_batch(pairs)]
    return walked_arrays(chars, in_lengths, paths)


def walked_arrays(chars: np.ndarray, in_lengths: np.ndarray, walks) -> EditArrays:
    """EditArrays of one walk per row of chars (N, T): (actions taken, END last; the
    pointer before each; the targets of each step, (L, K) ids -1 filled, the first the
    target the loss uses). The previous action at step 0 is START_ACTION, <pad> after END.
    The expert's paths (edit_arrays) and roll-in's walks (training/rollin.py) alike."""
    N = len(walks)
    steps = np.array([len(w[0]) for w in walks], np.int64)  # (N,)
    S = max(int(steps.max(initial=0)), 1)
    K = max((np.shape(w[2])[1] for w in walks if len(w[0])), default=1)
    pointers = np.zeros((N, S), np.int32)  # (N, S)
    prev = np.full((N, S), PAD_ACTION, np.int32)  # (N, S)
    optimal = np.full((N, S, K), -1, np.int32)  # (N, S, K)
    for i, (taken, before, targets) in enumerate(walks):
        n = len(taken)
        pointers[i, :n] = before
        prev[i, :n] = [START_ACTION, *taken[:-1]]
        optimal[i, :n, : np.shape(targets)[1]] = targets
    return EditArrays(chars, pointers, prev, optimal, in_lengths, steps)
