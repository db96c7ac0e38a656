"""English text front end: raw text -> symbol ids for the Grad-TTS text encoder.

Reproduces the official ``text_to_sequence(text, dictionary=cmu)`` followed by
``intersperse(ids, len(symbols))``:

* the text is cleaned (ASCII, lowercase, numbers and abbreviations spelled out,
  whitespace collapsed) and split on single spaces; each word is looked up in
  the CMU dictionary *as is*, so ``"world,"`` (punctuation attached) is not
  found and is spelled with letters, while ``"world"`` becomes ARPAbet ids;
* ``{HH AH0 L OW1}`` in the input passes ARPAbet through untouched (the text
  before a brace group is cleaned but not looked up in the dictionary);
* a space id follows every word and the final one is removed.

Characters outside the symbol table are dropped with a ``logging`` warning
(logger ``gradtts_tf.text``); text with nothing speakable raises ``ValueError``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import TypeVar

from unidecode import unidecode

from gradtts_tf.text.cleaners import CLEANERS, clean_text, english_cleaners
from gradtts_tf.text.cmudict import load_cmudict, lookup
from gradtts_tf.text.symbols import (
    ARPABET,
    ARPABET_PREFIX,
    BLANK_ID,
    ID_TO_SYMBOL,
    N_VOCAB,
    PAD,
    SPACE_ID,
    SYMBOL_TO_ID,
    symbols,
)

__all__ = [
    "ARPABET",
    "BLANK_ID",
    "CLEANERS",
    "N_VOCAB",
    "english_cleaners",
    "ids_to_text",
    "intersperse",
    "load_cmudict",
    "symbols",
    "text_to_ids",
    "text_to_phonemes",
    "text_to_sequence",
    "text_to_symbols",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# DOTALL (unlike the official regex) so a newline after a brace group does not
# silently cut off the rest of the text; identical for single-line text.
_CURLY_RE = re.compile(r"(.*?)\{(.+?)\}(.*)", re.DOTALL)

# Never emitted even if present in the table (official ``_should_keep_symbol``).
_NEVER_KEEP = frozenset({PAD, "~"})
_FIRST_LETTER_ID = SYMBOL_TO_ID["A"]
_FIRST_ARPABET_ID = SYMBOL_TO_ID[ARPABET_PREFIX + ARPABET[0]]


def intersperse(items: Sequence[T], item: T) -> list[T]:
    """Puts ``item`` before, between and after the elements of ``items``.

    Args:
        items: Sequence of length ``N``.
        item: Element to insert (the blank id for Grad-TTS).

    Returns:
        List of length ``2 * N + 1``: ``[item, items[0], item, ..., items[-1], item]``.
    """
    result = [item] * (2 * len(items) + 1)
    result[1::2] = items
    return result


def _chars_to_ids(text: str, dropped: list[str]) -> list[int]:
    ids = []
    for ch in text:
        idx = SYMBOL_TO_ID.get(ch)
        if idx is None or ch in _NEVER_KEEP:
            dropped.append(ch)
        else:
            ids.append(idx)
    return ids


def _arpabet_to_ids(phones: str, dropped: list[str]) -> list[int]:
    ids = []
    for phone in phones.split():
        idx = SYMBOL_TO_ID.get(ARPABET_PREFIX + phone)
        if idx is None:
            dropped.append("{" + phone + "}")
        else:
            ids.append(idx)
    return ids


def _words_to_ids(cleaned: str, use_cmudict: bool, dropped: list[str]) -> list[int]:
    if not use_cmudict:
        return _chars_to_ids(cleaned, dropped)
    ids: list[int] = []
    # Split on single spaces, not str.split(): a leading/trailing space yields an
    # empty word and hence an extra space id, exactly as in the official code.
    for word in cleaned.split(" "):
        pron = lookup(word)
        if pron is not None:
            ids += _arpabet_to_ids(pron, dropped)
        elif word.startswith("{"):
            # Official quirk: an unmatched "{word" is read as ARPAbet (and dropped).
            ids += _arpabet_to_ids(word[1:-1], dropped)
        else:
            ids += _chars_to_ids(word, dropped)
        ids.append(SPACE_ID)
    return ids


def _untransliterable(text: str) -> list[str]:
    """Characters that ``unidecode`` deletes (emoji, ...), so they can be reported."""
    return [ch for ch in text if not ch.isascii() and not unidecode(ch)]


def _warn_dropped(text: str, dropped: Iterable[str]) -> None:
    unique = sorted(set(dropped))
    if unique:
        logger.warning(
            "Dropped %d unsupported character(s)/ARPAbet symbol(s) %s from text %r",
            len(unique),
            unique,
            text,
        )


def text_to_sequence(
    text: str,
    cleaners: str | Sequence[str] = "english_cleaners",
    use_cmudict: bool = True,
) -> list[int]:
    """Converts text to symbol ids without blanks (official ``text_to_sequence``).

    Args:
        text: Raw text; ``{...}`` groups hold ARPAbet passed through verbatim.
        cleaners: Cleaner name(s) from :data:`CLEANERS`.
        use_cmudict: Look words up in the CMU dictionary (official inference and
            training use it); otherwise every word is spelled with letters.

    Returns:
        Ids ``[T_x]`` in ``[0, len(symbols))``.

    Raises:
        TypeError: If ``text`` is not a string.
        ValueError: If the text is empty, or no letter or phoneme survives cleaning
            (e.g. only punctuation or emoji).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}: {text!r}")
    if not text.strip():
        raise ValueError(
            f"Cannot convert text to ids: {text!r} is empty or whitespace only; "
            "give at least one word to speak."
        )
    dropped: list[str] = _untransliterable(text)
    ids: list[int] = []
    rest = text
    while rest:
        m = _CURLY_RE.match(rest)
        if m is None:
            ids += _words_to_ids(clean_text(rest, cleaners), use_cmudict, dropped)
            break
        ids += _chars_to_ids(clean_text(m.group(1), cleaners), dropped)
        ids += _arpabet_to_ids(m.group(2), dropped)
        rest = m.group(3)
    if use_cmudict and ids and ids[-1] == SPACE_ID:
        ids.pop()
    _warn_dropped(text, dropped)
    if not any(i >= _FIRST_LETTER_ID for i in ids):
        raise ValueError(
            f"Cannot convert text to ids: {text!r} contains no letters or phonemes "
            f"after cleaning (cleaned: {clean_text(text, cleaners)!r}); "
            "punctuation, symbols or emoji alone cannot be spoken."
        )
    return ids


