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
        """(batch, length) ids and the total count of unknown characters."""
        out = np.full((len(strings), length), fill, dtype=np.int32)  # (B, T)
        unknown = 0
        for b, s in enumerate(strings):
            out[b], u = self.encode(s, length, fill)
            unknown += u
        return out, unknown

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

    def to_json(self) -> list[str]:
        return list(self.symbols)

    @classmethod
    def from_json(cls, symbols: list[str]) -> "Vocab":
        return cls(tuple(symbols))


def one_hot(ids: np.ndarray, depth: int) -> np.ndarray:
    """(B, T) int ids -> (B, T, depth) float32 one-hot."""
    return np.eye(depth, dtype=np.float32)[ids]  # (B, T, depth)
