"""Character vocabularies: the map between characters and integer ids.

Ids 0..3 are reserved and spelled so they can never collide with one character:
  0 <pad>  fills input positions past the end of the string
  1 <unk>  any input character not seen in training
  2 <s>    start symbol fed to the seq2seq decoder at step 0
  3 </s>   end of output: the aligned model fills target positions past the end with it,
           the seq2seq decoder emits it to stop
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

PAD, UNK, START, END = "<pad>", "<unk>", "<s>", "</s>"
RESERVED = (PAD, UNK, START, END)
PAD_ID, UNK_ID, START_ID, END_ID = range(4)


@dataclass(frozen=True)
class Vocab:
    symbols: tuple[str, ...]  # id -> symbol; the first four are RESERVED

    def __post_init__(self):
        if tuple(self.symbols[:4]) != RESERVED:
            raise ValueError("vocabulary must start with the reserved symbols")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("vocabulary has duplicate symbols")
        object.__setattr__(self, "_index", {s: i for i, s in enumerate(self.symbols)})
        object.__setattr__(self, "_tables", None)  # built on first batch use, see _codepoint_tables

    @classmethod
    def from_strings(cls, strings: Iterable[str]) -> "Vocab":
        """All characters of `strings`, sorted so the same data gives the same ids."""
        chars: set[str] = set()
        for s in strings:
            chars.update(s)
        return cls(RESERVED + tuple(sorted(chars)))

    def __len__(self) -> int:
        return len(self.symbols)

    def id_of(self, char: str) -> int:
        return self._index.get(char, UNK_ID)

    def encode(self, s: str, length: int, fill: int = PAD_ID) -> tuple[np.ndarray, int]:
        """Ids of `s` padded with `fill` to `length`, and the number of unknown characters."""
        ids = np.full(length, fill, dtype=np.int32)  # (length,)
        unknown = 0
        for t, ch in enumerate(s[:length]):
            i = self._index.get(ch, UNK_ID)
            unknown += i == UNK_ID
            ids[t] = i
        return ids, unknown

    def encode_batch(self, strings: list[str], length: int, fill: int = PAD_ID) -> tuple[np.ndarray, int]:
        """(batch, length) ids and the total count of unknown characters.

        Vectorised: all strings are joined, turned into code points in one call and looked
        up in a code point -> id table, then scattered into the padded array."""
        out = np.full((len(strings), length), fill, dtype=np.int32)  # (B, T)
        clipped = [s[:length] for s in strings]
        lens = np.fromiter(map(len, clipped), dtype=np.int64, count=len(clipped))  # (B,)
        total = int(lens.sum())
        if total == 0:
            return out, 0
        to_id, _ = self._codepoint_tables()
        cps = np.frombuffer("".join(clipped).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        ids = to_id[np.minimum(cps, len(to_id) - 1)]  # (N,); the last entry is <unk>
        starts = np.cumsum(lens) - lens  # (B,)
        rows = np.repeat(np.arange(len(clipped)), lens)  # (N,)
        out[rows, np.arange(total) - np.repeat(starts, lens)] = ids
        return out, int(np.count_nonzero(ids == UNK_ID))

    def decode(self, ids: Iterable[int]) -> str:
        """Characters up to the first </s> (or <pad>); other reserved ids are dropped."""
        chars = []
        for i in ids:
            i = int(i)
            if i in (END_ID, PAD_ID):
                break
            if i >= 4:
                chars.append(self.symbols[i])
        return "".join(chars)

    def decode_batch(self, ids: np.ndarray) -> list[str]:
        """`decode` for each row of (B, T) ids, vectorised: ids -> code points (0 for
        reserved ids and after the first end), and each row read as one numpy string."""
        _, to_cp = self._codepoint_tables()
        if to_cp is None:  # a symbol longer than one character: no code point table
            return [self.decode(row) for row in ids]
        ids = np.asarray(ids)
        B, T = ids.shape
        ended = np.cumsum((ids == END_ID) | (ids == PAD_ID), axis=1) > 0  # (B, T)
        cps = np.where(ended, 0, to_cp[ids]).astype(np.uint32)  # (B, T)
        # numpy drops trailing NULs of a string; a NUL before the end is a dropped
        # reserved id (<unk>, <s>) and is removed explicitly.
        texts = np.ascontiguousarray(cps).view(f"<U{T}").reshape(B).tolist() if T else [""] * B
        inner = np.flatnonzero(((cps == 0) & ~ended).any(axis=1))
        for b in inner:
            texts[b] = texts[b].replace("\x00", "")
        return texts

    def _codepoint_tables(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(code point -> id, with one trailing <unk> entry for anything larger;
        id -> code point, 0 for reserved ids, or None if a symbol is not one character)."""
        if self._tables is None:
            chars = {s: i for i, s in enumerate(self.symbols) if i >= 4 and len(s) == 1}
            top = max((ord(c) for c in chars), default=0)
            to_id = np.full(top + 2, UNK_ID, dtype=np.int32)
            for c, i in chars.items():
                to_id[ord(c)] = i
            to_cp = None
            if len(chars) == len(self.symbols) - 4 and "\x00" not in chars:  # 0 marks "no character"
                to_cp = np.zeros(len(self.symbols), dtype=np.uint32)
                for c, i in chars.items():
                    to_cp[i] = ord(c)
            object.__setattr__(self, "_tables", (to_id, to_cp))
        return self._tables

    def to_json(self) -> list[str]:
        return list(self.symbols)

    @classmethod
    def from_json(cls, symbols: list[str]) -> "Vocab":
        return cls(tuple(symbols))


@dataclass(frozen=True)
class Labels:
    """The output vocabulary of a label model (`--arch label`): whole strings, one id each.

    No reserved ids: id i is output i of the softmax. Sorted, so the same training labels
    give the same ids."""

    symbols: tuple[str, ...]  # id -> label

    def __post_init__(self):
        if not self.symbols:
            raise ValueError("a label model needs at least one label")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("labels has duplicates")
        object.__setattr__(self, "_index", {s: i for i, s in enumerate(self.symbols)})

    @classmethod
    def from_strings(cls, labels: Iterable[str]) -> "Labels":
        return cls(tuple(sorted(set(labels))))

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, label: str) -> bool:
        return label in self._index

    def id_of(self, label: str) -> int:
        """The label's id, or -1 for a label never seen in training."""
        return self._index.get(label, -1)

    def to_json(self) -> list[str]:
        return list(self.symbols)

    @classmethod
    def from_json(cls, symbols: list[str]) -> "Labels":
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise ValueError("labels must be a list of strings")
        return cls(tuple(symbols))


def one_hot(ids: np.ndarray, depth: int) -> np.ndarray:
    """(B, T) int ids -> (B, T, depth) float32 one-hot."""
    return np.eye(depth, dtype=np.float32)[ids]  # (B, T, depth)
