"""Inference engines: turn (B, T) input ids into per-position output probabilities.

Two engines compute the same function:
  numpy  a TensorFlow-free forward pass over `weights.npz` (imports in ~0.1 s, small RSS);
         the default for `predict` and `evaluate`.
  keras  the saved `model.keras` run by TensorFlow; `--engine keras`.

The numpy engine is written per layer type from Keras's own equations (GRU with
reset_after True/False, Bidirectional concat, Dense). The first GRU layer's input is
one-hot, so `one_hot(x) @ kernel` is a row gather `kernel[x]`: same numbers, no matmul.

`aligned_decode` is what `predict` calls: the chosen symbol per position and the
probability of the emitted string. For a unidirectional model the numpy engine runs it
step by step and drops each row from the batch once it has emitted </s> (or <pad>):
nothing after that changes the string or its probability, and an aligned model's output
at step t depends only on steps <= t. A bidirectional model's outputs depend on the whole
padded input, so it is computed in full, as Keras does (always max_len wide: see
ModelConfig.variable_length).

A masked seq2seq model (config "masked") gets rows padded to their group's longest line
and computes what Keras computes with its padding mask: the forward GRU is causal, so
only its final state is taken at each row's last real character; the backward GRU runs
over each row reversed within its own length (tf.reverse_sequence), so it starts at the
last real character; attention scores of padded positions lose 1e9, as in Keras.

`label_probs` (`--arch label`) runs the same masked stack over rows padded to the
batch's longest string and reads its final state the same way (`final_state`).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from transducer.core.artifacts import WEIGHTS, ModelInfo, read_info
from transducer.core.config import ENGINES, TransducerError
from transducer.core.vocab import END_ID, PAD_ID, UNK_ID

SUB_BATCH = 256  # rows per numpy pass: keeps h, gates and projections in the CPU caches


def weight_arrays(model) -> dict[str, np.ndarray]:
    """Every weight of `model`, named from the layer structure, the names NumpyEngine reads:
    `gru_1/gru_cell/kernel`, `bidirectional_1/forward_gru_1/gru_cell/bias`,
    `time_distributed/dense/kernel`. Keras's own variable paths are not used: after
    `load_model` they lose the wrapper's prefix (`forward_gru_1/...`, `dense/...`), so a
    model exported from model.keras would not match one written by `train`."""
    arrays = {}
    for layer in model.layers:
        for name, var in _layer_variables(layer):
            arrays[f"{layer.name}/{name}"] = np.asarray(var.numpy())
    return arrays


def _layer_variables(layer):
    """(name inside the layer, variable) pairs, wrappers spelled out by their inner layers."""
    forward = getattr(layer, "forward_layer", None)
    if forward is not None:  # Bidirectional
        for inner in (forward, layer.backward_layer):
            for name, var in _layer_variables(inner):
                yield f"{inner.name}/{name}", var
        return
    inner = getattr(layer, "layer", None)
    if inner is not None:  # TimeDistributed
        for name, var in _layer_variables(inner):
            yield f"{inner.name}/{name}", var
        return
    cell = getattr(layer, "cell", None)
    if cell is not None:  # GRU: its weights live in its cell
        for var in cell.weights:
            yield f"{cell.name}/{var.name}", var
        return
    for var in layer.weights:
        yield var.name, var


def export_weights(model, path: Path) -> None:
    """`weight_arrays(model)` written to a temporary file next to `path` and renamed over
    it, so readers never see half a file."""
    path = Path(path)
    arrays = weight_arrays(model)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # same directory: rename is atomic
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


WRAPPERS = ("bidirectional_", "encoder_bidirectional_", "time_distributed")  # layers wrapping others


def read_weights(path: Path, model_dir: Path) -> dict[str, np.ndarray]:
    """The float32 arrays of a weights.npz, or one line saying what is wrong with the file.
    Never unpickles: object arrays are refused (allow_pickle=False) and said to be."""
    fix = f"re-export with `transducer export {model_dir}`"
    try:
        size = path.stat().st_size
    except OSError as e:
        raise TransducerError(f"{path}: unreadable weights ({e.strerror}); {fix}") from None
    if size == 0:
        raise TransducerError(f"{path}: unreadable weights (empty file); {fix}")
    if not zipfile.is_zipfile(path):
        raise TransducerError(f"{path}: unreadable weights (not a .npz archive: truncated or corrupt); {fix}")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for k in z.files:
                a = z[k]
                if a.dtype.kind not in "fiub":
                    raise TransducerError(f"{path}: unreadable weights ({k!r} is not a numeric array); {fix}")
                arrays[k] = a.astype(np.float32)
    except TransducerError:
        raise
    except Exception as e:  # zipfile, zlib, numpy format errors: all mean a damaged file
        # numpy's own message for object arrays suggests allow_pickle, which is never the advice.
        what = "holds object arrays, which are never loaded" if "pickle" in str(e) else "corrupt archive"
        raise TransducerError(f"{path}: unreadable weights ({what}); {fix}") from None
    return arrays


def export_model_dir(model_dir) -> Path:
    """Write (or refresh) DIR/weights.npz from DIR/model.keras; returns its path."""
    info = read_info(model_dir)
    model = _load_keras(info)  # clear errors for a missing or corrupt model.keras
    path = info.path / WEIGHTS
    try:
        export_weights(model, path)
    except OSError as e:
        raise TransducerError(f"{path}: cannot write ({e.strerror or e})") from None
    return path


def _load_keras(info: ModelInfo):
    """load_keras_model, with a one-line error where TensorFlow is not installed."""
    try:
        from transducer.networks.saved import load_keras_model  # the one way in to TensorFlow here

        return load_keras_model(info)
    except ImportError as e:
        raise TransducerError(
            f"this needs TensorFlow, which cannot be imported ({e}); the numpy engine"
            " (the default for predict) does not"
        ) from None


def load_engine(info: ModelInfo, engine: str = "numpy"):
    if engine not in ENGINES:
        raise TransducerError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "keras":
        return KerasEngine(info)
    return NumpyEngine(info)


def aligned_confidence(probs: np.ndarray, chosen: np.ndarray, copied: np.ndarray | None = None) -> np.ndarray:
    """P(output string) for the aligned model: the product of the chosen symbols'
    probabilities up to and including the first </s>. Positions after it do not change
    the string, so they sum out to 1 and the product is exact. `copied` (B, T) marks
    positions whose input character is copied through (`--unk copy`): not modelled, so
    they count as 1."""
    p = np.take_along_axis(probs, chosen[..., None], axis=-1)[..., 0]  # (B, T)
    if copied is not None:
        p = np.where(copied, 1.0, p)
    is_end = (chosen == END_ID) | (chosen == PAD_ID)
    counted = (np.cumsum(is_end, axis=1) - is_end) == 0  # (B, T): up to the first end
    logp = np.where(counted, np.log(np.maximum(p, 1e-30)), 0.0).sum(axis=1)  # (B,)
    return np.exp(logp)


def decode_probs(probs: np.ndarray, ids: np.ndarray, copy_unk: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(B, T, V) probabilities -> (B, T) argmax ids and (B,) P(output string).

    copy_unk: at positions whose input is <unk> the output is <unk> (the caller puts the
    input character there), never the end of the string, and its probability counts as 1."""
    best = probs.argmax(axis=-1)  # (B, T)
    copied = None
    if copy_unk:
        copied = ids == UNK_ID  # (B, T)
        best[copied] = UNK_ID
    return best, aligned_confidence(probs, best, copied)


