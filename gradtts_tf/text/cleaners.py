"""Text cleaners (official ``cleaners.py`` behaviour), selectable by name."""

from __future__ import annotations

import re
from collections.abc import Callable

from unidecode import unidecode

from gradtts_tf.text.numbers import expand_pounds, normalize_numbers

_WHITESPACE_RE = re.compile(r"\s+")

# Only abbreviations followed by a period are expanded ("st." but not "st").
_ABBREVIATIONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"\b{abbr}\.", re.IGNORECASE), full)
    for abbr, full in [
        ("mrs", "misess"),
        ("mr", "mister"),
        ("dr", "doctor"),
        ("st", "saint"),
        ("co", "company"),
        ("jr", "junior"),
        ("maj", "major"),
        ("gen", "general"),
        ("drs", "doctors"),
        ("rev", "reverend"),
        ("lt", "lieutenant"),
        ("hon", "honorable"),
        ("sgt", "sergeant"),
        ("capt", "captain"),
        ("esq", "esquire"),
        ("ltd", "limited"),
        ("col", "colonel"),
        ("ft", "fort"),
    ]
]


def expand_abbreviations(text: str) -> str:
    """Expands ``"mr."`` -> ``"mister"``, ``"dr."`` -> ``"doctor"``, etc."""
    for pattern, full in _ABBREVIATIONS:
        text = pattern.sub(full, text)
    return text


def lowercase(text: str) -> str:
    return text.lower()


def collapse_whitespace(text: str) -> str:
    """Replaces every run of whitespace (newlines, tabs, ...) by one space."""
    return _WHITESPACE_RE.sub(" ", text)


def convert_to_ascii(text: str) -> str:
    """Transliterates to ASCII (``"café"`` -> ``"cafe"``); unmappable characters vanish."""
    return unidecode(text)


def basic_cleaners(text: str) -> str:
    """Lowercase and collapse whitespace, no transliteration."""
    return collapse_whitespace(lowercase(text))


def transliteration_cleaners(text: str) -> str:
    """ASCII transliteration, lowercase, collapse whitespace."""
    return collapse_whitespace(lowercase(convert_to_ascii(text)))


def english_cleaners(text: str) -> str:
    """ASCII, lowercase, spelled-out numbers, expanded abbreviations, single spaces.

    Args:
        text: Raw English text.

    Returns:
        Cleaned text, e.g. ``"Mr. Smith paid $3.50"`` ->
        ``"mister smith paid three dollars, fifty cents"``. Same as the official
        ``english_cleaners`` except that ``"£20"`` reads "twenty pounds".
    """
    text = convert_to_ascii(expand_pounds(text))
    text = lowercase(text)
    text = normalize_numbers(text)
    text = expand_abbreviations(text)
    return collapse_whitespace(text)


CLEANERS: dict[str, Callable[[str], str]] = {
    "basic_cleaners": basic_cleaners,
    "transliteration_cleaners": transliteration_cleaners,
    "english_cleaners": english_cleaners,
}


def clean_text(text: str, cleaner_names: str | list[str] | tuple[str, ...]) -> str:
    """Runs ``text`` through the named cleaners in order.

    Args:
        text: Raw text.
        cleaner_names: One name or a sequence of names from :data:`CLEANERS`.

    Returns:
        The cleaned text.

    Raises:
        ValueError: If a name is unknown.
    """
    names = [cleaner_names] if isinstance(cleaner_names, str) else list(cleaner_names)
    for name in names:
        try:
            cleaner = CLEANERS[name]
        except KeyError:
            raise ValueError(
                f"Unknown cleaner {name!r}; available: {sorted(CLEANERS)}"
            ) from None
        text = cleaner(text)
    return text
