"""Training data streamed from the pairs file through tf.data, so memory stays flat as the
file grows.

Two steps:

1. `scan_pairs` reads the file once in Python, row by row, and keeps only what does not grow
   with the file: the vocabularies (characters of training rows), counts, the first few
   invalid rows for the error message, and the line numbers of rows that are not pairs
   (invalid or blank; those are few in a file worth training on). It applies exactly the
   checks of `data.read_pairs`, so errors name the same file and line, and --skip-invalid
   means the same thing.
2. `pairs_dataset` builds the tf.data pipeline that reads the file again, line by line:
   drop non-pair lines -> keep this side of the train/validation split -> shuffle in a
   bounded buffer -> sort windows of BUCKET_WINDOW batches by length (length buckets) ->
   batch -> shuffle batches -> split on the tab and map characters to ids with a
   `tf.lookup.StaticHashTable`, padded to the batch's own longest string -> one-hot ->
   prefetch. Nothing holds the whole file. (A model written before masks, or an aligned
   bidirectional one, gets max_len-long batches instead: ModelConfig.variable_length.)

Resampled training rows (`train --bootstrap`, `--subsample`: members that disagree). With
--bootstrap each training row is drawn k times, k ~ Poisson(1) from another hash of (seed,
line content): about 63% of the rows at least once, some twice or more, the epoch about as
long as without (Oza and Russell's online bagging: the same distribution as drawing n of n
with replacement, as n grows). With --subsample F a row is kept once with probability F.
Decided per row from its content, like the split, so the pipeline repeats rows as it
streams them and `resampled_rows` counts the epoch in one pass; validation rows are never
resampled.

Train/validation split. Each row goes to validation when a hash of (seed, line content)
falls below `val_split` of the hash range. Hashing the *content* rather than the line
number keeps the split disjoint by content: a line repeated in the file is always on one
side, so validation never scores a row the model was trained on. The split is deterministic
for a given --seed, but its size is `val_split` of the rows only on average (binomial
spread); `scan_pairs` counts the exact sizes. If a requested split comes out empty (tiny
files), the row(s) with the smallest hash go to validation, as the in-memory split did
also never leaves a requested split silently empty. The same TF hash function classifies
rows in the scan and in the pipeline, so the two always agree.

stdin (`-`) cannot be read twice: it is spooled to a temporary file first (removed when
the scan result is garbage-collected or the process exits).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import shutil
import sys
import tempfile
import weakref
from array import array
from dataclasses import dataclass, field

import numpy as np

from transducer.core import normalization
from transducer.core.config import ModelConfig
from transducer.core.data import (
    MAX_REPORTED, TOO_LONG, InvalidRow, _row_problem, check_usable, display_name, fix_for_long_rows, iter_raw_lines,
    open_binary, row_length,
)
from transducer.core.vocab import END_ID, PAD_ID, START_ID, UNK_ID, Labels, Vocab
from transducer.networks.seq2seq import decoder_len
from transducer.networks.tf import tf

VAL_BUCKETS = 1 << 30  # hash range for the split; a row is validation if its bucket < threshold
SHUFFLE_BUFFER = 65_536  # lines held for shuffling: a full shuffle up to this many rows
STATS_ROWS = 1_000_000  # duplicates and conflicts are counted over the first this many rows
CHUNK = 8_192  # rows hashed per TF call during the scan
READ_CHUNK = 4_096  # lines per vectorised read/filter step in the pipeline
BUCKET_WINDOW = 32  # batches sorted by length together (length buckets); also the number
#                     of batches shuffled together afterwards
BOM = b"\xef\xbb\xbf"
# P(k <= j) for k ~ Poisson(1), j = 0..7: a row's bootstrap count is how many of these its
# uniform hash reaches (capped at 8: P(k > 8) is 1e-6).
POISSON1_CDF = tuple(math.exp(-1) * sum(1 / math.factorial(i) for i in range(j + 1)) for j in range(8))


@dataclass
class ScannedPairs:
    """What one pass over a pairs file learned, without keeping the pairs."""

    name: str  # file name as given by the user ("<stdin>" for -)
    path: str  # file the pipeline reads: the user's file, or the spooled copy of stdin
    n_rows: int = 0  # valid pairs
    n_val: int = 0  # pairs on the validation side of the split
    val_threshold: int = 0  # split: a row is validation if its hash bucket < this
    min_bucket: int = VAL_BUCKETS  # smallest hash bucket of any valid row
    seed: int = 0  # --seed the split was made with
    excluded: array = field(default_factory=lambda: array("q"))  # line numbers of non-pairs
    invalid: list[InvalidRow] = field(default_factory=list)  # the first MAX_REPORTED invalid rows
    n_invalid: int = 0  # all invalid rows
    invalid_kinds: dict = field(default_factory=dict)  # kind of problem -> rows
    longest_invalid: int = 0  # characters of the longest row over max_len (0: none was)
    duplicates: int = 0  # repeated (input, output) rows among the first STATS_ROWS
    first_duplicate: int = 0  # line number of the first repeated row
    conflicts: int = 0  # inputs with more than one output among the first STATS_ROWS
    first_conflict: str = ""  # e.g. "line 7: input 'ab' has output 'X', line 3 has 'Y'"
    fingerprint: str = ""  # sha256 of the valid rows and their sides: identifies data + split
    in_chars: set = field(default_factory=set)  # characters of training inputs
    out_chars: set = field(default_factory=set)  # characters of training outputs
    labels: bool = False  # outputs are labels (--arch label): counted in label_rows
    label_rows: dict = field(default_factory=dict)  # label -> [training rows, validation rows]
    output_ratio: float = 0.0  # largest len(output) / max(len(input), 1) of a training row:
    #                            what config.OutputLength bounds decoding by
    resampled: dict = field(default_factory=dict)  # (Resample, labels) -> training rows drawn (resampled_rows)

    @property
    def n_train(self) -> int:
        return self.n_rows - self.n_val

    def vocabs(self) -> tuple[Vocab, Vocab | Labels]:
        """Vocabularies of the training rows, the same as Vocab.from_strings would build
        (for labels: the labels of the training rows)."""
        if self.labels:
            return Vocab.from_strings(self.in_chars), Labels.from_strings(l for l, n in self.label_rows.items() if n[0])
        return Vocab.from_strings(self.in_chars), Vocab.from_strings(self.out_chars)

    def rows_with_labels(self, side: str, labels: Labels) -> int:
        """Rows of `side` ("train", "val" or "all") whose label is in `labels`: what the
        pipeline yields for a label model (a label it cannot score is left out)."""
        cols = {"train": (0,), "val": (1,), "all": (0, 1)}[side]
        return sum(n[c] for label, n in self.label_rows.items() if label in labels for c in cols)

    def invalid_by_kind(self) -> dict[str, int]:
        """How many rows were skipped for each kind of problem, most frequent first."""
        return dict(sorted(self.invalid_kinds.items(), key=lambda kv: -kv[1]))

    def describe_invalid(self) -> str:
        shown = "; ".join(f"line {r.line_no}: {r.reason}" for r in self.invalid)
        more = self.n_invalid - len(self.invalid)
        return shown + (f"; and {more} more" if more > 0 else "")


def local_copy(path: str, normalize: str = "none") -> str:
    """A path the pipeline can read (again): stdin is spooled to a temporary file, and
    with a normalization form the file is copied with every line normalized (same line
    numbers; a line that is not UTF-8 is copied as it is, for the scan to report)."""
    if path != "-" and normalize == "none":
        open_binary(path).close()  # same errors as read_pairs: no such file, directory, ...
        return path
    source = open_binary(path)
    fd, spooled = tempfile.mkstemp(prefix="transducer-pairs-", suffix=".tsv")
    try:
        with os.fdopen(fd, "wb") as out:
            if normalize == "none":
                shutil.copyfileobj(source, out, 1 << 20)
            else:
                # The copy's readers drop a BOM from its line 1, as iter_raw_lines dropped the
                # source's: one is written first, so a line 1 that starts with a second BOM
                # keeps it (as every reader of the source sees that line).
                out.write(BOM)
                for _, raw in iter_raw_lines(source):  # drops the BOM and line endings
                    try:
                        raw = normalization.normalize(normalize, raw.decode("utf-8")).encode("utf-8")
                    except UnicodeDecodeError:
                        pass
                    out.write(raw + b"\n")
    except BaseException:
        _unlink(spooled)
        raise
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    return spooled


def scan_pairs(
    path: str, max_len: int, skip_invalid: bool, val_split: float, seed: int, normalize: str = "none",
    labels: bool = False,
) -> ScannedPairs:
    """One pass over `path` (`-` for stdin): validate, count, split, collect characters
    (and, with `labels`, count the rows of each label on each side); lengths and
    characters are those of the `normalize` form (normalization.py)."""
    local = local_copy(path, normalize)
    try:
        result = _scan(display_name(path), local, max_len, _threshold(val_split), seed, labels)
        if val_split > 0 and result.n_val == 0 and result.n_rows >= 2:
            # A requested split is never silently empty: the smallest hash goes to validation.
            result = _scan(result.name, local, max_len, result.min_bucket + 1, seed, labels)
    except BaseException:
        if local != path:
            _unlink(local)
        raise
    if local != path:
        weakref.finalize(result, _unlink, local)
    fix = fix_for_long_rows(result.longest_invalid)
    check_usable(result.name, result.n_rows, result.n_invalid, result.describe_invalid(), skip_invalid, fix)
    return result


def _threshold(val_split: float) -> int:
    return int(round(val_split * VAL_BUCKETS))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _scan(name: str, path: str, max_len: int, threshold: int, seed: int, labels: bool = False) -> ScannedPairs:
    """The scan proper. `threshold` 0 means no validation side; on return, if no row fell
    below it, the caller can retry with `min_bucket + 1`."""
    result = ScannedPairs(name=name, path=path, val_threshold=threshold, seed=seed, labels=labels)
    pair_hashes, src_hashes = array("q"), array("q")  # for duplicates and conflicts
    row_lines = array("q")  # line number of each hashed row
    chunk: list[tuple[bytes, str]] = []
    min_bucket = VAL_BUCKETS
    digest = hashlib.sha256()

    def flush():
        nonlocal min_bucket
        buckets = split_buckets([raw for raw, _ in chunk], seed).numpy()  # (n,)
        min_bucket = min(min_bucket, int(buckets.min()))
        for (raw, text), bucket in zip(chunk, buckets):
            digest.update(raw + (b"\n1" if bucket < threshold else b"\n0"))
            src, tgt = text.split("\t")
            if labels:
                result.label_rows.setdefault(tgt, [0, 0])[int(bucket < threshold)] += 1
            if bucket < threshold:
                result.n_val += 1
            else:
                result.in_chars.update(src)
                if not labels:
                    result.out_chars.update(tgt)
                    result.output_ratio = max(result.output_ratio, len(tgt) / max(len(src), 1))
        chunk.clear()

    with open(path, "rb") as stream:
        for line_no, raw in iter_raw_lines(stream):
            blank = False
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                text = None
                problem = (f"not valid UTF-8 (byte {e.start + 1} of the line)", "not valid UTF-8")
            else:
                blank = text.strip() == "" and "\t" not in text  # as data.read_pairs
                problem = None if blank else _row_problem(text, max_len, labels=labels)
            if problem or blank:
                result.excluded.append(line_no)
                if problem:
                    result.n_invalid += 1
                    result.invalid_kinds[problem[1]] = result.invalid_kinds.get(problem[1], 0) + 1
                    if len(result.invalid) < MAX_REPORTED:
                        result.invalid.append(InvalidRow(line_no, *problem))
                    if problem[1] in TOO_LONG:
                        result.longest_invalid = max(result.longest_invalid, row_length(text, labels))
                continue
            result.n_rows += 1
            if len(pair_hashes) < STATS_ROWS:
                pair_hashes.append(hash(text))
                src_hashes.append(hash(text.split("\t")[0]))
                row_lines.append(line_no)
            chunk.append((raw, text))
            if len(chunk) >= CHUNK:
                flush()
    if chunk:
        flush()
    stats = _duplicates_conflicts(pair_hashes, src_hashes, row_lines)
    result.duplicates, result.first_duplicate, result.conflicts, conflict_lines = stats
    if conflict_lines:
        result.first_conflict = _describe_conflict(path, *conflict_lines)
    result.fingerprint = digest.hexdigest()
    result.min_bucket = min_bucket
    return result


def _duplicates_conflicts(pair_hashes: array, src_hashes: array, row_lines: array):
    """(duplicates, first duplicate's line, conflicting inputs, (line, earlier line) of the
    first conflict or None), from hashes: no row is kept as a string."""
    if not pair_hashes:
        return 0, 0, 0, None
    pairs = np.frombuffer(pair_hashes, dtype=np.int64)  # (n,)
    srcs = np.frombuffer(src_hashes, dtype=np.int64)  # (n,)
    lines = np.frombuffer(row_lines, dtype=np.int64)  # (n,)
    _, first_of_pair = np.unique(pairs, return_index=True)
    repeated = np.ones(len(pairs), dtype=bool)
    repeated[first_of_pair] = False  # (n,): an identical row came earlier
    duplicates = int(repeated.sum())
    first_duplicate = int(lines[repeated.argmax()]) if duplicates else 0
    distinct = np.unique(np.stack([srcs, pairs], axis=1), axis=0)  # (distinct pairs, 2)
    _, outputs_per_input = np.unique(distinct[:, 0], return_counts=True)
    conflicts = int(np.sum(outputs_per_input > 1))
    first_conflict = None
    if conflicts:
        _, first_of_src, src_index = np.unique(srcs, return_index=True, return_inverse=True)
        earlier = first_of_src[src_index]  # (n,): the input's first row
        differs = pairs != pairs[earlier]  # (n,): same input, another output than its first
        i = int(differs.argmax())
        first_conflict = (int(lines[i]), int(lines[earlier[i]]))
    return duplicates, first_duplicate, conflicts, first_conflict


def _describe_conflict(path: str, line: int, earlier: int) -> str:
    """The message read_pairs gives, from the two lines read back from the file."""
    rows = {}
    with open(path, "rb") as f:
        for line_no, raw in iter_raw_lines(f):
            if line_no in (line, earlier):
                rows[line_no] = raw.decode("utf-8").split("\t")
            if line_no >= line:
                break
    (src, tgt), first = rows[line], rows[earlier][1]
    return f"line {line}: input {src!r} has output {tgt!r}, line {earlier} has {first!r}"


def split_buckets(lines, seed: int):
    """Hash bucket of each line (bytes, as read: line ending and BOM removed) for the split.
    The pipeline calls the same function on its string tensors, so both agree."""
    salted = tf.constant(f"{seed}\x1f") + tf.convert_to_tensor(lines, dtype=tf.string)
    return tf.strings.to_hash_bucket_fast(salted, VAL_BUCKETS)  # same shape as lines


@dataclass(frozen=True)
class Resample:
    """How one member draws its training rows (train --bootstrap or --subsample)."""

    seed: int  # the member's own seed (seed + member), so each member draws its own rows
    keep: float = 0.0  # --subsample: each row once with this probability; 0: --bootstrap, Poisson(1) times

    @property
    def name(self) -> str:
        return f"subsample {self.keep:g}" if self.keep else "bootstrap resample"


def draw_counts(lines, resample: Resample):
    """How many times each line (bytes, as split_buckets reads them) is drawn into
    `resample`, from a hash of (seed, line) independent of the split's. The pipeline calls
    it on its string tensors too."""
    salted = tf.constant(f"bootstrap {resample.seed}\x1f") + tf.convert_to_tensor(lines, dtype=tf.string)
    u = tf.cast(tf.strings.to_hash_bucket_fast(salted, VAL_BUCKETS), tf.float64) / VAL_BUCKETS  # (n,) in [0, 1)
    if resample.keep:
        return tf.cast(u < resample.keep, tf.int32)  # (n,) 0 or 1
    return tf.reduce_sum(tf.cast(u[:, None] >= tf.constant(POISSON1_CDF, tf.float64), tf.int32), axis=1)  # (n,)


def resampled_rows(scan: ScannedPairs, resample: Resample, labels=None) -> int:
    """Training rows an epoch of `resample` holds (counted once per scan and draw);
    labels: count only rows whose output is one of them (a label model's pipeline leaves
    the others out)."""
    key = (resample, None if labels is None else tuple(labels.symbols))
    if key not in scan.resampled:
        rows = iter_pairs(scan, "train", resample=resample)
        scan.resampled[key] = sum(1 for _, out in rows if labels is None or out in labels)
    return scan.resampled[key]


def iter_pairs(scan: ScannedPairs, side: str, limit: int | None = None, resample: Resample | None = None):
    """(input, output) pairs of `side` ("train", "val" or "all") in file order, read from the
    file again in Python: for code that needs strings (e.g. decoded validation metrics).
    resample: each training pair comes as many times as it draws it (draw_counts;
    consecutively, 0 to 8 times); validation pairs once."""
    return itertools.islice(_iter_side(scan, side, resample), limit)


def _iter_side(scan: ScannedPairs, side: str, resample: Resample | None = None):
    excluded = set(scan.excluded)
    chunk: list[tuple[bytes, str]] = []

    def sides():
        raws = [raw for raw, _ in chunk]
        buckets = split_buckets(raws, seed=scan.seed).numpy()  # (n,)
        counts = draw_counts(raws, resample).numpy() if resample is not None else np.ones(len(raws), int)  # (n,)
        for (_, text), bucket, count in zip(chunk, buckets, counts):
            is_val = bucket < scan.val_threshold
            if side == "all" or is_val == (side == "val"):
                yield from [tuple(text.split("\t"))] * (int(count) if side == "train" else 1)
        chunk.clear()

    with open(scan.path, "rb") as stream:
        for line_no, raw in iter_raw_lines(stream):
            if line_no in excluded:
                continue
            chunk.append((raw, raw.decode("utf-8")))
            if len(chunk) >= CHUNK:
                yield from sides()
    if chunk:
        yield from sides()


# --- the pipeline --------------------------------------------------------------------------


def target_length(cfg: ModelConfig) -> int:
    """Length of the target id rows: max_len, or the decoder length for seq2seq."""
    if cfg.arch == "seq2seq":
        return decoder_len(cfg.max_len)
    return cfg.max_len


def assemble_features(cfg: ModelConfig, src_ids, tgt_ids):
    """([int feature tensors], target ids) from encoded inputs and targets.

    Keep in sync with `loop.training_arrays` (aligned), `seq2seq.seq2seq_arrays` and
    `label.label_arrays`:
    aligned: [inputs padded with <pad>] -> targets filled with </s>;
    label: as aligned, but the target is one label id per row, (B,);
    seq2seq: [encoder ids, decoder input = <s> + target[:-1]] -> target = output + </s>...
    """
    if cfg.arch == "seq2seq":
        start = tf.fill([tf.shape(tgt_ids)[0], 1], tf.constant(START_ID, tgt_ids.dtype))  # (B, 1)
        dec_in = tf.concat([start, tgt_ids[:, :-1]], axis=1)  # (B, T)
        return [src_ids, dec_in], tgt_ids
    return [src_ids], tgt_ids


def _lookup_table(vocab: Vocab):
    # "" is never a character; it keeps the table non-empty (TF refuses empty tables).
    keys = tf.constant(["", *vocab.symbols[4:]], dtype=tf.string)  # characters, as UTF-8
    ids = tf.constant([UNK_ID, *range(4, len(vocab))], dtype=tf.int32)
    init = tf.lookup.KeyValueTensorInitializer(keys, ids)
    return tf.lookup.StaticHashTable(init, default_value=UNK_ID)  # unseen characters -> <unk>


def _label_table(labels: Labels):
    """Whole label strings -> ids; a label never seen in training -> -1 (left out)."""
    keys = tf.constant(list(labels.symbols), dtype=tf.string)
    init = tf.lookup.KeyValueTensorInitializer(keys, tf.range(len(labels), dtype=tf.int32))
    return tf.lookup.StaticHashTable(init, default_value=-1)


def _encode(strings, table, length, fill: int):
    """(B,) strings -> (B, length) ids, like Vocab.encode_batch. length: an int, or a
    scalar tensor at least as long as the longest string (a batch's own length)."""
    chars = tf.strings.unicode_split(strings, "UTF-8")  # ragged (B, None)
    ids = tf.ragged.map_flat_values(table.lookup, chars)  # ragged (B, None)
    if isinstance(length, int):
        return ids.to_tensor(default_value=fill, shape=[None, length])  # (B, T)
    ids = ids.to_tensor(default_value=fill)  # (B, longest)
    return tf.pad(ids, [[0, 0], [0, length - tf.shape(ids)[1]]], constant_values=fill)  # (B, length)


def _char_lengths(parts):
    """(B, 2) input/output strings -> (B,) input and (B,) output lengths in characters."""
    return tf.strings.length(parts[:, 0], unit="UTF8_CHAR"), tf.strings.length(parts[:, 1], unit="UTF8_CHAR")


def batch_lengths(cfg: ModelConfig, parts):
    """(input length, target length) of a batch of (B, 2) strings: max_len and the full
    target length, or, for a variable-length model (ModelConfig.variable_length), the
    batch's own longest. seq2seq: the longest input, and the longest output + </s>.
    aligned (unidirectional): one length for both, covering each row's input and its
    output + </s> (the output may be longer than the input), capped at max_len."""
    if not cfg.variable_length:
        return cfg.max_len, target_length(cfg)
    n_in, n_out = _char_lengths(parts)  # (B,), (B,)
    if cfg.arch == "label":  # the target is one id, not a string
        return tf.maximum(tf.reduce_max(n_in), 1), None
    if cfg.arch == "seq2seq":
        return tf.maximum(tf.reduce_max(n_in), 1), tf.reduce_max(n_out) + 1
    both = tf.minimum(tf.reduce_max(tf.maximum(n_in, n_out + 1)), cfg.max_len)
    return both, both


def _sort_key(cfg: ModelConfig, parts):
    """What length buckets sort on: seq2seq by input then output length; aligned by the
    row's span (input, or output + </s>, whichever is longer)."""
    n_in, n_out = _char_lengths(parts)
    if cfg.arch == "label":
        return n_in
    if cfg.arch == "seq2seq":
        return n_in * (cfg.max_len + 2) + n_out
    return tf.maximum(n_in, n_out + 1)


def pairs_dataset(
    scan: ScannedPairs,
    cfg: ModelConfig,
    in_vocab: Vocab,
    out_vocab: Vocab,
    side: str,
    batch_size: int,
    seed: int,
    shuffle_seed: int | None,
    shuffle_buffer: int = SHUFFLE_BUFFER,
    resample: Resample | None = None,
):
    """One pass of batches (one-hot features, target ids) over `side` "train", "val" or
    "all"; `seed` picks the split, `shuffle_seed` the order (None: file order), `resample`
    ("train" only) the member's draw of the training rows (each repeated as drawn).

    Build one dataset per epoch with that epoch's seed (see `loop.build`'s `dataset_for_epoch`) rather than
    relying on reshuffle_each_iteration: tf.distribute rebuilds the dataset graph and loses
    the state behind reshuffling (the order then changed from run to run), whereas explicit
    per-epoch seeds survive, so a seed gives one order on any strategy.
    """
    labels = cfg.arch == "label"
    n = {"train": scan.n_train, "val": scan.n_val, "all": scan.n_rows}[side]
    if labels:
        n = scan.rows_with_labels(side, out_vocab)  # rows with a label the model has
    draw = resample if side == "train" else None
    if draw is not None:
        n = resampled_rows(scan, draw, out_vocab if labels else None)
    # Line 0 does not exist; it keeps the table non-empty (TF refuses empty tables).
    excluded = tf.constant(np.concatenate([[0], np.frombuffer(scan.excluded, dtype=np.int64)]))
    skip = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(excluded, tf.ones_like(excluded, dtype=tf.int32)), default_value=0
    )
    in_table = _lookup_table(in_vocab)
    out_table = _label_table(out_vocab) if labels else _lookup_table(out_vocab)
    threshold = scan.val_threshold
    depths = (len(in_vocab), len(out_vocab))

    def rows(chunk_index, chunk):
        """A chunk of raw lines -> the pairs on this side of the split, vectorised."""
        n_lines = tf.shape(chunk, out_type=tf.int64)[0]
        line_no = chunk_index * READ_CHUNK + tf.range(1, n_lines + 1, dtype=tf.int64)  # (C,) 1-based
        # Same content as data.iter_raw_lines: TextLineDataset already drops \n and \r\n;
        # a BOM is dropped from line 1 only.
        bom = tf.logical_and(line_no == 1, tf.strings.substr(chunk, 0, 3) == BOM)  # (C,)
        chunk = tf.strings.substr(chunk, tf.where(bom, 3, 0), tf.fill(tf.shape(chunk), -1))
        keep = skip.lookup(line_no) == 0  # (C,) a pair, not an invalid or blank line
        if side != "all":
            is_val = split_buckets(chunk, seed) < threshold  # (C,)
            keep = tf.logical_and(keep, is_val if side == "val" else tf.logical_not(is_val))
        if labels:  # a validation label the model has no output for cannot be scored
            label = tf.strings.regex_replace(chunk, "^[^\t]*\t", "")  # (C,) the output column
            keep = tf.logical_and(keep, out_table.lookup(label) >= 0)
        chunk = tf.boolean_mask(chunk, keep)  # (kept,)
        if draw is not None:
            chunk = tf.repeat(chunk, draw_counts(chunk, draw))  # (drawn,): each row as often as drawn
        return chunk

    def split(lines):
        return tf.strings.split(lines, "\t").to_tensor(shape=[None, 2])  # (B, 2): one tab per row

    def encode(lines):
        parts = split(lines)
        src_len, tgt_len = batch_lengths(cfg, parts)
        src = _encode(parts[:, 0], in_table, src_len, PAD_ID)  # (B, T_in)
        if labels:
            tgt = out_table.lookup(parts[:, 1])  # (B,): one id per row
        else:
            tgt = _encode(parts[:, 1], out_table, tgt_len, END_ID)  # (B, T)
        feats, y = assemble_features(cfg, src, tgt)
        x = tuple(tf.one_hot(f, d) for f, d in zip(feats, depths))  # each (B, T, depth)
        return (x[0] if len(x) == 1 else x), y

    # Lines are read, split and filtered in chunks (per-line tf.data functions cost ~100 us
    # each), then unbatched so that shuffling mixes single rows.
    lines = tf.data.TextLineDataset(scan.path).batch(READ_CHUNK).enumerate().map(rows).unbatch()
    steps = -(-n // batch_size)
    if shuffle_seed is not None:
        buffer = max(1, min(n, shuffle_buffer))
        lines = lines.shuffle(buffer, seed=shuffle_seed % (1 << 31), reshuffle_each_iteration=False)
    if cfg.variable_length:
        # Length buckets: each window of BUCKET_WINDOW batches is sorted by length, so a
        # batch holds rows of similar length and is padded to its own longest only. A
        # window is a whole number of batches, so the step count stays ceil(n / batch).
        def by_length(window):
            return tf.gather(window, tf.argsort(_sort_key(cfg, split(window)), stable=True))

        lines = lines.batch(batch_size * BUCKET_WINDOW).map(by_length).unbatch()
    ds = lines.batch(batch_size)
    if cfg.variable_length and shuffle_seed is not None:
        # Batches leave a window from short to long: shuffle whole batches, so an epoch
        # does not cycle through lengths (seeded: a resumed epoch sees the same order).
        ds = ds.shuffle(BUCKET_WINDOW, seed=(shuffle_seed + 1) % (1 << 31), reshuffle_each_iteration=False)
    ds = ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE)
    # The scan counted the rows: declaring the step count lets Keras size its epochs, and a
    # pipeline that disagreed with the scan would fail loudly here instead of training wrong.
    ds = ds.apply(tf.data.experimental.assert_cardinality(steps))
    return ds.prefetch(tf.data.AUTOTUNE)

