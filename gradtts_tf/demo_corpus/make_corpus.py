"""Regenerates the bundled corpus splits (train.txt, dev.txt, ood_eval.txt) from their sources.

Not needed to build a dataset: the filtered text is committed next to this script, so
``python -m gradtts_tf.demo_data --corpus large`` works without any of the Debian
packages below. Run this only to change the selection, on a Debian/Ubuntu machine::

    apt-get install wordnet-base fortunes
    apt-get download golang-github-pierrec-lz4-dev   # ships Project Gutenberg text #1661
    dpkg-deb -x golang-github-pierrec-lz4-dev_*.deb /tmp/lz4
    python gradtts_tf/demo_corpus/make_corpus.py \\
        --sherlock /tmp/lz4/usr/share/gocode/src/github.com/pierrec/lz4/testdata/pg1661.txt

The output is deterministic for the same inputs (fixed seed). Sources and licences are
in SOURCES.md beside this file.
"""

from __future__ import annotations

import argparse
import random
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from gradtts_tf.demo_data import load_sentences, sentence_key, sentence_problem

WORDNET_DIR = Path("/usr/share/wordnet")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
# Fortune files of general sayings, quotations and jokes. Left out: the offensive set
# (a separate folder, never read), technical files (computers, linux, perl, debian,
# ...; code and jargon), zippy (nonsense), tao (headings run into the verse),
# and topics prone to stereotypes or
# partisanship (ethnic, men-women, politics, drugs).
FORTUNE_FILES: tuple[str, ...] = (
    "art", "cookie", "education", "food", "fortunes", "goedel", "humorists", "kids",
    "literature", "love", "magic", "medicine", "miscellaneous", "news", "paradoxum",
    "people", "pets", "platitudes", "riddles", "science", "sports", "wisdom", "work",
)  # fmt: skip
SEED = 20240611
# Sizes keep train.txt near 300 KB, about five hours of flite speech with the demo
# sentences.
N_WORDNET_TRAIN = 3300
N_FORTUNES_TRAIN = 2200
N_DEV = 100
N_OOD = 100
# Held-out narration as long as the training clips, so length is not what is judged.
MAX_OOD_WORDS = 25
# Training sentences of at least this many words: WordNet's shortest examples are
# noun phrases ("a dire emergency"), not sentences.
MIN_TRAIN_WORDS = 5

_QUOTE_RE = re.compile(r'"([^"]+)"')
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
# A split after these is inside a sentence ("Mr. Holmes").
_NO_SPLIT_BEFORE = ("Mr.", "Mrs.", "Dr.", "St.", "Messrs.")
# Finite verbs and subject pronouns: a WordNet example with one of these is a clause
# ("the river takes a southern course"), not just a phrase.
_CLAUSE_WORDS = frozenset(
    """
    i you he she it we they is are was were am be been has have had do does did will would
    can could shall should may might must isn't aren't wasn't weren't don't doesn't didn't
    won't can't couldn't wouldn't shouldn't there
    """.split()
)
_VERB_SUFFIX_RE = re.compile(r"^[a-z]+(ed|s)$")


def split_sentences(text: str) -> list[str]:
    """Splits running text at ``.!?`` followed by a capital, except after titles."""
    parts = _SENTENCE_SPLIT_RE.split(text)
    out: list[str] = []
    for part in parts:
        if out and out[-1].endswith(_NO_SPLIT_BEFORE):
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    return [p.strip() for p in out if p.strip()]


def _as_sentence(text: str) -> str:
    text = " ".join(text.replace("`", "'").split())
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def wordnet_examples(wordnet_dir: Path = WORDNET_DIR) -> Iterator[str]:
    """Usage examples (the quoted parts of glosses) that read as clauses, as sentences."""
    for pos in ("noun", "verb", "adj", "adv"):
        path = wordnet_dir / f"data.{pos}"
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue  # licence header
            gloss = line.split("|", 1)[1]
            for example in _QUOTE_RE.findall(gloss):
                words = example.lower().split()
                is_clause = example[:1].isupper() or any(
                    w.strip(",.;:!?") in _CLAUSE_WORDS for w in words
                )
                if is_clause and len(words) >= MIN_TRAIN_WORDS:
                    yield _as_sentence(example)


