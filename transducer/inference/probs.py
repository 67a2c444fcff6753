"""From an aligned model's per-position probabilities to its output: the chosen symbols
and P(output string). Shared by both engines, ensembles and explain.

A (B, T, V) array grows with the rows of a call, and predict hands an engine a whole
chunk (--batch-size lines, 8,192 by default) so it can sort and share them out: whatever
holds such an array does it CALL_ROWS rows at a time (`row_slices`, `in_slices`)."""

from __future__ import annotations

import numpy as np

from transducer.core.vocab import END_ID, PAD_ID, UNK_ID

CALL_ROWS = 1024  # rows whose (B, T, V) probabilities are held at once


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


def row_slices(n: int) -> list[range]:
    """Rows 0..n-1 in slices of CALL_ROWS, in order (one empty slice when n is 0)."""
    return [range(i, min(i + CALL_ROWS, n)) for i in range(0, max(n, 1), CALL_ROWS)]


def in_slices(fn, ids: np.ndarray) -> list:
    """fn(ids[rows]) over row_slices, in order: what fn holds at once stays one slice's
    size, however many rows `ids` has."""
    return [fn(ids[rows.start : rows.stop]) for rows in row_slices(len(ids))]


def decode_in_slices(probs_fn, ids: np.ndarray, copy_unk: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """decode_probs(probs_fn(ids), ids, copy_unk), CALL_ROWS rows at a time."""
    parts = in_slices(lambda rows: decode_probs(probs_fn(rows), rows, copy_unk), ids)
    return np.concatenate([b for b, _ in parts]), np.concatenate([p for _, p in parts])
