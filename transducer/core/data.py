"""Reading training pairs and prediction inputs, with errors that name file and line.

Files are read as bytes and decoded line by line, so a bad byte is reported with its
line number instead of a UnicodeDecodeError from deep inside Python's io layer.
"""

from __future__ import annotations

import io
import os
import select
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator


from transducer.core import normalization
from transducer.core.config import TransducerError

MAX_REPORTED = 5  # invalid rows listed one by one before "and N more"


@dataclass(frozen=True)
class InvalidRow:
    line_no: int  # 1-based line number in the file
    reason: str  # what is wrong, in a few words
    kind: str = ""  # the reason's category, for --skip-invalid's summary ("no tab", ...)


@dataclass
class PairsFile:
    name: str  # file name as given by the user ("<stdin>" for -)
    pairs: list[tuple[str, str]]  # valid (input, output) pairs in file order
    line_nos: list[int]  # line number of each pair, for later messages
    invalid: list[InvalidRow] = field(default_factory=list)  # rows that were not used
    duplicates: int = 0  # identical (input, output) rows seen more than once (all kept)
    first_duplicate: int = 0  # line number of the first repeated row
    conflicts: int = 0  # inputs that appear with more than one output
    first_conflict: str = ""  # e.g. "line 7: input 'ab' already had another output on line 3"

    def describe_invalid(self) -> str:
        shown = "; ".join(f"line {r.line_no}: {r.reason}" for r in self.invalid[:MAX_REPORTED])
        more = len(self.invalid) - MAX_REPORTED
        return shown + (f"; and {more} more" if more > 0 else "")

    def invalid_by_kind(self) -> dict[str, int]:
        """How many rows were skipped for each kind of problem, most frequent first."""
        counts: dict[str, int] = {}
        for r in self.invalid:
            counts[r.kind or r.reason] = counts.get(r.kind or r.reason, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


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
    """(line_no, bytes) with the line ending (\\n or \\r\\n) removed and a leading BOM dropped.

    Lines are split on b"\\n" only: a lone \\r, U+2028 or U+0085 is part of the line.
    """
    for line_no, raw in enumerate(stream, start=1):
        if raw.endswith(b"\n"):
            raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
        if line_no == 1 and raw.startswith(BOM):
            raw = raw[3:]
        yield line_no, raw


BOM = b"\xef\xbb\xbf"
PIECE_BYTES = 1 << 20  # an over-long line is read, checked and copied in pieces of this size
CONTINUATION_BYTES = bytes(range(0x80, 0xC0))  # UTF-8 bytes 10xxxxxx: inside a character
READ_BYTES = 1 << 16  # one read(2) from a pipe or terminal: a pipe's whole buffer


class PipeLines:
    """Lines from a pipe, terminal or socket, read with os.read(2) into our own buffer so
    that `ready()` can tell, without blocking, whether the next line has arrived.

    `predict` asks `ready()` after each line: when the input pauses (nothing more to
    read yet), it predicts the lines it holds and flushes them before waiting, so
    `tail -f log | transducer predict M` and typing in a terminal answer each line at
    once, while a fast producer still fills whole batches."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buf = bytearray()
        self.pos = 0  # start of the unread bytes in buf
        self.eof = False

    def ready(self) -> bool:
        """True when the next readline() returns without waiting for the producer."""
        if self.eof or self.buf.find(b"\n", self.pos) >= 0:
            return True
        readable, _, _ = select.select([self.fd], [], [], 0)
        return bool(readable)  # a closed pipe counts as readable: read() returns b"" at once

    def readline(self, limit: int) -> bytes:
        """Up to `limit` bytes, through the first b"\n"; b"" at the end (as io's readline)."""
        while True:
            end = self.buf.find(b"\n", self.pos, self.pos + limit)
            if end >= 0:
                n = end + 1 - self.pos
            elif len(self.buf) - self.pos >= limit or self.eof:
                n = min(limit, len(self.buf) - self.pos)
            else:
                self._fill()
                continue
            line = bytes(self.buf[self.pos : self.pos + n])
            self.pos += n
            return line

    def _fill(self) -> None:
        del self.buf[: self.pos]  # bounded: at most `limit` + one read are ever held
        self.pos = 0
        data = os.read(self.fd, READ_BYTES)  # blocks until the producer writes or closes
        self.eof = not data
        self.buf += data


class StreamLines:
    """A stream that never pauses (a regular file, an in-memory buffer): read as is."""

    def __init__(self, stream: BinaryIO):
        self.readline = stream.readline

    def ready(self) -> bool:
        return True


def line_reader(stream: BinaryIO) -> PipeLines | StreamLines:
    """How `predict` reads `stream`: a pipe, terminal or socket through PipeLines (so a
    pause in the input can be noticed), anything else as it is. Call it before anything
    has been read from `stream`: PipeLines reads the file descriptor underneath it."""
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return StreamLines(stream)
    if stat.S_ISREG(mode) or stat.S_ISBLK(mode):
        return StreamLines(stream)
    return PipeLines(fd)


class LongLine:
    """The rest of a line too long to hold in memory, to be read once, in pieces.

    `head` is its first bytes (more than the model's max_len characters' worth, so
    truncation needs nothing else); `pieces()` yields the whole line's bytes in bounded
    pieces, line ending removed; `drain()` reads past it without keeping anything.
    """

    def __init__(self, stream: BinaryIO, head: bytes):
        self.stream, self.head, self._done = stream, head, False

    def pieces(self) -> Iterator[bytes]:
        if self._done:
            raise RuntimeError("a LongLine can be read only once")
        self._done = True
        buf = self.head
        while True:
            more = self.stream.readline(PIECE_BYTES)
            if more == b"" or more.endswith(b"\n"):  # buf + more ends the line
                tail = buf + more
                if tail.endswith(b"\n"):
                    tail = tail[:-2] if tail.endswith(b"\r\n") else tail[:-1]
                if tail:
                    yield tail
                return
            # A trailing \r waits for the next piece: it is dropped if "\n" follows it.
            keep = b"\r" if buf.endswith(b"\r") else b""
            if len(buf) > len(keep):
                yield buf[: len(buf) - len(keep)]
            buf = keep + more

    def drain(self) -> None:
        for _ in self.pieces():
            pass

    def count_chars(self) -> int:
        """The line's length in characters, reading it through (bounded memory): its
        UTF-8 bytes that do not continue a character."""
        return sum(len(piece.translate(None, CONTINUATION_BYTES)) for piece in self.pieces())


def iter_bounded_lines(stream: BinaryIO, limit: int) -> Iterator[tuple[int, bytes | LongLine]]:
    """Like iter_raw_lines, but a line over `limit` bytes comes as a LongLine: its head is
    read, the rest stays in the stream until the caller reads or drains it (which it must
    do before asking for the next line). Memory stays bounded for any line length."""
    line_no = 0
    while True:
        raw = stream.readline(limit + 1)
        if raw == b"":
            return
        line_no += 1
        whole = raw.endswith(b"\n") or len(raw) <= limit
        if line_no == 1 and raw.startswith(BOM):
            raw = raw[3:]
        if whole:
            if raw.endswith(b"\n"):
                raw = raw[:-1]
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
            yield line_no, raw
            continue
        long = LongLine(stream, raw)
        yield line_no, long
        if not long._done:
            long.drain()


def decode_line(raw: bytes, name: str, line_no: int, errors: str = "strict") -> str:
    """UTF-8 text of one line; errors="strict" raises an error naming the line."""
    try:
        return raw.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        raise TransducerError(
            f"{name}:{line_no}: not valid UTF-8 (byte {e.start + 1} of the line)", exit_code=1
        ) from None


def read_pairs(
    path: str,
    max_len: int | None,
    skip_invalid: bool = False,
    encoding_errors: str = "strict",
    limit_outputs: bool = True,
    limit_name: str = "--max-len",
    fix: str = "pass --skip-invalid",
    normalize: str = "none",
    labels: bool = False,
) -> PairsFile:
    """Parse `input<TAB>output` rows; invalid rows stop (default) or are skipped.

    max_len: longest valid input (None: any), and output when limit_outputs; limit_name
    is how messages call it, and `fix` what the error about invalid rows advises.
    encoding_errors="replace" reads invalid UTF-8 as U+FFFD instead of an invalid row.
    Rows are brought to the `normalize` form first (lengths count its characters).
    `labels`: the output is a label (--arch label): any length, but not empty."""
    name = display_name(path)
    stream = open_binary(path)
    result = PairsFile(name=name, pairs=[], line_nos=[])
    first_output: dict[str, tuple[str, int]] = {}  # input -> (its first output, line)
    seen_pairs: set[tuple[str, str]] = set()
    conflicting: set[str] = set()
    try:
        for line_no, raw in iter_raw_lines(stream):
            try:
                text = normalization.normalize(normalize, raw.decode("utf-8", errors=encoding_errors))
            except UnicodeDecodeError as e:
                reason = f"not valid UTF-8 (byte {e.start + 1} of the line)"
                result.invalid.append(InvalidRow(line_no, reason, "not valid UTF-8"))
                continue
            if text.strip() == "" and "\t" not in text:
                continue  # blank lines are not pairs
            problem = _row_problem(text, max_len, limit_outputs, limit_name, labels)
            if problem:
                result.invalid.append(InvalidRow(line_no, *problem))
                continue
            src, tgt = text.split("\t")
            if (src, tgt) in seen_pairs:
                result.duplicates += 1
                result.first_duplicate = result.first_duplicate or line_no
            seen_pairs.add((src, tgt))
            first = first_output.setdefault(src, (tgt, line_no))
            if first[0] != tgt:
                if not conflicting:
                    result.first_conflict = (
                        f"line {line_no}: input {src!r} has output {tgt!r},"
                        f" line {first[1]} has {first[0]!r}"
                    )
                conflicting.add(src)
            result.pairs.append((src, tgt))
            result.line_nos.append(line_no)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    result.conflicts = len(conflicting)
    check_usable(name, len(result.pairs), len(result.invalid), result.describe_invalid(), skip_invalid, fix)
    return result


def check_usable(
    name: str, n_pairs: int, n_invalid: int, invalid_detail: str, skip_invalid: bool, fix: str = "pass --skip-invalid"
) -> None:
    """Stop on invalid rows (unless skipped) and on files without a single pair."""
    if n_invalid and not skip_invalid:
        raise TransducerError(f"{name}: {n_invalid} invalid row(s): {invalid_detail} (fix them or {fix})")
    if not n_pairs:
        what = "only invalid rows" if n_invalid else "no pairs"
        raise TransducerError(f"{name}: {what}; expected lines of the form input<TAB>output")


TOO_LONG = ("input too long", "output too long")  # the kinds of invalid rows --max-len decides


def row_length(text: str, labels: bool = False) -> int:
    """The --max-len a valid `input<TAB>output` row needs (a label's length is free)."""
    src, tgt = text.split("\t")
    return len(src) if labels else max(len(src), len(tgt))


def fix_for_long_rows(longest: int, fix: str = "pass --skip-invalid") -> str:
    """The advice of the invalid-rows error, with the --max-len that fits the longest row
    when rows were too long (longest: its characters; 0: none was)."""
    return f"{fix}; the longest row is {longest} characters: --max-len {longest} fits it" if longest else fix


def _row_problem(
    text: str, max_len: int | None, limit_outputs: bool = True, limit_name: str = "--max-len", labels: bool = False
) -> tuple[str, str] | None:
    """(reason, kind) for an invalid row, None for a valid one (see read_pairs). With
    `labels` the output is a label (--arch label): no length limit, but not empty."""
    tabs = text.count("\t")
    if tabs == 0:
        return "no tab (expected input<TAB>output)", "no tab"
    if tabs > 1:
        return f"{tabs} tabs (expected exactly one)", "more than one tab"
    src, tgt = text.split("\t")
    if src == "":
        return "empty input", "empty input"
    if max_len is not None and len(src) > max_len:
        return f"input is {len(src)} characters, longer than {limit_name} {max_len}", "input too long"
    if labels:
        return ("empty label", "empty label") if tgt == "" else None
    if max_len is not None and limit_outputs and len(tgt) > max_len:
        return f"output is {len(tgt)} characters, longer than {limit_name} {max_len}", "output too long"
    return None