class KerasEngine:
    name = "keras"

    def __init__(self, info: ModelInfo, model=None):
        """`model`: an in-memory Keras model (e.g. just trained) instead of DIR/model.keras."""
        self.info = info
        self.model = model if model is not None else _load_keras(info)
        self.decoder_layers = info.model.layers
        self._seq2seq = None  # (encoder, step) inference models, built on first use
        self._scores_step = None  # the step model that also returns attention scores (explain)
        self._edit = None  # an edit model's (encoder, step) inference models, built on first use

    def _seq2seq_models(self):
        if self._seq2seq is None:
            from transducer.networks.seq2seq import inference_models

            self._seq2seq = inference_models(self.model, self.info.model)
        return self._seq2seq

    def seq2seq_encode(self, ids: np.ndarray):
        """(B, T) ids -> encoder outputs (B, T, W), the decoder's initial state (B, W) and
        the encoder mask (B, T) bool (None for a model written before masks)."""
        from transducer.core.vocab import one_hot

        encoder, _ = self._seq2seq_models()
        x = one_hot(ids, self.info.model.input_vocab_size)  # (B, T, Vin)
        enc, init = encoder.predict_on_batch(x)
        mask = (ids != PAD_ID) if self.info.model.masked else None  # (B, T)
        return np.asarray(enc, np.float32), np.asarray(init, np.float32), mask

    def seq2seq_step(
        self, prev: np.ndarray, enc: np.ndarray, mask: np.ndarray | None, states: list[np.ndarray],
        return_attention: bool = False,
    ):
        """One decoder step for N hypotheses: previous symbol ids (N,) -> probs (N, V), states
        (and with `return_attention`, the attention weights (N, T), None without attention).
        mask: the encoder mask from seq2seq_encode (None for a model written before masks)."""
        from transducer.core.vocab import one_hot

        if return_attention:
            step = self._attention_step()
        else:
            _, step = self._seq2seq_models()
        x = one_hot(prev[:, None], self.info.model.output_vocab_size)  # (N, 1, Vout)
        out = step.predict_on_batch([x, enc, *([mask] if mask is not None else []), *states])
        probs = np.asarray(out[0], np.float32)[:, 0]  # (N, Vout)
        states = [np.asarray(s, np.float32) for s in out[1 : 1 + self.decoder_layers]]
        if not return_attention:
            return probs, states
        has_scores = len(out) > 1 + self.decoder_layers
        return probs, states, np.asarray(out[-1], np.float32)[:, 0] if has_scores else None  # (N, T)

    def _attention_step(self):
        """The step model with the attention layer's own scores as an extra output (explain)."""
        if self._scores_step is None:
            from transducer.networks.seq2seq import inference_models

            self._scores_step = inference_models(self.model, self.info.model, attention_scores=True)[1]
        return self._scores_step

    def aligned_probs(self, ids: np.ndarray) -> np.ndarray:
        """(B, T) ids -> (B, T, V) probabilities."""
        from transducer.core.vocab import one_hot

        x = one_hot(ids, self.info.model.input_vocab_size)  # (B, T, Vin)
        return np.asarray(self.model.predict_on_batch(x), dtype=np.float32)  # (B, T, Vout)

    # edit (networks/edit.py): the trained layers, by name, one decoder step at a time.

    def _edit_models(self):
        if self._edit is None:
            from transducer.networks.edit import inference_models

            self._edit = inference_models(self.model, self.info.model)
        return self._edit

    def edit_encode(self, ids: np.ndarray) -> np.ndarray:
        """(B, T) ids, each row's </s> at its length n, <pad> after -> encoder outputs (B, T, W)."""
        from transducer.core.vocab import one_hot

        encoder, _ = self._edit_models()
        return np.asarray(encoder.predict_on_batch(one_hot(ids, self.info.model.input_vocab_size)), np.float32)

    def edit_step(self, pointer: np.ndarray, prev: np.ndarray, enc: np.ndarray, lengths: np.ndarray,
                  states: list[np.ndarray]):
        """One decoder step for N hypotheses: pointers (N,), previous action ids (N,), their
        rows' encoder outputs (N, T, W) and input lengths (N,), decoder states [(N, H) per
        layer] -> action probabilities (N, A) (invalid actions 0), new states."""
        from transducer.core.vocab import one_hot

        _, step = self._edit_models()
        prev = one_hot(np.asarray(prev)[:, None], self.info.model.output_vocab_size)  # (N, 1, A)
        pointer = np.asarray(pointer, np.int32)[:, None]  # (N, 1)
        out = step.predict_on_batch([enc, pointer, prev, np.asarray(lengths, np.int32), *states])
        return np.asarray(out[0], np.float32), [np.asarray(s, np.float32) for s in out[1:]]

    def aligned_decode(self, ids: np.ndarray, copy_unk: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(B, T) ids -> (B, T) chosen output ids and (B,) P(output string); see
        decode_probs for copy_unk."""
        return decode_probs(self.aligned_probs(ids), ids, copy_unk)

    def label_probs(self, ids: np.ndarray) -> np.ndarray:
        """(B, T) right-padded ids -> (B, n_labels) probabilities (label models)."""
        from transducer.core.vocab import one_hot

        x = one_hot(ids, self.info.model.input_vocab_size)  # (B, T, Vin)
        return np.asarray(self.model.predict_on_batch(x), dtype=np.float32)  # (B, n_labels)


class NumpyEngine:
    name = "numpy"

    def __init__(self, info: ModelInfo):
        self.info = info
        path = info.path / WEIGHTS
        if not path.is_file():
            raise TransducerError(
                f"{info.path}: {WEIGHTS} is missing; run `transducer export {info.path}`"
                " or use --engine keras"
            )
        self.w = read_weights(path, info.path)

    def get(self, key: str) -> np.ndarray:
        """The array named `key` (see weight_arrays). Files exported by older versions
        named a wrapped layer's arrays without the wrapper (`forward_gru_1/...` for
        `bidirectional_1/forward_gru_1/...`, `dense/...` for `time_distributed/dense/...`):
        those names are accepted too."""
        if key in self.w:
            return self.w[key]
        old_name = key.split("/", 1)[-1]
        if key.split("/", 1)[0].startswith(WRAPPERS) and old_name in self.w:
            return self.w[old_name]
        raise TransducerError(
            f"{self.info.path / WEIGHTS}: no weight {key!r}; re-export with `transducer export {self.info.path}`"
        )

    def gru_params(self, prefix: str):
        return (
            self.get(f"{prefix}/gru_cell/kernel"),
            self.get(f"{prefix}/gru_cell/recurrent_kernel"),
            self.get(f"{prefix}/gru_cell/bias"),
        )

    def layer_params(self, i: int, prefix: str = "") -> list[tuple]:
        """The i-th (1-based) GRU layer's (kernel, recurrent kernel, bias): [forward] or,
        when bidirectional, [forward, backward]."""
        if self.info.model.bidirectional:
            base = f"{prefix}bidirectional_{i}"
            return [self.gru_params(f"{base}/{d}_{prefix}gru_{i}") for d in ("forward", "backward")]
        return [self.gru_params(f"{prefix}gru_{i}")]

    def recurrent_stack(self, ids: np.ndarray, prefix: str = "", lengths: np.ndarray | None = None) -> np.ndarray:
        """(B, T) ids -> (B, T, H) outputs of the GRU stack (2H when bidirectional).

        lengths (B,): masked, as Keras with a padding mask: the backward direction starts
        at each row's last real character (rows are reversed within their length). The
        forward direction needs nothing: it is causal, so padding after a position never
        reaches it. Outputs at padded positions are left as computed (nothing reads them).
        None: unmasked, the backward direction reads the whole padded row."""
        cfg = self.info.model
        x = None  # (B, T, features) after the first layer
        for i in range(1, cfg.layers + 1):
            if cfg.bidirectional:
                fwd, bwd = self.layer_params(i, prefix)
                xf = _input_proj(ids, x, fwd[0])
                xb = _input_proj(ids, x, bwd[0])
                hf = gru_sequence(xf, fwd[1], fwd[2], cfg.reset_after)
                hb = _reverse(gru_sequence(_reverse(xb, lengths), bwd[1], bwd[2], cfg.reset_after), lengths)
                x = np.concatenate([hf, hb], axis=-1)  # (B, T, 2H)
            else:
                k, rk, b = self.gru_params(f"{prefix}gru_{i}")
                x = gru_sequence(_input_proj(ids, x, k), rk, b, cfg.reset_after)  # (B, T, H)
        return x

    def head_params(self) -> tuple[np.ndarray, np.ndarray]:
        key = "time_distributed/dense" if self.info.model.head == "time-distributed" else "dense"
        return self.get(f"{key}/kernel"), self.get(f"{key}/bias")

    def head(self, h: np.ndarray) -> np.ndarray:
        """Per-position logits -> softmax probabilities (..., V)."""
        kernel, bias = self.head_params()
        return softmax(h @ kernel + bias)

    def aligned_probs(self, ids: np.ndarray) -> np.ndarray:
        """(B, T) ids -> (B, T, V) probabilities."""
        parts = _map_parts(lambda part: self.head(self.recurrent_stack(part)), ids)
        return np.concatenate(parts) if parts else np.zeros((*ids.shape, self.info.model.output_vocab_size), np.float32)

    def aligned_decode(self, ids: np.ndarray, copy_unk: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(B, T) ids -> (B, T) chosen output ids and (B,) P(output string); copy_unk as
        in decode_probs.

        Positions after a row's first </s> (or <pad>) are filled with </s>: they do not
        change the decoded string or its probability."""
        if self.info.model.bidirectional:
            return decode_probs(self.aligned_probs(ids), ids, copy_unk)
        parts = _map_parts(lambda part: self._decode_unidirectional(part, copy_unk), ids)
        if not parts:
            return np.zeros(ids.shape, dtype=np.int64), np.zeros(0)
        return np.concatenate([p[0] for p in parts]), np.exp(np.concatenate([p[1] for p in parts]))

    def _decode_unidirectional(self, ids: np.ndarray, copy_unk: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Step by step over time, all layers at once, dropping rows that have ended."""
        cfg = self.info.model
        B, T = ids.shape
        unk = ids == UNK_ID if copy_unk else None  # (B, T): copied positions, see decode_probs
        if unk is not None and not unk.any():
            unk = None
        layers = [self.gru_params(f"gru_{i}") for i in range(1, cfg.layers + 1)]
        # The first layer's input projection with its input bias folded in: a (Vin, 3H)
        # table gathered by id, so each step starts from one row per sequence.
        first_k, _, first_b = layers[0]
        table = first_k + (first_b[0] if cfg.reset_after else first_b)  # (Vin, 3H)
        kernel, bias = self.head_params()
        best = np.full((B, T), END_ID, dtype=np.int64)  # (B, T)
        logp = np.zeros(B, dtype=np.float64)  # (B,)
        rows = np.arange(B)  # sequences still emitting, ids into the batch
        hs = [np.zeros((B, cfg.hidden), dtype=np.float32) for _ in layers]  # (n, H) per layer
        with np.errstate(over="ignore"):
            for t in range(T):
                x = None
                for i, (k, rk, b) in enumerate(layers):
                    if i == 0:
                        xp = table[ids[rows, t]]  # (n, 3H), input bias included
                    else:
                        xp = x @ k  # (n, 3H)
                        xp += b[0] if cfg.reset_after else b
                    hs[i] = x = _gru_step_biased(xp, hs[i], rk, b, cfg.reset_after)  # (n, H)
                logits = x @ kernel  # (n, V)
                logits += bias
                chosen = logits.argmax(axis=1)  # (n,)
                logits -= logits[np.arange(len(rows)), chosen][:, None]
                # log softmax of the chosen symbol: -log(sum(exp(z - z_max)))
                step = np.log(np.exp(logits, out=logits).sum(axis=1, dtype=np.float64))  # (n,)
                if unk is not None:
                    copy = unk[rows, t]  # (n,)
                    chosen[copy], step[copy] = UNK_ID, 0.0
                logp[rows] -= step
                best[rows, t] = chosen
                done = (chosen == END_ID) | (chosen == PAD_ID)  # (n,)
                if done.any():
                    keep = ~done
                    rows = rows[keep]
                    hs = [h[keep] for h in hs]
                    if not len(rows):
                        break
        return best, logp

    # label: label.build_label's layers, each row run to its own length.

    def label_probs(self, ids: np.ndarray) -> np.ndarray:
        """(B, T) right-padded ids -> (B, n_labels) probabilities."""
        parts = _map_parts(self._label_probs, ids)
        return np.concatenate(parts) if parts else np.zeros((0, self.info.model.output_vocab_size), np.float32)

    def _label_probs(self, ids: np.ndarray) -> np.ndarray:
        lengths = np.count_nonzero(ids != PAD_ID, axis=1)  # (B,): padding is at the end
        T = max(int(lengths.max(initial=0)), 1)  # steps past every row's end change nothing
        enc = self.recurrent_stack(ids[:, :T], lengths=lengths)  # (B, T, W)
        return self.head(self.final_state(enc, lengths))  # (B, n_labels)

    def final_state(self, enc: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
        """The GRU stack's final state (B, W) from its outputs (B, T, W), as a masked Keras
        GRU returns it: forward after each row's last real position (the last position
        when `lengths` is None), backward, when bidirectional, after reading back to the
        first."""
        last = enc[:, -1] if lengths is None else enc[np.arange(len(enc)), np.maximum(lengths - 1, 0)]  # (B, W)
        if self.info.model.bidirectional:
            H = self.info.model.hidden
            return np.concatenate([last[:, :H], enc[:, 0, H:]], axis=-1)  # (B, 2H)
        return last.copy()  # (B, H)

    # seq2seq: the equations of seq2seq.build_seq2seq's layers, one decoder step at a time.

    @property
    def decoder_layers(self) -> int:
        return self.info.model.layers

    def seq2seq_encode(self, ids: np.ndarray):
        """(B, T) ids -> encoder outputs (B, T, W), the decoder's initial state (B, W) and
        the encoder mask (B, T) bool (None for a model written before masks)."""
        cfg = self.info.model
        mask = (ids != PAD_ID) if cfg.masked else None  # (B, T): right-padded, so a prefix
        lengths = None if mask is None else mask.sum(axis=1)  # (B,)
        enc = self.recurrent_stack(ids, prefix="encoder_", lengths=lengths)  # (B, T, W)
        if mask is not None:
            enc[~mask] = 0.0  # as Keras outputs at padded steps; an empty row encodes to zeros
        return enc, self.final_state(enc, lengths), mask  # (B, T, W), (B, W), (B, T)

    def seq2seq_step(
        self, prev: np.ndarray, enc: np.ndarray, mask: np.ndarray | None, states: list[np.ndarray],
        return_attention: bool = False,
    ):
        """One decoder step for N hypotheses: previous symbol ids (N,) -> probs (N, V), states
        (and with `return_attention`, the attention weights (N, T), None without attention).
        mask: the encoder mask from seq2seq_encode (None for a model written before masks)."""
        cfg = self.info.model
        weights = None
        x = None
        new_states = []
        for i in range(1, cfg.layers + 1):
            k, rk, b = self.gru_params(f"decoder_gru_{i}")
            x = gru_step(_input_proj(prev, x, k), states[i - 1], rk, b, cfg.reset_after)  # (N, W)
            new_states.append(x)
        if cfg.attention != "none":
            weights = self.attention_weights(x, enc, mask)  # (N, T)
            context = np.einsum("nt,ntw->nw", weights, enc)  # (N, W)
            combined = np.concatenate([x, context], axis=-1)  # (N, 2W)
            x = np.tanh(combined @ self.get("attention_combine/kernel") + self.get("attention_combine/bias"))
        if return_attention:
            return self.head(x), new_states, weights
        return self.head(x), new_states  # (N, V)

    def attention_weights(self, query: np.ndarray, enc: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """(N, W) decoder outputs over (N, T, W) encoder outputs -> (N, T) attention weights,
        as Keras computes them: padded positions (mask False) lose 1e9 from their score."""
        if self.info.model.attention == "luong":
            scores = np.einsum("nw,ntw->nt", query, enc)  # (N, T): dot product, no scale
        else:  # bahdanau: Keras AdditiveAttention, sum(scale * tanh(q + k))
            scores = (np.tanh(query[:, None, :] + enc) * self.get("attention/scale")).sum(-1)  # (N, T)
        if mask is not None:
            scores = np.where(mask, scores, scores - 1e9)
        return softmax(scores)


def _map_parts(fn, ids: np.ndarray) -> list:
    """fn over sub-batches of SUB_BATCH rows, in order. Several sub-batches run in threads
    (numpy releases the GIL in matmul and ufuncs), one per core: BLAS itself is kept to one
    thread (see cli.predict), because its own threading thrashes on these small matrices."""
    parts = [ids[i : i + SUB_BATCH] for i in range(0, len(ids), SUB_BATCH)]
    workers = min(len(parts), os.cpu_count() or 1)
    if workers <= 1:
        return [fn(p) for p in parts]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, parts))


def _reverse(x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """Reverse each row of x (B, T, ...) along time: the whole row, or (with lengths) only
    its first lengths[b] positions, as tf.reverse_sequence does; the rest stays in place."""
    if lengths is None:
        return x[:, ::-1]
    t = np.arange(x.shape[1])
    idx = np.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, T)
    return x[np.arange(len(x))[:, None], idx]


def _input_proj(ids: np.ndarray, x: np.ndarray | None, kernel: np.ndarray) -> np.ndarray:
    """x @ kernel, where x is one-hot `ids` for the first layer (a row gather)."""
    if x is None:
        return kernel[ids]  # (B, T, 3H)
    return x @ kernel  # (B, T, 3H)


def _sigmoid_(x: np.ndarray) -> np.ndarray:
    """sigmoid(x) in place, float32, no temporaries. exp is about twice as fast as tanh in
    numpy, so every gate (tanh included, via _tanh_) is computed through one exp.
    Callers silence the harmless overflow of exp(-x) for x << 0 (result 0)."""
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += 1.0
    np.reciprocal(x, out=x)
    return x


def _tanh_(x: np.ndarray) -> np.ndarray:
    """tanh(x) = 2 sigmoid(2x) - 1, in place."""
    x *= 2.0
    _sigmoid_(x)
    x *= 2.0
    x -= 1.0
    return x


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def gru_step(xp, h, rk, b, reset_after: bool):
    """One GRU step. xp: (B, 3H) input projection (bias not included); h: (B, H).

    Keras gate order in kernels and biases is [z, r, h~].
    """
    with np.errstate(over="ignore"):
        return _gru_step_biased(xp + (b[0] if reset_after else b), h, rk, b, reset_after)


def _gru_step_biased(xp, h, rk, b, reset_after: bool):
    """gru_step with the input bias already in xp (B, 3H), which it overwrites."""
    H = h.shape[-1]
    zr = xp[:, : 2 * H]  # (B, 2H): z then r
    hh = xp[:, 2 * H :]  # (B, H): the candidate
    if reset_after:
        hp = h @ rk  # (B, 3H)
        hp += b[1]  # recurrent bias
        zr += hp[:, : 2 * H]
        _sigmoid_(zr)
        hp_h = hp[:, 2 * H :]
        hp_h *= zr[:, H:]  # r * (h @ rk_h + b_h)
        hh += hp_h
    else:
        zr += h @ rk[:, : 2 * H]
        _sigmoid_(zr)
        hh += (zr[:, H:] * h) @ rk[:, 2 * H :]  # (r * h) @ rk_h
    _tanh_(hh)
    # z * h + (1 - z) * hh, as hh + z * (h - hh): one temporary instead of three
    out = h - hh
    out *= zr[:, :H]
    out += hh
    return out  # (B, H)


def gru_sequence(xp: np.ndarray, rk: np.ndarray, b: np.ndarray, reset_after: bool, h0=None):
    """(B, T, 3H) input projections (bias not included) -> (B, T, H) hidden states."""
    B, T, _ = xp.shape
    H = rk.shape[0]
    h = np.zeros((B, H), dtype=np.float32) if h0 is None else h0
    out = np.empty((B, T, H), dtype=np.float32)
    in_bias = b[0] if reset_after else b
    with np.errstate(over="ignore"):
        for t in range(T):
            h = _gru_step_biased(xp[:, t] + in_bias, h, rk, b, reset_after)
            out[:, t] = h
    return out
