"""English front end: parity with the official Grad-TTS ``text_to_sequence`` + cleaners."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import REF, REF_MISSING

from gradtts_tf.text import (
    ARPABET,
    BLANK_ID,
    N_VOCAB,
    ids_to_text,
    intersperse,
    load_cmudict,
    symbols,
    text_to_ids,
    text_to_phonemes,
    text_to_sequence,
    text_to_symbols,
)
from gradtts_tf.text.cleaners import clean_text, english_cleaners

# Read at collection time (the cases parametrize a test); without the folder those
# tests skip (conftest) and the rest of the module still runs.
TEXT_CASES = (
    json.loads((REF / "text_cases.json").read_text(encoding="utf-8")) if REF.is_dir()
    else {"symbols": None, "blank_id": None, "cases": []}
)
SID = {s: i for i, s in enumerate(symbols)}


def _letters(word: str) -> list[int]:
    return [SID[c] for c in word]


def _phones(pron: str) -> list[int]:
    return [SID["@" + p] for p in pron.split()]


# --- symbol table -----------------------------------------------------------------------


@pytest.mark.skipif(not REF.is_dir(), reason=REF_MISSING)
def test_symbol_table_matches_official():
    assert symbols == TEXT_CASES["symbols"]
    assert len(symbols) == 148
    assert BLANK_ID == TEXT_CASES["blank_id"] == 148
    assert N_VOCAB == 149
    assert len(ARPABET) == 84
    assert symbols[-84:] == ["@" + p for p in ARPABET]


# --- official parity --------------------------------------------------------------------


@pytest.mark.parametrize("case", TEXT_CASES["cases"], ids=lambda c: c["text"][:30])
def test_matches_official_ids(case):
    assert text_to_ids(case["text"], add_blank=False) == case["ids"]
    assert text_to_ids(case["text"], add_blank=True) == case["ids_with_blank"]
    assert text_to_ids(case["text"]) == case["ids_with_blank"]  # blanks on by default


def test_intersperse():
    assert intersperse([1, 2, 3], 0) == [0, 1, 0, 2, 0, 3, 0]
    assert intersperse([], 9) == [9]


# --- cleaners ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        # currency
        ("$3.50", "three dollars, fifty cents"),
        ("$1", "one dollar"),
        ("$0.01", "one cent"),
        ("$1.00", "one dollar"),
        ("$0", "zero dollars"),
        ("$12,000", "twelve thousand dollars"),
        ("$1,500", "fifteen hundred dollars"),  # official: 1001..2999 read like years
        ("£20", "twenty pounds"),
        ("£1,000", "one thousand pounds"),
        # ordinals
        ("1st 2nd 3rd 21st 5th", "first second third twenty-first fifth"),
        # decimals and digit-group commas
        ("3.5", "three point five"),
        ("1,234,567", "one million, two hundred thirty-four thousand, five hundred sixty-seven"),
        # plain numbers and year-like readings
        ("42", "forty-two"),
        ("101", "one hundred one"),
        ("1999", "nineteen ninety-nine"),
        ("2000", "two thousand"),
        ("2005", "two thousand five"),
        ("1900", "nineteen hundred"),
        ("2013", "twenty thirteen"),
        ("1000", "one thousand"),
        ("3000", "three thousand"),
        # abbreviations (only with a period)
        ("Mr. and Mrs. Smith", "mister and misess smith"),
        ("Dr. Jones, St. Paul, Capt. Kirk", "doctor jones, saint paul, captain kirk"),
        ("Lt. Col. Gen. Maj. Sgt. Jr. Ltd. Co. Ft. Rev. Hon. Esq. Drs.",
         "lieutenant colonel general major sergeant junior limited company fort "
         "reverend honorable esquire doctors"),
        ("st louis", "st louis"),
        # transliteration, lowercase, whitespace
        ("Café  naïve\tCoöperate\nÉLAN", "cafe naive cooperate elan"),
    ],
)
def test_english_cleaners(raw, cleaned):
    assert english_cleaners(raw) == cleaned


def test_other_cleaners_and_unknown_cleaner():
    assert clean_text("Café  1", "basic_cleaners") == "café 1"
    assert clean_text("Café  1", ["transliteration_cleaners"]) == "cafe 1"
    with pytest.raises(ValueError, match="Unknown cleaner 'nope'"):
        text_to_ids("hello", cleaners="nope")


# --- dictionary lookup ------------------------------------------------------------------


def test_cmudict_is_cached_and_first_valid_pronunciation():
    d = load_cmudict()
    assert d is load_cmudict()
    assert len(d) > 100_000
    assert d["READ"] == "R EH1 D"  # first of two pronunciations
    assert d["IT'S"] == "IH1 T S"
    assert all(p in ARPABET for p in d["PRINTING"].split())


def test_words_looked_up_as_split_on_spaces():
    # "world," keeps its comma, is not in the dictionary, and is spelled with letters;
    # "hello" becomes phonemes; the trailing space is removed.
    expected = _phones("HH AH0 L OW1") + [SID[" "]] + _letters("world,")
    assert text_to_ids("Hello world,", add_blank=False) == expected
    assert text_to_ids("Hello world", add_blank=False) == (
        _phones("HH AH0 L OW1") + [SID[" "]] + _phones("W ER1 L D")
    )
    assert text_to_phonemes("Hello, world") == ["W", "ER1", "L", "D"]
    assert text_to_symbols("Hello, world")[:7] == ["h", "e", "l", "l", "o", ",", " "]


def test_without_cmudict_spells_letters():
    assert text_to_ids("Hi, Bob.", add_blank=False, use_cmudict=False) == _letters("hi, bob.")


def test_phonemes_use_table_without_prefix():
    phones = text_to_phonemes("The quick brown fox jumps over the lazy dog.")
    assert phones[:5] == ["DH", "AH0", "K", "W", "IH1"]
    assert set(phones) <= set(ARPABET)
    assert "dog." not in phones and "D" not in phones[-3:]  # "dog." falls back to letters


# --- braces -----------------------------------------------------------------------------


def test_braces_pass_arpabet_through():
    ids = text_to_ids("Turn left on {HH AW1 S T AH0 N} Street.", add_blank=False)
    # Text before a brace group is cleaned but not looked up; after it, it is.
    expected = (
        _letters("turn left on ")
        + _phones("HH AW1 S T AH0 N")
        + [SID[" "]]  # empty first word of " street." keeps its space
        + _letters("street.")
    )
    assert ids == expected
    assert ids_to_text(ids) == "turn left on {HH AW1 S T AH0 N} street."
    with_blank = text_to_ids("Turn left on {HH AW1 S T AH0 N} Street.")
    assert with_blank == intersperse(expected, BLANK_ID)
    assert ids_to_text(with_blank) == ids_to_text(ids)


def test_braces_only_and_multiple_groups():
    assert text_to_ids("{HH AH0} {L OW1}", add_blank=False) == (
        _phones("HH AH0") + [SID[" "]] + _phones("L OW1")
    )
    assert text_to_phonemes("{K AE1 T}") == ["K", "AE1", "T"]


# --- unknown characters and errors --------------------------------------------------------


def test_unknown_characters_dropped_with_warning(caplog):
    text = "Hello 😀 world # ok~"
    with caplog.at_level(logging.WARNING, logger="gradtts_tf.text"):
        ids = text_to_ids(text, add_blank=False)
    assert all(0 <= i < len(symbols) for i in ids)
    expected = (
        _phones("HH AH0 L OW1")
        + [SID[" "]]  # the emoji vanishes in transliteration, before whitespace collapse
        + _phones("W ER1 L D")
        + [SID[" "]]
        + [SID[" "]]  # "#" is dropped after the split, so its word slot keeps a space
        + _letters("ok")  # "ok~" is not a dictionary word
    )
    assert ids == expected
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 1
    for needle in ("😀", "'#'", "'~'", repr(text)):
        assert needle in messages[0]


def test_unknown_arpabet_in_braces_warned(caplog):
    with caplog.at_level(logging.WARNING, logger="gradtts_tf.text"):
        ids = text_to_ids("{HH XX AH0}", add_blank=False)
    assert ids == _phones("HH AH0")
    assert "{XX}" in caplog.text


def test_clean_text_does_not_warn(caplog):
    with caplog.at_level(logging.WARNING, logger="gradtts_tf.text"):
        text_to_ids("Mr. Smith paid $3.50 for 2 apples; (yes) -- it's 10:30!")
    assert caplog.records == []


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty or whitespace"),
        ("   \n\t", "empty or whitespace"),
        ("?! ... -- ,", "no letters or phonemes"),
        ("😀😀", "no letters or phonemes"),
        ("# ~ _", "no letters or phonemes"),
    ],
)
def test_unspeakable_text_raises(text, why):
    with pytest.raises(ValueError, match=why) as info:
        text_to_ids(text)
    assert repr(text) in str(info.value)


def test_non_string_raises_type_error():
    with pytest.raises(TypeError, match="must be a str"):
        text_to_sequence(b"hello")  # type: ignore[arg-type]


def test_ids_to_text_rejects_out_of_range():
    assert ids_to_text([BLANK_ID, SID["a"], BLANK_ID]) == "a"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        ids_to_text([N_VOCAB])
