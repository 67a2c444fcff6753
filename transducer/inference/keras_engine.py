"""The Keras engine (`--engine keras`): a model directory's model.keras run by TensorFlow,
or a model just trained, still in memory. The reference the numpy engine is tested
against; TensorFlow is imported when the engine is made (through networks)."""

from __future__ import annotations

import numpy as np

from transducer.core.artifacts import ModelInfo
from transducer.core.vocab import PAD_ID, one_hot
from transducer.inference.probs import decode_in_slices, in_slices
from transducer.networks.export import load_keras


def predict_function(model):
    """networks.tf.predict_function, imported when a Keras engine first runs a model (this
    module is imported by the engine choice, where TensorFlow may not be installed)."""
    from transducer.networks.tf import predict_function as traced

    return traced(model)


class KerasEngine:
    """The Engine interface (engine.Engine) over a Keras model."""

    name = "keras"

    def __init__(self, info: ModelInfo, model=None):
        """`model`: an in-memory Keras model (e.g. just trained) instead of DIR/model.keras."""
        self.info = info
        self.model = model if model is not None else load_keras(info)
        self.decoder_layers = info.model.layers
        self._seq2seq = None  # (encoder, step) inference models, built on first use
        self._scores_step = None  # the step model that also returns attention scores (explain)
        self._edit = None  # an edit model's (encoder, step) inference models, built on first use
        self._forward = None  # the whole model's forward pass (aligned, label), traced on first use

    def _seq2seq_models(self):
        if self._seq2seq is None:
            from transducer.networks.seq2seq import inference_models

            self._seq2seq = tuple(map(predict_function, inference_models(self.model, self.info.model)))
        return self._seq2seq

    def _attention_step(self):
        """The step model with the attention layer's own scores as an extra output (explain)."""
        if self._scores_step is None:
            from transducer.networks.seq2seq import inference_models

            self._scores_step = predict_function(inference_models(self.model, self.info.model, attention_scores=True)[1])
        return self._scores_step

    def _run(self, ids: np.ndarray) -> np.ndarray:
        """The whole model over (B, T) ids, as float32, probs.CALL_ROWS rows at a time (the
        one-hot input grows with the rows; the traced function takes any batch)."""
        if self._forward is None:
            self._forward = predict_function(self.model)
        vin = self.info.model.input_vocab_size
        return np.concatenate(in_slices(lambda rows: np.asarray(self._forward(one_hot(rows, vin)), np.float32), ids))

    def seq2seq_encode(self, ids: np.ndarray):
        """(B, T) ids -> encoder outputs (B, T, W), the decoder's initial state (B, W) and
        the encoder mask (B, T) bool (None for a model written before masks)."""
        encoder, _ = self._seq2seq_models()
        x = one_hot(ids, self.info.model.input_vocab_size)  # (B, T, Vin)
        enc, init = encoder(x)
        mask = (ids != PAD_ID) if self.info.model.masked else None  # (B, T)
        return np.asarray(enc, np.float32), np.asarray(init, np.float32), mask

    def seq2seq_step(
        self, prev: np.ndarray, enc: np.ndarray, mask: np.ndarray | None, states: list[np.ndarray],
        return_attention: bool = False,
    ):
        """One decoder step for N hypotheses: previous symbol ids (N,) -> probs (N, V), states
        (and with `return_attention`, the attention weights (N, T), None without attention).
        mask: the encoder mask from seq2seq_encode (None for a model written before masks)."""
        step = self._attention_step() if return_attention else self._seq2seq_models()[1]
        x = one_hot(prev[:, None], self.info.model.output_vocab_size)  # (N, 1, Vout)
        out = step(x, enc, *([mask] if mask is not None else []), *states)
        probs = np.asarray(out[0], np.float32)[:, 0]  # (N, Vout)
        states = [np.asarray(s, np.float32) for s in out[1 : 1 + self.decoder_layers]]
        if not return_attention:
            return probs, states
        has_scores = len(out) > 1 + self.decoder_layers
        return probs, states, np.asarray(out[-1], np.float32)[:, 0] if has_scores else None  # (N, T)

    def aligned_probs(self, ids: np.ndarray) -> np.ndarray:
        """(B, T) ids -> (B, T, V) probabilities."""
        return self._run(ids)  # (B, T, Vout)

    # edit (networks/edit.py): the trained layers, by name, one decoder step at a time.

    def _edit_models(self):
        if self._edit is None:
            from transducer.networks.edit import inference_models

            self._edit = tuple(map(predict_function, inference_models(self.model, self.info.model)))
        return self._edit

    def edit_encode(self, ids: np.ndarray) -> np.ndarray:
        """(B, T) ids, each row's </s> at its length n, <pad> after -> encoder outputs (B, T, W)."""
        encoder, _ = self._edit_models()
        return np.asarray(encoder(one_hot(ids, self.info.model.input_vocab_size)), np.float32)

    def edit_initial_states(self, n: int) -> list[np.ndarray]:
        """The decoder's zero states for n hypotheses: one (n, H) per layer."""
        return [np.zeros((n, self.info.model.hidden), np.float32) for _ in range(self.info.model.layers)]

    def edit_step(self, enc: np.ndarray, rows: np.ndarray, pointer: np.ndarray, prev: np.ndarray,
                  lengths: np.ndarray, states: list[np.ndarray]):
        """One decoder step for N hypotheses: encoder outputs (B, T, W), each hypothesis's
        line in them (N,), its pointer (N,), previous action id (N,), input length n (N,),
        decoder states [(N, H) per layer] -> action probabilities (N, A) (invalid actions
        0), new states."""
        _, step = self._edit_models()
        prev = one_hot(np.asarray(prev)[:, None], self.info.model.output_vocab_size)  # (N, 1, A)
        pointer = np.asarray(pointer, np.int32)[:, None]  # (N, 1)
        out = step(enc[rows], pointer, prev, np.asarray(lengths, np.int32), *states)
        return np.asarray(out[0], np.float32), [np.asarray(s, np.float32) for s in out[1:]]

    def aligned_decode(self, ids: np.ndarray, copy_unk: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(B, T) ids -> (B, T) chosen output ids and (B,) P(output string); see
        probs.decode_probs for copy_unk."""
        return decode_in_slices(self.aligned_probs, ids, copy_unk)

    def label_probs(self, ids: np.ndarray) -> np.ndarray:
        """(B, T) right-padded ids -> (B, n_labels) probabilities (label models)."""
        return self._run(ids)  # (B, n_labels)
