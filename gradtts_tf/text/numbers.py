"""Spells out numbers, currency, ordinals and decimals (official ``numbers.py`` rules)."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import inflect

_COMMA_NUMBER_RE = re.compile(r"([0-9][0-9,]+[0-9])")
_DECIMAL_NUMBER_RE = re.compile(r"([0-9]+\.[0-9]+)")
_POUNDS_RE = re.compile(r"£([0-9,]*[0-9]+)")
_DOLLARS_RE = re.compile(r"\$([0-9.,]*[0-9]+)")
_ORDINAL_RE = re.compile(r"[0-9]+(st|nd|rd|th)")
_NUMBER_RE = re.compile(r"[0-9]+")


@functools.lru_cache(maxsize=1)
def _engine() -> inflect.engine:
    import inflect  # deferred: inflect (with typeguard) is slow to import

    return inflect.engine()


def _unit(n: int, singular: str, plural: str) -> str:
    return singular if n == 1 else plural


def _expand_dollars(m: re.Match[str]) -> str:
    amount = m.group(1)
    parts = amount.split(".")
    if len(parts) > 2:
        return amount + " dollars"  # e.g. "$1.2.3": not a price, keep the digits
    dollars = int(parts[0]) if parts[0] else 0
    cents = int(parts[1]) if len(parts) > 1 and parts[1] else 0
    if dollars and cents:
        return (
            f"{dollars} {_unit(dollars, 'dollar', 'dollars')}, "
            f"{cents} {_unit(cents, 'cent', 'cents')}"
        )
    if dollars:
        return f"{dollars} {_unit(dollars, 'dollar', 'dollars')}"
    if cents:
        return f"{cents} {_unit(cents, 'cent', 'cents')}"
    return "zero dollars"


def _expand_ordinal(m: re.Match[str]) -> str:
    return _engine().number_to_words(m.group(0))


def _expand_number(m: re.Match[str]) -> str:
    num = int(m.group(0))
    eng = _engine()
    # Numbers between 1000 and 3000 are read like years ("nineteen ninety-nine").
    if 1000 < num < 3000:
        if num == 2000:
            return "two thousand"
        if 2000 < num < 2010:
            return "two thousand " + eng.number_to_words(num % 100)
        if num % 100 == 0:
            return eng.number_to_words(num // 100) + " hundred"
        return eng.number_to_words(num, andword="", zero="oh", group=2).replace(", ", " ")
    return eng.number_to_words(num, andword="")


def expand_pounds(text: str) -> str:
    """Rewrites ``"£20"`` as ``"20 pounds"``.

    Must run before ASCII transliteration, which would turn ``"£"`` into ``"PS"``
    (the official cleaner order reads "£20" as "pstwenty").
    """
    return _POUNDS_RE.sub(r"\1 pounds", text)


def normalize_numbers(text: str) -> str:
    """Replaces digits in lower-cased text by words.

    Args:
        text: Text, already transliterated to ASCII and lower-cased (``£`` is
            handled too, for callers that skip transliteration).

    Returns:
        The text with ``"$3.50"`` -> ``"three dollars, fifty cents"``,
        ``"5th"`` -> ``"fifth"``, ``"1,000"`` -> ``"one thousand"``,
        ``"2.5"`` -> ``"two point five"``, ``"1999"`` -> ``"nineteen ninety-nine"``.
    """
    text = _COMMA_NUMBER_RE.sub(lambda m: m.group(1).replace(",", ""), text)
    text = expand_pounds(text)
    text = _DOLLARS_RE.sub(_expand_dollars, text)
    text = _DECIMAL_NUMBER_RE.sub(lambda m: m.group(1).replace(".", " point "), text)
    text = _ORDINAL_RE.sub(_expand_ordinal, text)
    text = _NUMBER_RE.sub(_expand_number, text)
    return text
