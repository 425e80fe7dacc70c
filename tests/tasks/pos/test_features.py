"""The 7 spelling features and the word key."""

import pytest

from mesimp.tasks.pos.features import CLOSED, FEATURES, features_of, word_key


@pytest.mark.parametrize("form,case,digits,symbols", [
    ("the", "lower", "none", "none"),
    ("Paris", "title", "none", "none"),
    ("A", "title", "none", "none"),
    ("IBM", "upper", "none", "none"),
    ("iPod", "mixed", "none", "none"),
    ("1989", "none", "all", "none"),
    ("3.5", "none", "number", "other"),
    ("1,000", "none", "number", "other"),
    ("1980s", "lower", "some", "none"),
    ("well-known", "lower", "none", "hyphen"),
    ("--", "none", "none", "punct"),
    ("$", "none", "none", "other"),
])
def test_closed_features(form, case, digits, symbols):
    values = dict(zip(FEATURES, features_of(form)))
    assert (values["case"], values["digits"], values["symbols"]) == (case, digits, symbols)
    assert all(values[name] in allowed for name, allowed in CLOSED.items())


def test_affixes_are_lowercased_and_short_words_are_whole():
    values = dict(zip(FEATURES, features_of("Running")))
    assert (values["prefix2"], values["prefix3"], values["suffix2"], values["suffix3"]) == ("ru", "run", "ng", "ing")
    assert features_of("I")[1:5] == ("i", "i", "i", "i")


def test_word_key_lowercases_and_folds_digits():
    assert word_key("The") == "the" and word_key("1989") == word_key("2001") == "0000"
    assert word_key("The", lowercase=False) == "The"
