"""An edit model's training data (`--arch edit`): the aligner, the expert's answers, and
length-bucketed batches, all from memory.

Unlike the other architectures, this one does not stream its pairs from the file: the
expert (core/edits.py) needs every training pair to fit the aligner, and its answers
(the action sequence, the pointer before each action, each step's set of optimal actions)
are computed once per run, before the first epoch, and kept as compact int arrays
(networks/edit.EditArrays: about (steps x 3 + input) ints per pair). The memory grows
with the data, a few hundred bytes per pair.

The aligner is fitted once per run on the training pairs and written to the run's
staging directory (DIR.partial/aligner.json), so --resume continues with the very same
expert; the published model directory keeps it (artifacts.ALIGNER). --init-from reuses
the source model's aligner and actions (its weights are indexed by them), and members
2..N of an ensemble reuse member 1's (`reuse`).

Batches are made as stream.pairs_dataset makes them: each epoch's rows are shuffled with
that epoch's seed, windows of BUCKET_WINDOW batches are sorted by length (action steps,
then input length), cut into batches, and the batches shuffled, so a batch holds rows of
similar length and is padded to its own longest input and action sequence only; features
are one-hot on the fly (tf.one_hot), and so are the targets: at each step the action the
expert's path takes (the preferred optimal one, column 0 of the optimal ids), not the whole
optimal set (networks/edit.py says why).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transducer.core import artifacts
from transducer.core.edits import EditActions, Expert, StochasticEditDistance
from transducer.networks.edit import EditArrays, edit_arrays
from transducer.networks.tf import tf
from transducer.training import stream


@dataclass
class EditData:
    """What training an edit model reads, computed once per run."""

    actions: EditActions  # the action vocabulary (the model's output)
    aligner: StochasticEditDistance  # the fitted stochastic edit distance
    train: EditArrays  # the training pairs, encoded with the expert's answers
    val: EditArrays | None  # the validation pairs, likewise (None: nothing held out)
    train_pairs: list  # the training pairs (x, y), in the order of train's rows (roll-in walks them)
    expert: Expert  # the aligner's expert over the actions (roll-in asks it at the states it reaches)


def training_actions(out_chars) -> EditActions:
    """The action vocabulary of training outputs (the characters scan_pairs collected)."""
    return EditActions(tuple(sorted(out_chars)))


def aligner_for_run(train_pairs, staging: Path, resume: bool, reuse: Path | None) -> StochasticEditDistance:
    """The aligner of this run: the one in `reuse` (a model directory: --init-from's
    source, or ensemble member 1), the one this run wrote before it was interrupted
    (--resume), or one fitted now on the training pairs; stored in `staging` either way."""
    stored = Path(staging) / artifacts.ALIGNER
    if reuse is not None:
        aligner = artifacts.read_aligner(reuse)
    elif resume and stored.is_file():
        aligner = artifacts.read_aligner(staging)
    else:
        aligner = StochasticEditDistance.fit(train_pairs)
    Path(staging).mkdir(parents=True, exist_ok=True)
    artifacts.write_json(stored, aligner.to_dict())
    return aligner


def prepare_edit(prep, staging: Path, resume: bool, reuse: Path | None,
                 resample: stream.Resample | None = None) -> EditData:
    """The aligner and the expert's answers for the training and validation pairs.
    resample: the run's draw of training rows (--bootstrap, --subsample), which the training
    arrays (and roll-in) hold; the aligner is fitted on the training pairs as they are, so
    every member of such an ensemble shares one, as members do without it."""
    train_pairs = list(stream.iter_pairs(prep.data, "train"))
    if prep.val is not None:
        val_pairs = list(stream.iter_pairs(prep.val, "all"))
    else:
        val_pairs = list(stream.iter_pairs(prep.data, "val")) if prep.data.n_val else []
    actions = prep.out_vocab
    aligner = aligner_for_run(train_pairs, staging, resume, reuse)
    expert = Expert(aligner, actions)
    # A validation output may hold characters no action writes: its loss cannot be
    # computed, so it is left out of the validation loss (not of the decoded metrics).
    known = set(actions.chars)
    val_pairs = [p for p in val_pairs if set(p[1]) <= known]
    max_len = prep.cfg.max_len
    val = edit_arrays(val_pairs, prep.in_vocab, actions, expert, max_len) if val_pairs else None
    if resample is not None:
        train_pairs = list(stream.iter_pairs(prep.data, "train", resample=resample))
    train = edit_arrays(train_pairs, prep.in_vocab, actions, expert, max_len)
    return EditData(actions, aligner, train, val, train_pairs, expert)


def batch_order(arrays: EditArrays, batch_size: int, max_len: int, shuffle_seed: int | None) -> list[np.ndarray]:
    """Row indices of each batch: shuffled (unless shuffle_seed is None), length-sorted
    within windows of stream.BUCKET_WINDOW batches, batches shuffled (stream.pairs_dataset's order)."""
    rng = np.random.default_rng(shuffle_seed) if shuffle_seed is not None else None
    rows = np.arange(len(arrays)) if rng is None else rng.permutation(len(arrays))
    key = arrays.steps * (max_len + 2) + arrays.in_lengths  # (N,)
    window = batch_size * stream.BUCKET_WINDOW
    batches = []
    for w in range(0, len(rows), window):
        part = rows[w : w + window]
        part = part[np.argsort(key[part], kind="stable")]
        batches += [part[b : b + batch_size] for b in range(0, len(part), batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def edit_dataset(arrays: EditArrays, depths: tuple[int, int], batch_size: int, max_len: int,
                 shuffle_seed: int | None = None):
    """One pass of batches ((chars one-hot, pointers, previous actions one-hot), the path's
    action one-hot) over `arrays` (the expert's paths, or an epoch's roll-in paths:
    training/rollin.py); depths: (input vocabulary, actions)."""
    Vin, A = depths
    order = batch_order(arrays, batch_size, max_len, shuffle_seed)

    def batches():
        for rows in order:
            (chars, pointers, prev), optimal = arrays.batch(rows)
            yield (chars, pointers, prev), optimal

    ids = tf.TensorSpec((None, None), tf.int32)
    spec = ((ids, ids, ids), tf.TensorSpec((None, None, None), tf.int32))

    def encode(features, optimal):
        chars, pointers, prev = features
        x = (tf.one_hot(chars, Vin), pointers, tf.one_hot(prev, A))  # (B, T, Vin), (B, S), (B, S, A)
        taken = optimal[..., 0]  # (B, S): the path's action, -1 past its END
        return x, tf.one_hot(taken, A)  # (B, S, A): -1 gives an all-zero row (a padded step)

    ds = tf.data.Dataset.from_generator(batches, output_signature=spec)
    ds = ds.map(encode).apply(tf.data.experimental.assert_cardinality(len(order)))
    return ds.prefetch(tf.data.AUTOTUNE)
