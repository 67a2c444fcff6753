"""Reading training pairs and prediction inputs, with errors that name file and line.

Files are read as bytes and decoded line by line, so a bad byte is reported with its
line number instead of a UnicodeDecodeError from deep inside Python's io layer.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from .config import TransducerError

MAX_REPORTED = 5  # invalid rows listed one by one before "and N more"


@dataclass(frozen=True)
class InvalidRow:
    line_no: int  # 1-based line number in the file
    reason: str  # what is wrong, in a few words


@dataclass
class PairsFile:
    name: str  # file name as given by the user ("<stdin>" for -)
    pairs: list[tuple[str, str]]  # valid (input, output) pairs in file order
    line_nos: list[int]  # line number of each pair, for later messages
    invalid: list[InvalidRow] = field(default_factory=list)  # rows that were not used
    duplicates: int = 0  # identical (input, output) rows seen more than once (all kept)
    conflicts: int = 0  # inputs that appear with more than one output

    def describe_invalid(self) -> str:
        shown = "; ".join(f"line {r.line_no}: {r.reason}" for r in self.invalid[:MAX_REPORTED])
        more = len(self.invalid) - MAX_REPORTED
        return shown + (f"; and {more} more" if more > 0 else "")


def open_binary(path: str) -> BinaryIO:
    """`-` is stdin; anything else must be a readable file."""
    if path == "-":
        return sys.stdin.buffer
    p = Path(path)
    if not p.exists():
        raise TransducerError(f"{path}: no such file")
    if p.is_dir():
        raise TransducerError(f"{path}: is a directory, expected a file")
    try:
        return open(p, "rb")
    except OSError as e:
        raise TransducerError(f"{path}: cannot open ({e.strerror})") from None


def display_name(path: str) -> str:
    return "<stdin>" if path == "-" else path


def iter_raw_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(line_no, bytes) with the line ending (\\n or \\r\\n) removed and a leading BOM dropped."""
    for line_no, raw in enumerate(stream, start=1):
        if raw.endswith(b"\n"):
            raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
        if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        yield line_no, raw


def decode_line(raw: bytes, name: str, line_no: int, errors: str = "strict") -> str:
    """UTF-8 text of one line; errors="strict" raises an error naming the line."""
    try:
        return raw.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        raise TransducerError(
            f"{name}:{line_no}: not valid UTF-8 (byte {e.start + 1} of the line)", exit_code=1
        ) from None


def read_pairs(path: str, max_len: int, skip_invalid: bool = False) -> PairsFile:
    """Parse `input<TAB>output` rows; invalid rows stop (default) or are skipped."""
    name = display_name(path)
    stream = open_binary(path)
    result = PairsFile(name=name, pairs=[], line_nos=[])
    first_output: dict[str, str] = {}
    seen_pairs: set[tuple[str, str]] = set()
    conflicting: set[str] = set()
    try:
        for line_no, raw in iter_raw_lines(stream):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                result.invalid.append(InvalidRow(line_no, "not valid UTF-8"))
                continue
            if text.strip() == "":
                continue  # blank lines are not pairs
            reason = _row_problem(text, max_len)
            if reason:
                result.invalid.append(InvalidRow(line_no, reason))
                continue
            src, tgt = text.split("\t")
            if (src, tgt) in seen_pairs:
                result.duplicates += 1
            seen_pairs.add((src, tgt))
            if first_output.setdefault(src, tgt) != tgt:
                conflicting.add(src)
            result.pairs.append((src, tgt))
            result.line_nos.append(line_no)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    result.conflicts = len(conflicting)
    check_usable(name, len(result.pairs), len(result.invalid), result.describe_invalid(), skip_invalid)
    return result


def check_usable(name: str, n_pairs: int, n_invalid: int, invalid_detail: str, skip_invalid: bool) -> None:
    """Stop on invalid rows (unless skipped) and on files without a single pair."""
    if n_invalid and not skip_invalid:
        raise TransducerError(
            f"{name}: {n_invalid} invalid row(s): {invalid_detail} (fix them or pass --skip-invalid)"
        )
    if not n_pairs:
        what = "only invalid rows" if n_invalid else "no pairs"
        raise TransducerError(f"{name}: {what}; expected lines of the form input<TAB>output")


def _row_problem(text: str, max_len: int) -> str | None:
    tabs = text.count("\t")
    if tabs == 0:
        return "no tab (expected input<TAB>output)"
    if tabs > 1:
        return f"{tabs} tabs (expected exactly one)"
    src, tgt = text.split("\t")
    if src == "":
        return "empty input"
    if len(src) > max_len:
        return f"input is {len(src)} characters, longer than --max-len {max_len}"
    if len(tgt) > max_len:
        return f"output is {len(tgt)} characters, longer than --max-len {max_len}"
    return None


def split_train_val(n: int, val_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic shuffled split of range(n) into (train_idx, val_idx)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_split))
    if val_split > 0 and n_val == 0 and n >= 2:
        n_val = 1  # a requested split is never silently empty
    return np.sort(order[n_val:]), np.sort(order[:n_val])
