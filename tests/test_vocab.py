import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from transducer.core.vocab import END_ID, PAD_ID, RESERVED, UNK_ID, Vocab, one_hot


def test_vocab_is_sorted_and_starts_with_reserved_symbols():
    v = Vocab.from_strings(["cab", "b"])
    assert v.symbols == RESERVED + ("a", "b", "c")
    assert len(v) == 7


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=20))
def test_encode_decode_round_trip(strings):
    v = Vocab.from_strings(strings)
    for s in strings:
        ids, unknown = v.encode(s, 20, fill=END_ID)
        assert unknown == 0
        assert ids.shape == (20,)
        assert v.decode(ids) == s


def test_unknown_characters_map_to_unk_and_are_counted():
    v = Vocab.from_strings(["abc"])
    ids, unknown = v.encode("axb", 5)
    assert unknown == 1
    assert ids.tolist() == [v.id_of("a"), UNK_ID, v.id_of("b"), PAD_ID, PAD_ID]


def test_batch_encoding_and_one_hot_shapes():
    v = Vocab.from_strings(["hello", "world"])
    ids, _ = v.encode_batch(["hello", "wo", ""], 8)
    assert ids.shape == (3, 8)
    x = one_hot(ids, len(v))
    assert x.shape == (3, 8, len(v))
    assert np.all(x.sum(axis=-1) == 1.0)


def test_vocab_json_round_trip():
    v = Vocab.from_strings(["ab\u0301c", "😀"])
    assert Vocab.from_json(v.to_json()) == v


@given(
    st.lists(st.text(max_size=12), min_size=1, max_size=8),
    st.lists(st.text(max_size=12), max_size=8),
    st.integers(1, 10),
)
def test_batch_encode_and_decode_match_the_per_string_versions(train, inputs, length):
    """The vectorised paths (used by predict) agree with encode/decode string by string,
    for unknown characters, truncation, astral characters and reserved ids mid-string."""
    v = Vocab.from_strings(train)
    ids, unknown = v.encode_batch(inputs, length, fill=PAD_ID)
    assert ids.shape == (len(inputs), length)
    for row, s in zip(ids, inputs):
        assert row.tolist() == v.encode(s, length)[0].tolist()
    assert unknown == sum(v.encode(s, length)[1] for s in inputs)
    rng = np.random.default_rng(len(inputs) + length)
    noisy = rng.integers(0, len(v), size=(len(inputs) + 1, length))  # any ids, reserved included
    assert v.decode_batch(noisy) == [v.decode(row) for row in noisy]
    assert v.decode_batch(ids) == [v.decode(row) for row in ids]
