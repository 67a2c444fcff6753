"""Unicode normalization (`train --normalize`), one definition for training and inference.

The model works on one normalization form of the text, chosen at training time and stored
in config.json (`model.normalize`). Training pairs (both sides), prediction inputs and
evaluation pairs are all brought to that form before anything counts their characters, so
`max_len` is a length of the *normalized* string. A decomposed model (nfd, nfkd) writes its
outputs composed (NFC), the form most text is stored in.

Why it matters: NFD writes a Hangul syllable as its 2-3 letters (jamo) and "é" as "e" plus
a combining accent, so a character-level model sees a small alphabet whose letters are all
frequent instead of thousands of rare precomposed symbols.
"""

from __future__ import annotations

import unicodedata

# Bytes of UTF-8 input that can become one character of the normalized form. NFD/NFKD
# never shrink a string (each character decomposes into one or more), so 4 bytes (one
# character) is the bound, as without normalization. NFC/NFKC compose: one character
# comes from at most 4 code points (the longest canonical decomposition; a Hangul syllable
# is 3), each at most 4 bytes.
BYTES_PER_CHAR = {"none": 4, "nfd": 4, "nfkd": 4, "nfc": 16, "nfkc": 16}
# Input characters that can become one character of the normalized form (see above).
CHARS_PER_CHAR = {"none": 1, "nfd": 1, "nfkd": 1, "nfc": 4, "nfkc": 4}


def normalize(form: str, text: str) -> str:
    """`text` in the model's form ("none" leaves it as it is)."""
    return text if form == "none" else unicodedata.normalize(form.upper(), text)


def for_output(form: str, text: str) -> str:
    """What the user sees of a model-form string: composed (NFC) for a normalizing model
    (NFC of NFKD text is its NFKC), unchanged for "none"."""
    return text if form == "none" else unicodedata.normalize("NFC", text)


def byte_limit(form: str, max_len: int) -> int:
    """Bytes of a UTF-8 line (plus "\\r\\n") beyond which its normalized form is certainly
    longer than max_len characters."""
    return BYTES_PER_CHAR[form] * max_len + 2


def head(form: str, text: str, max_len: int) -> str:
    """The first max_len characters of the normalized form of `text`, which may be only
    the beginning of a line (a prefix long enough for max_len normalized characters)."""
    return normalize(form, text)[:max_len]


def head_chars(form: str, max_len: int) -> int:
    """Input characters to read for `head`: enough for max_len normalized ones, plus a few
    so that the marks following the last one are seen."""
    return CHARS_PER_CHAR[form] * max_len + (0 if form == "none" else 4)