def text_to_ids(
    text: str,
    add_blank: bool = True,
    *,
    cleaners: str | Sequence[str] = "english_cleaners",
    use_cmudict: bool = True,
) -> list[int]:
    """Converts text to the id sequence fed to the Grad-TTS text encoder.

    Args:
        text: Raw English text, e.g. ``"Hello, world."`` or
            ``"Turn left on {HH AW1 S T AH0 N} Street."``.
        add_blank: Intersperse :data:`BLANK_ID` (148) around every symbol, as
            the official models are trained (``add_blank=True``).
        cleaners: Cleaner name(s) from :data:`CLEANERS`.
        use_cmudict: Convert dictionary words to ARPAbet phonemes.

    Returns:
        Ids ``[T_x]`` in ``[0, N_VOCAB)``; ``T_x = 2 * n + 1`` with blanks.

    Raises:
        TypeError: If ``text`` is not a string.
        ValueError: If nothing speakable is left after cleaning.
    """
    ids = text_to_sequence(text, cleaners=cleaners, use_cmudict=use_cmudict)
    return intersperse(ids, BLANK_ID) if add_blank else ids


def text_to_symbols(text: str, **kwargs: object) -> list[str]:
    """Symbols of ``text`` as strings (ARPAbet with its ``@`` prefix), no blanks.

    Args:
        text: Raw text.
        **kwargs: ``cleaners`` / ``use_cmudict`` as in :func:`text_to_sequence`.

    Returns:
        E.g. ``["@HH", "@AH0", "@L", "@OW1", " ", "w", "o", "r", "l", "d", ","]``
        for ``"Hello world,"``.
    """
    return [symbols[i] for i in text_to_sequence(text, **kwargs)]  # type: ignore[arg-type]


def text_to_phonemes(text: str, **kwargs: object) -> list[str]:
    """ARPAbet phonemes of ``text`` in order, without ``@``, stress digits kept.

    Letters of out-of-dictionary words, punctuation and spaces are left out, so
    ``len(text_to_phonemes(t)) / len(text_to_symbols(t))`` measures coverage.

    Args:
        text: Raw text.
        **kwargs: ``cleaners`` / ``use_cmudict`` as in :func:`text_to_sequence`.

    Returns:
        E.g. ``["HH", "AH0", "L", "OW1"]`` for ``"Hello"``; values are in :data:`ARPABET`.
    """
    ids = text_to_sequence(text, **kwargs)  # type: ignore[arg-type]
    return [symbols[i][len(ARPABET_PREFIX) :] for i in ids if i >= _FIRST_ARPABET_ID]


def ids_to_text(ids: Iterable[int]) -> str:
    """Debug view of an id sequence: blanks skipped, phonemes shown as ``{HH AH0}``.

    Args:
        ids: Ids ``[T_x]`` (with or without blanks; tensors/arrays of ints work).

    Returns:
        Text such as ``"{HH AH0 L OW1} world,"``.

    Raises:
        ValueError: If an id is outside ``[0, N_VOCAB)``.
    """
    out = []
    for raw in ids:
        i = int(raw)
        if i == BLANK_ID:
            continue
        if i not in ID_TO_SYMBOL:
            raise ValueError(f"Id {i} is outside the vocabulary [0, {N_VOCAB}).")
        s = ID_TO_SYMBOL[i]
        out.append("{" + s[len(ARPABET_PREFIX) :] + "}" if s.startswith(ARPABET_PREFIX) else s)
    return "".join(out).replace("}{", " ")
