"""Splitting long text into sentences (and over-long sentences into clauses) for synthesis.

Grad-TTS is trained on single utterances of a few seconds; a paragraph is spoken one
sentence at a time and the pieces are joined with a short pause. Splitting works on the
raw text (before cleaning), so abbreviations such as ``"Dr."`` and initials such as
``"J. R. R. Tolkien"`` are still recognisable and do not end a sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = [
    "DEFAULT_MAX_TOKENS", "DEFAULT_SENTENCE_PAUSE", "segment", "split_long", "split_sentences",
]

DEFAULT_MAX_TOKENS = 500  # encoder input ids (with blanks): about 15-20 s of speech
DEFAULT_SENTENCE_PAUSE = 0.25  # seconds of silence between joined sentences

# Words that end with a period but almost never end a sentence (lowercase, no period).
_NON_FINAL = frozenset(
    "mr mrs ms dr prof st jr sr rev hon gen col capt lt sgt maj gov sen rep esq "
    "no nos vol vols fig figs ca approx vs e.g i.e cf mt ft".split()
)

# A candidate boundary: terminal punctuation, optional closing quotes/brackets, whitespace.
_BOUNDARY_RE = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*\s+")
# Where a sentence may continue: after clause punctuation or a dash between spaces.
_CLAUSE_RE = re.compile(r"(?:[,;:]+[\"'\u201d\u2019)\]]*|\s[-\u2013\u2014]+)\s+")
_NEXT_START_RE = re.compile(r"[\"'\u201c\u2018(\[]*[A-Z0-9\u00c0-\u00de]")


def _ends_sentence(text: str, start: int, end: int) -> bool:
    """Whether the boundary match ``text[start:end]`` really ends a sentence."""
    if not _NEXT_START_RE.match(text, end):
        return False  # "e.g. some" or "... and then": the next word is not a sentence start
    if re.search(r"[!?\u2026]", text[start:end]):
        return True  # "!", "?" and the ellipsis character end sentences
    word = re.search(r"(\S+)$", text[:start])
    if word is None:
        return True
    token = word.group(1).lstrip("\"'(\u201c\u2018[").lower()
    if token in _NON_FINAL:
        return False
    # Initials ("J. Smith", "U.S. Army") are a single letter before the period.
    return not re.fullmatch(r"(?:[a-z]\.)*[a-z]", token)


def split_sentences(text: str) -> list[str]:
    """Splits text into sentences at ``.``, ``!``, ``?`` and ``…``.

    A boundary needs whitespace after the punctuation (so ``3.5`` and ``a.m.,`` stay
    whole) and an upper-case letter, digit or opening quote after it; a period after a
    title (``Dr.``, ``Mrs.``, ...) or a single-letter initial is not a boundary.

    Args:
        text: Raw text, any length (newlines count as spaces).

    Returns:
        Non-empty stripped sentences in order (``[]`` for blank text).
    """
    text = " ".join(text.split())
    sentences, begin = [], 0
    for m in _BOUNDARY_RE.finditer(text):
        if _ends_sentence(text, m.start(), m.end()):
            sentences.append(text[begin : m.end()].strip())
            begin = m.end()
    sentences.append(text[begin:].strip())
    return [s for s in sentences if s]


def split_long(sentence: str, max_tokens: int, count: Callable[[str], int]) -> list[str]:
    """Splits an over-long sentence at commas, semicolons, colons and dashes.

    Clauses are joined greedily into the fewest pieces of at most ``max_tokens``.

    Args:
        sentence: One sentence.
        max_tokens: Longest allowed piece, measured by ``count``.
        count: Token count of a piece of text (e.g. ``len(text_to_ids(piece))``).

    Returns:
        ``[sentence]`` if it fits, else its pieces in order.

    Raises:
        ValueError: If a single clause (no punctuation to split at) is still too long.
    """
    if count(sentence) <= max_tokens:
        return [sentence]
    cuts = [m.end() for m in _CLAUSE_RE.finditer(sentence)]
    bounds = zip([0, *cuts], [*cuts, len(sentence)], strict=True)
    clauses = [sentence[a:b].strip() for a, b in bounds]
    clauses = [c for c in clauses if c]
    pieces: list[str] = []
    for clause in clauses:
        n = count(clause)
        if n > max_tokens:
            raise ValueError(
                f"{n} tokens in {_preview(clause)!r}, over the limit of {max_tokens} even "
                "after splitting at sentence and clause punctuation; add punctuation or "
                "raise the limit"
            )
        if pieces and count(pieces[-1] + " " + clause) <= max_tokens:
            pieces[-1] = pieces[-1] + " " + clause
        else:
            pieces.append(clause)
    return pieces


def segment(
    text: str, max_tokens: int, count: Callable[[str], int], split: bool = True
) -> list[str]:
    """Sentences of ``text`` (`split_sentences`), over-long ones cut by `split_long`.

    Args:
        text: Raw text.
        max_tokens: Longest allowed piece, measured by ``count``.
        count: Token count of a piece of text.
        split: ``False`` keeps the text whole (it must then fit ``max_tokens``).

    Returns:
        Pieces to synthesise one by one, in order.

    Raises:
        ValueError: If a piece cannot be brought under ``max_tokens``.
    """
    if not split:
        n = count(text)
        if n > max_tokens:
            raise ValueError(
                f"{n} tokens, over the limit of {max_tokens}; enable sentence splitting "
                "or raise the limit"
            )
        return [text.strip()]
    return [piece for s in split_sentences(text) for piece in split_long(s, max_tokens, count)]


def _preview(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
