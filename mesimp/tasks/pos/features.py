"""The tagger's inputs for one word: the word itself and 7 spelling features (the paper's "7 features").

The paper gives the count (7 x 20 dims) but not the features. These are the standard spelling features of
neural taggers (Collobert et al. 2011; Huang et al. 2015), chosen to carry what the word embedding cannot
for rare and unknown words:

1. ``case``: lower, title ("Paris"), upper ("IBM"; two letters or more), mixed ("iPod"), none (no letters)
2. ``prefix2``, 3. ``prefix3``: the first 2 / 3 characters, lowercased (the whole word when shorter)
4. ``suffix2``, 5. ``suffix3``: the last 2 / 3 characters, lowercased ("-ed", "-ing", "-ly" ...)
6. ``digits``: none, all ("1989"), number ("3.5", "1,000", "1/2": digits and . , / - only), some ("1980s")
7. ``symbols``: none, hyphen inside letters ("well-known"), punctuation only ("--", "."), other (has a non
   letter-digit character, as "$" or "'s")

The word itself is lowercased (``data.lowercase``, default true: the case feature keeps what that loses),
with every digit written as 0 ("1989" and "2001" share one embedding).
Affix vocabularies come from the training data; an affix never seen in training gets the unknown id.
"""

from __future__ import annotations

import re
import unicodedata

FEATURES = ("case", "prefix2", "prefix3", "suffix2", "suffix3", "digits", "symbols")
CASES = ("lower", "title", "upper", "mixed", "none")
DIGITS = ("none", "all", "number", "some")
SYMBOLS = ("none", "hyphen", "punct", "other")
CLOSED = {"case": CASES, "digits": DIGITS, "symbols": SYMBOLS}  # features with a fixed set of values

_DIGIT = re.compile(r"[0-9]")
_NUMBER = re.compile(r"[0-9]+([.,/-][0-9]+)*")
_HYPHENATED = re.compile(r"\w+(-\w+)+")


def word_key(form: str, lowercase: bool = True) -> str:
    """The word embedding's key: lowercased (unless told not to), digits as 0."""
    return _DIGIT.sub("0", form.lower() if lowercase else form)


def case_of(form: str) -> str:
    letters = [c for c in form if c.isalpha()]
    if not letters:
        return "none"
    if all(c.islower() for c in letters):
        return "lower"
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return "upper"
    if letters[0].isupper() and all(c.islower() for c in letters[1:]):
        return "title"
    return "mixed"


def digits_of(form: str) -> str:
    if not _DIGIT.search(form):
        return "none"
    if form.isdigit():
        return "all"
    return "number" if _NUMBER.fullmatch(form) else "some"


def symbols_of(form: str) -> str:
    if all(c.isalnum() for c in form):
        return "none"
    if _HYPHENATED.fullmatch(form):
        return "hyphen"
    if all(unicodedata.category(c)[0] == "P" for c in form):
        return "punct"
    return "other"


def features_of(form: str) -> tuple[str, ...]:
    """The 7 feature values of a word form, in the order of ``FEATURES``."""
    lower = form.lower()
    return (case_of(form), lower[:2], lower[:3], lower[-2:], lower[-3:], digits_of(form), symbols_of(form))
