"""The numpy engine: a TensorFlow-free forward pass over a model directory's weights.npz
(imports in ~0.1 s, small RSS); the default for `predict`, `evaluate` and `explain`.

It is written per layer type from Keras's own equations (kernels.py: GRU with
reset_after True/False; Bidirectional concat, Dense) and reads every weight by the name
the Keras side gave it (core/names.py). The first GRU layer's input is one-hot, so
`one_hot(x) @ kernel` is a row gather `kernel[x]`: same numbers, no matmul.

`aligned_decode` is what `predict` calls: the chosen symbol per position and the
probability of the emitted string. For a unidirectional model it runs step by step and
drops each row from the batch once it has emitted </s> (or <pad>): nothing after that
changes the string or its probability, and an aligned model's output at step t depends
only on steps <= t. A bidirectional model's outputs depend on the whole padded input, so
it is computed in full, as Keras does (always max_len wide: see ModelConfig.variable_length).

A masked seq2seq model (config "masked") gets rows padded to their group's longest line
and computes what Keras computes with its padding mask: the forward GRU is causal, so
only its final state is taken at each row's last real character; the backward GRU runs
over each row reversed within its own length (tf.reverse_sequence), so it starts at the
last real character; attention scores of padded positions lose 1e9, as in Keras.

`label_probs` (`--arch label`) runs the same masked stack over rows padded to the
batch's longest string and reads its final state the same way (`final_state`).

`edit_encode` / `edit_step` (`--arch edit`, networks/edit.py) run seq2seq's masked
encoder over the characters and </s>, then one decoder step for any set of hypotheses:
the encoder output under each pointer and the one-hot previous action into the decoder
GRU(s), the head, the action mask from (pointer, n) (EditActions.valid_mask, the rule
networks/edit.ActionKinds holds) and the softmax. The first decoder layer's kernel is
applied to every encoder position once, at encoding, so a step gathers rows instead of
multiplying (see edit_encode); the search is inference/edit_decode.py's.

BLAS threads. The engine's matrices are small (a sub-batch of 256 rows times a few hundred
units): BLAS's own threads cost more than they give, and on a busy machine they thrash
(3.6-8x slower with two other busy processes on 2 cores). So every public call runs with
BLAS limited to one thread (threadpoolctl, for the CLI and the Python API alike; the
previous limit is restored when the last concurrent call returns), and the engine runs
sub-batches in threads of its own instead (_map_parts). A user's explicit choice wins
(TRANSDUCER_BLAS_THREADS, or BLAS's own variables: core/blas.py reads them). The
`transducer` command goes further and has OpenBLAS start with one thread at all
(core/blas.start_with_one_blas_thread), which this limit then finds in place.
"""

from __future__ import annotations

import functools
import os
import threading
import zipfile
from pathlib import Path

import numpy as np

from transducer.core import names
from transducer.core.artifacts import WEIGHTS, ModelInfo
from transducer.core.blas import blas_threads
from transducer.core.config import TransducerError
from transducer.core.vocab import END_ID, PAD_ID, UNK_ID
from transducer.inference.kernels import (
    gru_sequence, gru_step, gru_step_biased, input_bias, input_proj, reverse, softmax,
)
from transducer.inference.probs import decode_probs

SUB_BATCH = 256  # rows per numpy pass: keeps h, gates and projections in the CPU caches


class _BlasLimit:
    """BLAS's thread count, limited while any engine call runs in this process. BLAS's
    setting is process-wide, so concurrent calls share one limit: the first sets it, the
    last restores what was there (a nested or concurrent call only counts)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._active = 0  # engine calls running now
        self._limiter = None  # threadpoolctl's record of the limits to restore
        self._controller = None  # threadpoolctl's view of the loaded BLAS libraries

    def enter(self, threads: int) -> None:
        with self._lock:
            if self._active == 0:
                if self._controller is None:  # numpy's BLAS is loaded by now; ~5 ms, once
                    from threadpoolctl import ThreadpoolController

                    self._controller = ThreadpoolController()
                self._limiter = self._controller.limit(limits=threads, user_api="blas")  # ~20 us
            self._active += 1

    def exit(self) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0:
                self._limiter.restore_original_limits()
                self._limiter = None


_BLAS = _BlasLimit()


def _limited_blas(method):
    """Run an engine method with BLAS limited to the engine's `blas_threads` (see the
    module docstring)."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        if self.blas_threads is None:
            return method(self, *args, **kwargs)
        _BLAS.enter(self.blas_threads)
        try:
            return method(self, *args, **kwargs)
        finally:
            _BLAS.exit()

    return run


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


