"""Symbol table of the official Grad-TTS English front end (148 symbols).

The order matters: ids index the text encoder's embedding table, so this must
stay identical to the official ``text/symbols.py`` for checkpoints to load.
"""

from __future__ import annotations

PAD = "_"
SPECIAL = "-"
PUNCTUATION = "!'(),.:;? "
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

#: The 84 ARPAbet phonemes (with and without stress digits) of the CMU dictionary.
ARPABET: tuple[str, ...] = tuple(
    """
    AA AA0 AA1 AA2 AE AE0 AE1 AE2 AH AH0 AH1 AH2 AO AO0 AO1 AO2 AW AW0 AW1 AW2
    AY AY0 AY1 AY2 B CH D DH EH EH0 EH1 EH2 ER ER0 ER1 ER2 EY EY0 EY1 EY2 F G HH
    IH IH0 IH1 IH2 IY IY0 IY1 IY2 JH K L M N NG OW OW0 OW1 OW2 OY OY0 OY1 OY2 P R
    S SH T TH UH UH0 UH1 UH2 UW UW0 UW1 UW2 V W Y Z ZH
    """.split()
)
ARPABET_SET: frozenset[str] = frozenset(ARPABET)

# "@" keeps phonemes distinct from letters (e.g. phoneme "B" vs letter "B").
ARPABET_PREFIX = "@"

symbols: list[str] = (
    [PAD]
    + list(SPECIAL)
    + list(PUNCTUATION)
    + list(LETTERS)
    + [ARPABET_PREFIX + p for p in ARPABET]
)

SYMBOL_TO_ID: dict[str, int] = {s: i for i, s in enumerate(symbols)}
ID_TO_SYMBOL: dict[int, str] = dict(enumerate(symbols))

#: Id interspersed between symbols when ``add_blank`` is on (one past the table).
BLANK_ID: int = len(symbols)
#: Embedding table size of the text encoder (symbols + blank).
N_VOCAB: int = len(symbols) + 1

SPACE_ID: int = SYMBOL_TO_ID[" "]
