"""Vocabularies and the configured reading of a sentence's fields."""

import pytest

from mesimp.config import TagSet
from mesimp.data.treebank import Sentence
from mesimp.data.vocab import NULL, ROOT, UNK, UNLABELED, Fields, Vocab
from mesimp.errors import UserError


def test_vocab_specials_and_unknowns():
    vocab = Vocab(["b", "a"])
    assert vocab.itos[:3] == [NULL, UNK, ROOT] and vocab["zzz"] == vocab[UNK] and vocab["a"] == 4
    assert Vocab(["x", "y"], specials=())["zzz"] == 0  # no UNK: the first symbol


def test_fields_pick_tags_words_and_labels():
    s = Sentence(["Dogs", "bark"], ["NOUN", "VERB"], ["NNS", "VBP"], [2, 0], ["nsubj:x", "root"], "t:1")
    assert Fields(True, TagSet.xpos).tags(s) == ["NNS", "VBP"] and Fields(True, TagSet.upos).tags(s) == ["NOUN", "VERB"]
    assert Fields(True, TagSet.xpos).word("Dogs") == "dogs" and Fields(False, TagSet.xpos).word("Dogs") == "Dogs"
    assert Fields(True, TagSet.xpos).labels(s) == ["nsubj", "root"]
    assert Fields(True, TagSet.xpos, label_subtypes=True).labels(s) == ["nsubj:x", "root"]
    unlabeled = Sentence(["a"], None, ["DT"], [0], None, "t:9")
    assert Fields(True, TagSet.xpos).labels(unlabeled) == [UNLABELED]
    with pytest.raises(UserError, match="^t:9: data.tagset=upos"):
        Fields(True, TagSet.upos).tags(unlabeled)