class NumpyEngine:
    """The Engine interface (engine.Engine) over weights.npz; see the module docstring."""

    name = "numpy"

    def __init__(self, info: ModelInfo, weights: dict[str, np.ndarray] | None = None):
        """weights: the arrays by name (networks.export.weight_arrays of an in-memory
        model, at the end of train); None reads info.path's weights.npz."""
        self.info = info
        path = info.path / WEIGHTS
        if weights is not None:
            self.w = {k: np.asarray(v, np.float32) for k, v in weights.items()}
        elif not path.is_file():
            raise TransducerError(
                f"{info.path}: {WEIGHTS} is missing; run `transducer export {info.path}`"
                " or use --engine keras"
            )
        else:
            self.w = read_weights(path, info.path)
        self.blas_threads = blas_threads()  # None: the user set BLAS's own variables
        self._edit = None  # an edit model's step tables (_edit_tables), made on first use

    def get(self, key: str) -> np.ndarray:
        """The array named `key` (see names.py). Files exported by older versions named a
        wrapped layer's arrays without the wrapper (`forward_gru_1/...` for
        `bidirectional_1/forward_gru_1/...`, `dense/...` for `time_distributed/dense/...`):
        those names are accepted too."""
        if key in self.w:
            return self.w[key]
        old = names.old_name(key)
        if old is not None and old in self.w:
            return self.w[old]
        raise TransducerError(
            f"{self.info.path / WEIGHTS}: no weight {key!r}; re-export with `transducer export {self.info.path}`"
        )

    def gru_params(self, layer_path: str):
        """(kernel (In, 3H), recurrent kernel (H, 3H), bias) of the GRU at `layer_path`."""
        return tuple(self.get(key) for key in names.gru_weights(layer_path))

    def layer_params(self, i: int, prefix: str = "") -> list[tuple]:
        """The i-th (1-based) GRU layer's (kernel, recurrent kernel, bias): [forward] or,
        when bidirectional, [forward, backward]."""
        return [self.gru_params(p) for p in names.recurrent_layer(i, self.info.model.bidirectional, prefix)]

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
                xf = input_proj(ids, x, fwd[0])
                xb = input_proj(ids, x, bwd[0])
                hf = gru_sequence(xf, fwd[1], fwd[2], cfg.reset_after)
                hb = reverse(gru_sequence(reverse(xb, lengths), bwd[1], bwd[2], cfg.reset_after), lengths)
                x = np.concatenate([hf, hb], axis=-1)  # (B, T, 2H)
            else:
                [(k, rk, b)] = self.layer_params(i, prefix)
                x = gru_sequence(input_proj(ids, x, k), rk, b, cfg.reset_after)  # (B, T, H)
        return x

    def head_params(self) -> tuple[np.ndarray, np.ndarray]:
        kernel, bias = names.dense_weights(names.head(self.info.model.head))
        return self.get(kernel), self.get(bias)

    def head(self, h: np.ndarray) -> np.ndarray:
        """Per-position logits -> softmax probabilities (..., V)."""
        kernel, bias = self.head_params()
        return softmax(h @ kernel + bias)

    def _aligned_part(self, ids: np.ndarray) -> np.ndarray:
        """One sub-batch of an aligned model: (b, T) ids -> (b, T, V) probabilities."""
        return self.head(self.recurrent_stack(ids))

    @_limited_blas
    def aligned_probs(self, ids: np.ndarray) -> np.ndarray:
        """(B, T) ids -> (B, T, V) probabilities."""
        parts = _map_parts(self._aligned_part, ids)
        return np.concatenate(parts) if parts else np.zeros((*ids.shape, self.info.model.output_vocab_size), np.float32)

    @_limited_blas
    def aligned_decode(self, ids: np.ndarray, copy_unk: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(B, T) ids -> (B, T) chosen output ids and (B,) P(output string); copy_unk as
        in probs.decode_probs.

        Positions after a row's first </s> (or <pad>) are filled with </s>: they do not
        change the decoded string or its probability."""
        if not len(ids):
            return np.zeros(ids.shape, dtype=np.int64), np.zeros(0)
        if self.info.model.bidirectional:  # each sub-batch decoded where it is computed: memory stays flat
            parts = _map_parts(lambda part: decode_probs(self._aligned_part(part), part, copy_unk), ids)
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        # Sub-batches of lines of like length: a sub-batch steps until its longest row ends,
        # so mixed lengths cost steps (and row drops) for a few long rows.
        order = np.argsort(np.count_nonzero(ids != PAD_ID, axis=1), kind="stable")  # (B,)
        parts = _map_parts(lambda part: self._decode_unidirectional(part, copy_unk), ids[order])
        best, logp = np.empty(ids.shape, dtype=np.int64), np.empty(len(ids))
        best[order] = np.concatenate([p[0] for p in parts])  # back to the caller's order
        logp[order] = np.concatenate([p[1] for p in parts])
        return best, np.exp(logp)

    def _decode_unidirectional(self, ids: np.ndarray, copy_unk: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Step by step over time, all layers at once, dropping rows that have ended."""
        cfg = self.info.model
        B, T = ids.shape
        unk = ids == UNK_ID if copy_unk else None  # (B, T): copied positions, see decode_probs
        if unk is not None and not unk.any():
            unk = None
        layers = [self.layer_params(i)[0] for i in range(1, cfg.layers + 1)]
        # The first layer's input projection with its input bias folded in: a (Vin, 3H)
        # table gathered by id, so each step starts from one row per sequence.
        first_k, _, first_b = layers[0]
        table = first_k + input_bias(first_b, cfg.reset_after)  # (Vin, 3H)
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
                        xp += input_bias(b, cfg.reset_after)
                    hs[i] = x = gru_step_biased(xp, hs[i], rk, b, cfg.reset_after)  # (n, H)
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

    @_limited_blas
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

    @_limited_blas
    def seq2seq_encode(self, ids: np.ndarray):
        """(B, T) ids -> encoder outputs (B, T, W), the decoder's initial state (B, W) and
        the encoder mask (B, T) bool (None for a model written before masks)."""
        cfg = self.info.model
        mask = (ids != PAD_ID) if cfg.masked else None  # (B, T): right-padded, so a prefix
        lengths = None if mask is None else mask.sum(axis=1)  # (B,)
        enc = self.recurrent_stack(ids, prefix=names.ENCODER, lengths=lengths)  # (B, T, W)
        if mask is not None:
            enc[~mask] = 0.0  # as Keras outputs at padded steps; an empty row encodes to zeros
        return enc, self.final_state(enc, lengths), mask  # (B, T, W), (B, W), (B, T)

    @_limited_blas
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
            k, rk, b = self.gru_params(names.decoder_gru(i))
            x = gru_step(input_proj(prev, x, k), states[i - 1], rk, b, cfg.reset_after)  # (N, W)
            new_states.append(x)
        if cfg.attention != "none":
            weights = self.attention_weights(x, enc, mask)  # (N, T)
            context = np.einsum("nt,ntw->nw", weights, enc)  # (N, W)
            combined = np.concatenate([x, context], axis=-1)  # (N, 2W)
            kernel, bias = names.dense_weights(names.ATTENTION_COMBINE)
            x = np.tanh(combined @ self.get(kernel) + self.get(bias))  # (N, W)
        if return_attention:
            return self.head(x), new_states, weights
        return self.head(x), new_states  # (N, V)

    def attention_weights(self, query: np.ndarray, enc: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """(N, W) decoder outputs over (N, T, W) encoder outputs -> (N, T) attention weights,
        as Keras computes them: padded positions (mask False) lose 1e9 from their score."""
        if self.info.model.attention == "luong":
            scores = np.einsum("nw,ntw->nt", query, enc)  # (N, T): dot product, no scale
        else:  # bahdanau: Keras AdditiveAttention, sum(scale * tanh(q + k))
            scores = (np.tanh(query[:, None, :] + enc) * self.get(names.ATTENTION_SCALE)).sum(-1)  # (N, T)
        if mask is not None:
            scores = np.where(mask, scores, scores - 1e9)
        return softmax(scores)


    # edit: the equations of edit.build_edit's layers, one decoder step at a time.

    def _edit_tables(self):
        """What every edit step reads, computed once: the first decoder layer's kernel
        split into its encoder rows (W, 3H) and its previous-action rows with the input
        bias folded in (A, 3H: a one-hot input is a row gather), the other layers' weights,
        the head, and the actions allowed inside the input and past it (2, A)."""
        if self._edit is None:
            cfg = self.info.model
            layers = [self.gru_params(names.decoder_gru(i)) for i in range(1, cfg.layers + 1)]
            k, _, b = layers[0]
            W = k.shape[0] - cfg.output_vocab_size  # the encoder width: [pointed; prev action]
            allowed = self.info.output_vocab.valid_mask(np.array([0, 1]), 1)  # (2, A): inside, past the end
            self._edit = (k[:W], k[W:] + input_bias(b, cfg.reset_after), layers, self.head_params(), allowed)
        return self._edit

    @_limited_blas
    def edit_encode(self, ids: np.ndarray) -> np.ndarray:
        """(B, T) ids, each row's </s> at its length n, <pad> after -> (B, T, 3H): the
        masked encoder's outputs (seq2seq's encoder, over the characters and </s>) already
        multiplied by the first decoder layer's kernel rows for them. A step reads only the
        row under the pointer, so projecting every position once here replaces a (W, 3H)
        matmul per hypothesis per step by a gather. Padded positions are never read."""
        lengths = np.count_nonzero(ids != PAD_ID, axis=1)  # (B,): characters and </s>
        enc = self.recurrent_stack(ids, prefix=names.ENCODER, lengths=lengths)  # (B, T, W)
        return enc @ self._edit_tables()[0]  # (B, T, 3H)

    def edit_initial_states(self, n: int) -> list[np.ndarray]:
        """The decoder's zero states for n hypotheses: one (n, H) per layer."""
        return [np.zeros((n, self.info.model.hidden), np.float32) for _ in range(self.info.model.layers)]

    @_limited_blas
    def edit_step(self, enc: np.ndarray, rows: np.ndarray, pointer: np.ndarray, prev: np.ndarray,
                  lengths: np.ndarray, states: list[np.ndarray]):
        """One decoder step for N hypotheses: enc from edit_encode (B, T, 3H), each
        hypothesis's line in it (N,), its pointer (N,), previous action id (N,), input
        length n (N,), decoder states [(N, H) per layer] -> action probabilities (N, A)
        (actions invalid at the pointer exactly 0, as Keras's ActionMask makes them) and
        the new states."""
        cfg = self.info.model
        _, by_action, layers, (kernel, bias), allowed = self._edit_tables()
        x, new_states = None, []
        with np.errstate(over="ignore"):
            for i, (k, rk, b) in enumerate(layers):
                if i == 0:
                    xp = enc[rows, pointer] + by_action[prev]  # (N, 3H): [pointed; one-hot prev] @ kernel + bias
                else:
                    xp = x @ k  # (N, 3H)
                    xp += input_bias(b, cfg.reset_after)
                x = gru_step_biased(xp, states[i], rk, b, cfg.reset_after)  # (N, H)
                new_states.append(x)
        logits = x @ kernel  # (N, A)
        logits += bias
        valid = allowed[(np.asarray(pointer) >= np.asarray(lengths)).astype(np.intp)]  # (N, A)
        return softmax(np.where(valid, logits, -np.inf)), new_states  # (N, A)


def _map_parts(fn, ids: np.ndarray) -> list:
    """fn over sub-batches of SUB_BATCH rows, in order. Several sub-batches run in threads
    (numpy releases the GIL in matmul and ufuncs), one per core: BLAS itself is kept to one
    thread (see blas_threads), because its own threading thrashes on these small matrices."""
    parts = [ids[i : i + SUB_BATCH] for i in range(0, len(ids), SUB_BATCH)]
    workers = min(len(parts), os.cpu_count() or 1)
    if workers <= 1:
        return [fn(p) for p in parts]
    from concurrent.futures import ThreadPoolExecutor

    # Costliest first (characters stand for steps), so no thread is left alone with a long
    # part at the end while the others idle; results go back in order.
    costs = [np.count_nonzero(p != PAD_ID) for p in parts]
    with ThreadPoolExecutor(workers) as pool:
        futures = {i: pool.submit(fn, parts[i]) for i in sorted(range(len(parts)), key=lambda i: -costs[i])}
        return [futures[i].result() for i in range(len(parts))]
