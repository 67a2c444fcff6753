import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from transducer.vocab import END_ID, PAD_ID, RESERVED, UNK_ID, Vocab, one_hot


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