def fortune_sayings(fortunes_dir: Path = FORTUNES_DIR) -> Iterator[str]:
    """Fortunes without attributions: whole when short, otherwise sentence by sentence."""
    for name in FORTUNE_FILES:
        text = (fortunes_dir / name).read_text(encoding="latin-1")
        for item in text.split("\n%\n"):
            lines = [ln for ln in item.splitlines() if not ln.strip().startswith("--")]
            # Verse, dialogue and lists keep their meaning only with their line breaks.
            if any(
                ln.startswith((" ", "\t", "Q:", "A:")) or ln.rstrip().endswith(":") for ln in lines
            ):
                continue
            body = " ".join(" ".join(lines).split())
            if sentence_problem(body) is None:
                yield body
                continue
            for sentence in split_sentences(body):
                if len(sentence.split()) >= MIN_TRAIN_WORDS:
                    yield sentence


def gutenberg_narration(path: Path) -> Iterator[str]:
    """Sentences of a Project Gutenberg text outside quotations, without the PG header/footer."""
    text = path.read_text(encoding="utf-8-sig")
    start = text.index("*** START OF")
    end = text.index("*** END OF")
    body = text[text.index("\n", start) : end]
    for paragraph in re.split(r"\n\s*\n", body):
        flat = " ".join(paragraph.split())
        if '"' in flat or "'" in flat.replace("'s ", "").replace("n't ", ""):
            continue  # dialogue: without its quotation marks it reads wrongly
        yield from split_sentences(flat)


def select(candidates: Iterable[str], taken: set[str]) -> list[str]:
    """Speakable candidates whose :func:`sentence_key` is not in ``taken`` (updated)."""
    out = []
    for sentence in candidates:
        key = sentence_key(sentence)
        if key in taken or sentence_problem(sentence) is not None:
            continue
        taken.add(key)
        out.append(sentence)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--sherlock", type=Path, required=True, help="Project Gutenberg pg1661.txt")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = p.parse_args()
    rng = random.Random(SEED)

    taken = {sentence_key(s) for s in load_sentences()}
    # Out-of-domain text first, so no training sentence can coincide with it.
    narration = (s for s in gutenberg_narration(args.sherlock) if len(s.split()) <= MAX_OOD_WORDS)
    ood_pool = select(narration, taken)
    ood = rng.sample(ood_pool, N_OOD)
    taken -= {sentence_key(s) for s in ood_pool if s not in ood}

    wordnet = select(sorted(set(wordnet_examples())), taken)
    fortunes = select(fortune_sayings(), taken)
    rng.shuffle(wordnet)
    rng.shuffle(fortunes)
    # Dev mirrors the training mix of the two sources.
    n_dev_fortunes = round(N_DEV * N_FORTUNES_TRAIN / (N_FORTUNES_TRAIN + N_WORDNET_TRAIN))
    fortunes = fortunes[: N_FORTUNES_TRAIN + n_dev_fortunes]
    wordnet = wordnet[: N_WORDNET_TRAIN + N_DEV - n_dev_fortunes]
    dev = fortunes[:n_dev_fortunes] + wordnet[: N_DEV - n_dev_fortunes]
    train = fortunes[n_dev_fortunes:] + wordnet[N_DEV - n_dev_fortunes :]
    rng.shuffle(train)
    rng.shuffle(dev)

    for name, sentences in (("train", train), ("dev", dev), ("ood_eval", ood)):
        (args.out / f"{name}.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
        print(f"{name}: {len(sentences)} sentences")
    print(f"pools: wordnet {len(wordnet)}, fortunes {len(fortunes)}, sherlock {len(ood_pool)}")


if __name__ == "__main__":
    main()
