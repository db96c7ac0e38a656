"""Builds an LJSpeech-format demo dataset by speaking bundled sentences with flite.

Usage::

    python -m gradtts_tf.demo_data --out data/demo [--corpus demo|large|dev|ood_eval]
        [--limit N] [--sample-rate 22050] [--voice slt] [--jobs 2]

Corpora (see :func:`load_corpus` and ``gradtts_tf/demo_corpus/SOURCES.md``):

* ``demo`` (default): the 748 project sentences of ``gradtts_tf/data/sentences.txt``,
  about 38 minutes of audio; what ``make demo`` speaks.
* ``large``: the ``train`` split, i.e. the project sentences followed by several
  thousand filtered sentences of ordinary English (WordNet usage examples and
  fortune-cookie sayings), several hours of audio.
* ``dev``: a small set from the training sources' distribution, disjoint from
  ``train``, for choosing synthesis settings.
* ``ood_eval``: held-out *out-of-domain* sentences from a different text source
  (narration from a public-domain novel), for judging a voice on text of a kind it
  never saw in training.

The output folder gets ``wavs/demo_0001.wav`` ... (mono 16-bit PCM at ``--sample-rate``;
``dev_``/``ood_`` prefixes for those splits) and ``metadata.csv`` with
``id|text|normalized text`` lines, where the normalized text is
``gradtts_tf.text.english_cleaners(text)``. flite is fed the *normalized* text, so the
audio says exactly what the text encoder will read (e.g. "1905" is spoken as
"nineteen oh five", not however flite's own number rules would expand it).

Reruns are cheap: a wav that already exists with the right rate is kept (unless the
existing ``metadata.csv`` says it was spoken from a different text). The large corpus
starts with the demo sentences under the same ids, so building it into a demo folder
reuses those wavs. At the end the utterance count, total duration and the ARPAbet
phoneme coverage are printed.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from gradtts_tf.cli.quiet import add_verbose_argument, quiet_tensorflow
from gradtts_tf.text import english_cleaners
from gradtts_tf.text.cmudict import lookup

# The 39 ARPAbet phonemes of CMUdict with stress digits removed.
ARPABET_PHONEMES: tuple[str, ...] = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY",
    "F", "G", "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P",
    "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
MIN_PHONEME_COUNT = 30
UTTERANCE_PREFIX = "demo_"
FLITE_TIMEOUT_S = 120

_STRESS_RE = re.compile(r"\d")
_WORD_SPLIT_RE = re.compile(r"[\s\-]+")
_EDGE_PUNCT = ".,!?;:\"()[]{}'"


class FliteNotFoundError(RuntimeError):
    """The flite executable (or the requested voice) is not available."""


@dataclasses.dataclass(frozen=True)
class BuildResult:
    """Summary of a :func:`build_demo_dataset` run.

    Attributes:
        out_dir: Dataset folder.
        ids: Utterance ids in metadata order.
        durations: Seconds per utterance, aligned with ``ids``.
        n_synthesized: Utterances spoken by flite in this run.
        n_reused: Utterances whose existing wav was kept.
    """

    out_dir: Path
    ids: tuple[str, ...]
    durations: tuple[float, ...]
    n_synthesized: int
    n_reused: int

    @property
    def total_seconds(self) -> float:
        """Total audio duration in seconds."""
        return float(sum(self.durations))


# ---------------------------------------------------------------------------
# Sentences and phoneme coverage
# ---------------------------------------------------------------------------


def default_sentences_path() -> Path:
    """Path of the bundled ``gradtts_tf/data/sentences.txt``."""
    return Path(str(resources.files("gradtts_tf") / "data" / "sentences.txt"))


def load_sentences(path: str | os.PathLike | None = None) -> list[str]:
    """Reads one sentence per line (UTF-8), skipping blank lines.

    Args:
        path: Text file; defaults to the bundled sentence list.

    Returns:
        Stripped sentences in file order.

    Raises:
        ValueError: If a sentence contains ``|`` (the metadata.csv separator) or the
            file holds no sentences.
    """
    path = Path(path) if path is not None else default_sentences_path()
    sentences = [s.strip() for s in path.read_text(encoding="utf-8").splitlines()]
    sentences = [s for s in sentences if s]
    for i, s in enumerate(sentences, start=1):
        if "|" in s:
            raise ValueError(f"{path}: sentence {i} contains '|', the metadata separator: {s!r}")
    if not sentences:
        raise ValueError(f"{path}: no sentences found")
    return sentences


def _words(sentence: str) -> list[str]:
    """Lowercase words with edge punctuation removed; hyphenated words are split."""
    sentence = sentence.replace("\u2019", "'")
    words = (w.strip(_EDGE_PUNCT).lower() for w in _WORD_SPLIT_RE.split(sentence))
    return [w for w in words if w]


def _count(sentences: Iterable[str]) -> tuple[collections.Counter, collections.Counter]:
    phones: collections.Counter[str] = collections.Counter()
    missing: collections.Counter[str] = collections.Counter()
    for sentence in sentences:
        for word in _words(sentence):
            # The front end's own dictionary: first pronunciation with valid symbols.
            pron = lookup(word)
            if pron is None:
                missing[word] += 1
                continue
            phones.update(_STRESS_RE.sub("", p) for p in pron.split())
    return phones, missing


def phoneme_coverage(sentences: Iterable[str]) -> dict[str, int]:
    """Counts ARPAbet phonemes (stress ignored) over the sentences via CMUdict.

    Words are split on whitespace and hyphens, stripped of edge punctuation and
    lowercased; each found word contributes its first pronunciation. Words not in
    the dictionary (including numerals such as "1999") are skipped; see
    :func:`missing_words`.

    Args:
        sentences: Raw or normalized sentences.

    Returns:
        ``{phoneme: count}`` for all 39 ARPAbet phonemes (zero if absent).
    """
    phones, _ = _count(sentences)
    return {p: int(phones.get(p, 0)) for p in ARPABET_PHONEMES}


def missing_words(sentences: Iterable[str]) -> dict[str, int]:
    """Words of the sentences that CMUdict lacks, with their counts.

    Args:
        sentences: Raw or normalized sentences.

    Returns:
        ``{word: count}``, tokenized as in :func:`phoneme_coverage`.
    """
    _, missing = _count(sentences)
    return dict(missing)


def format_coverage(
    coverage: dict[str, int], missing: dict[str, int], min_count: int = MIN_PHONEME_COUNT
) -> str:
    """Renders the coverage report: phonemes sorted by count, those below ``min_count`` flagged.

    Args:
        coverage: Output of :func:`phoneme_coverage`.
        missing: Output of :func:`missing_words`.
        min_count: Flag threshold.

    Returns:
        Multi-line report.
    """
    items = sorted(coverage.items(), key=lambda kv: (kv[1], kv[0]))
    cells = [f"{p:<2} {c:>6}{' LOW' if c < min_count else '    '}" for p, c in items]
    lines = [f"Phoneme coverage (CMUdict, stress ignored, lowest first; LOW = < {min_count}):"]
    lines += ["  " + "   ".join(cells[i : i + 6]) for i in range(0, len(cells), 6)]
    low = [p for p, c in items if c < min_count]
    lines.append(
        f"  {len(low)} phoneme(s) below {min_count}: {', '.join(low)}"
        if low
        else f"  all {len(items)} phonemes >= {min_count}"
    )
    n_missing = sum(missing.values())
    if n_missing:
        shown = ", ".join(sorted(missing)[:20]) + (" ..." if len(missing) > 20 else "")
        lines.append(f"  words not in CMUdict: {n_missing} ({len(missing)} unique): {shown}")
    else:
        lines.append("  words not in CMUdict: 0")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Corpus splits and the speakability filter
# ---------------------------------------------------------------------------

#: Split names accepted by :func:`load_corpus`.
CORPUS_SPLITS: tuple[str, ...] = ("train", "dev", "ood_eval")
#: Sentence bounds of the filter: short enough for one flite clip of a few seconds,
#: long enough to carry prosody.
MIN_WORDS = 3
MAX_WORDS = 30
MAX_CHARS = 200

# Raw text may use letters, digits, "$" (the number normalizer reads prices), spaces
# and the punctuation the symbol table keeps ("!'(),.:;?" and "-"), minus parentheses
# (flite reads them as nothing, the text encoder as symbols: the audio and the text
# would disagree).
_ALLOWED_RE = re.compile(r"[A-Za-z0-9$ .,!?;:'\-]+")
# What english_cleaners output may contain for the text encoder and flite to agree.
_CLEANED_RE = re.compile(r"[a-z .,!?;:'\-]+")
_SHOUT_RE = re.compile(r"\b[A-Z]{2,}\b")
# An apostrophe inside a word ("don't", "o'clock") is fine; one used as a quote mark
# or a dropped letter ("'tis", "goin'") is read inconsistently.
_BAD_APOSTROPHE_RE = re.compile(r"(^|[^A-Za-z])'|'($|[^A-Za-z])")
_BAD_HYPHEN_RE = re.compile(r"(^|[^A-Za-z0-9])-|-($|[^A-Za-z0-9])")
# Numbers the normalizer reads well: integers, "1,250", decimals, ordinals ("21st") and
# prices ("$4.25"). Not: versions ("1.2.3"), times ("3:45"), codes ("MP3", "4x4"), or
# runs of numbers ("2 2 1"), which are arithmetic or tables with their symbols lost.
_BAD_NUMBER_RE = re.compile(
    r"\d\.\d+\.\d|\d:\d|[A-Za-z]\d|\d(?!(?:st|nd|rd|th)\b)[A-Za-z]|\$(?!\d)|\d,? \d"
)
_REPEATED_PUNCT_RE = re.compile(r"[.,!?;:]{2,}")
_SPACE_PUNCT_RE = re.compile(r" [.,!?;:]")
_KEY_RE = re.compile(r"[^a-z ]+")

# Profanity and slurs: the demo voice says whatever its corpus taught it, and a
# corpus shipped with the package should be fit to play aloud anywhere.
_BLOCKED_WORDS: frozenset[str] = frozenset(
    """
    fuck fucking fucked fucker shit shitty bullshit piss pissed cunt cock cocks dick dicks
    prick bitch bitches bastard bastards whore whores slut sluts tits boobs asshole arse
    damn damned goddamn crap nigger niggers negro faggot fag dyke retard retarded spic
    wop kike chink gook tranny homo rape raped rapist raping porn pornography
    masturbate masturbation orgasm penis vagina erection sex sexy sexual
    naked nude breasts virgin virgins suicide abortion nazi nazis hitler jews blacks
    """.split()
)

# Standard intelligibility and reading test material must never enter training or
# evaluation text: scoring a voice on sentences it was trained on would flatter it,
# and these lists are what listeners and ASR benchmarks are judged on. The check
# catches these sentences (normalized, as substrings) wherever they appear.
_TEST_LIST_SENTENCES: tuple[str, ...] = (
    # Harvard (IEEE 1969) lists 1 and 2 and other often-quoted Harvard sentences.
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "Oak is strong and also gives shade.",
    "Cats and dogs each hate the other.",
    "The pipe began to rust while new.",
    "Open the crate but don't break the glass.",
    "Add the sum to the product of these three.",
    "Thieves who rob friends deserve jail.",
    "The ripe taste of cheese improves with age.",
    "Act on these orders with great speed.",
    "The hog crawled under the high fence.",
    "Move the vat over the hot fire.",
    # Reading passages used in speech and accent testing.
    "Please call Stella.",
    "Ask her to bring these things with her from the store.",
    "When the sunlight strikes raindrops in the air, they act as a prism and form a rainbow.",
    "You wish to know all about my grandfather.",
    "The North Wind and the Sun were disputing which was the stronger.",
    # Pangram used as a typing and TTS smoke test.
    "The quick brown fox jumps over the lazy dog.",
)


def sentence_key(sentence: str) -> str:
    """Normalized form used to find duplicates: cleaned, letters and single spaces only.

    Args:
        sentence: Raw sentence.

    Returns:
        E.g. ``"Mr. Smith's 2 dogs!"`` -> ``"mister smiths two dogs"``.
    """
    cleaned = english_cleaners(sentence.replace("-", " ")).replace("'", "")
    return " ".join(_KEY_RE.sub(" ", cleaned).split())


_TEST_LIST_KEYS: tuple[str, ...] = tuple(sentence_key(s) for s in _TEST_LIST_SENTENCES)


def is_test_list_sentence(sentence: str) -> bool:
    """Whether ``sentence`` contains a known intelligibility-test sentence (normalized)."""
    key = f" {sentence_key(sentence)} "
    return any(f" {k} " in key for k in _TEST_LIST_KEYS)


def sentence_problem(sentence: str) -> str | None:
    """Says why a sentence is unfit for the demo corpus, or ``None`` if it is speakable.

    A speakable sentence is one plain line of ordinary English: it starts with a capital
    letter and ends with ``.``, ``!`` or ``?``; has :data:`MIN_WORDS` to :data:`MAX_WORDS`
    words and at most :data:`MAX_CHARS` characters; uses only letters, digits, spaces and
    ``$.,!?;:'-``; has no all-caps words, only numbers the cleaners read (integers,
    ``1,250``, decimals, ordinals, prices) and no profanity; every word of its
    ``english_cleaners`` form is in CMUdict (so the text encoder gets phonemes and flite's
    letter-to-sound rules are never the only guide); and it is not a standard
    intelligibility-test sentence.

    Args:
        sentence: Raw sentence.

    Returns:
        A short reason, or ``None``.
    """
    if sentence != sentence.strip() or "  " in sentence or _SPACE_PUNCT_RE.search(sentence):
        return "leading, trailing or double spaces, or a space before punctuation"
    if len(sentence) > MAX_CHARS:
        return f"longer than {MAX_CHARS} characters"
    n_words = len(sentence.split())
    if not MIN_WORDS <= n_words <= MAX_WORDS:
        return f"{n_words} words, outside {MIN_WORDS}-{MAX_WORDS}"
    if not _ALLOWED_RE.fullmatch(sentence):
        bad = sorted(set(_ALLOWED_RE.sub("", sentence)))
        return f"characters outside letters, digits and $.,!?;:'-: {''.join(bad)!r}"
    if not sentence[0].isupper() or sentence[-1] not in ".!?":
        return "does not start with a capital letter and end with . ! or ?"
    if _SHOUT_RE.search(sentence):
        return "all-caps word (shouting or an acronym flite would spell)"
    if _BAD_APOSTROPHE_RE.search(sentence) or _BAD_HYPHEN_RE.search(sentence):
        return "apostrophe or hyphen outside a word"
    if _BAD_NUMBER_RE.search(sentence):
        return "number the cleaners cannot read (version, time, code, run of numbers, bare $)"
    if _REPEATED_PUNCT_RE.search(sentence):
        return "repeated punctuation"
    words = _words(sentence)
    if any(w.replace("'", "") in _BLOCKED_WORDS or w in _BLOCKED_WORDS for w in words):
        return "blocked word"
    cleaned = english_cleaners(sentence)
    if not _CLEANED_RE.fullmatch(cleaned):
        return f"cleaned text keeps unreadable characters: {cleaned!r}"
    unknown = [w for w in _words(cleaned) if lookup(w) is None]
    if unknown:
        return f"words not in CMUdict: {' '.join(unknown)}"
    if is_test_list_sentence(sentence):
        return "standard intelligibility-test sentence"
    return None


def is_speakable(sentence: str) -> bool:
    """Whether ``sentence`` passes :func:`sentence_problem`."""
    return sentence_problem(sentence) is None


def corpus_dir() -> Path:
    """Folder of the bundled corpus splits, ``gradtts_tf/demo_corpus``."""
    return Path(str(resources.files("gradtts_tf") / "demo_corpus"))


def corpus_path(split: str) -> Path:
    """File of one bundled split (``train`` holds only the sentences added to the demo ones).

    Raises:
        ValueError: If ``split`` is not one of :data:`CORPUS_SPLITS`.
    """
    if split not in CORPUS_SPLITS:
        raise ValueError(
            f"unknown corpus split {split!r}; choose one of {', '.join(CORPUS_SPLITS)}"
        )
    return corpus_dir() / f"{split}.txt"


def load_corpus(split: str = "train") -> list[str]:
    """Sentences of one split of the bundled corpus.

    * ``"train"``: the demo sentences (:func:`load_sentences`) followed by several
      thousand filtered WordNet usage examples and fortune-cookie sayings, in a fixed
      shuffled order so that any prefix is varied.
    * ``"dev"``: about a hundred sentences from the same sources, disjoint from
      ``train``, for choosing synthesis settings (temperature, steps, length scale).
    * ``"ood_eval"``: about a hundred sentences of narration from *The Adventures of
      Sherlock Holmes* (public domain), a source none of the training text comes from.

    All splits are deduplicated by :func:`sentence_key`, mutually disjoint and pass
    :func:`sentence_problem`; sources and licences are in ``demo_corpus/SOURCES.md``.

    Args:
        split: One of :data:`CORPUS_SPLITS`.

    Returns:
        Sentences in file order.

    Raises:
        ValueError: If ``split`` is unknown or its file is empty or malformed.
        FileNotFoundError: If the corpus files are missing from the installation.
    """
    path = corpus_path(split)
    if not path.is_file():
        raise FileNotFoundError(
            f"corpus file {path} is missing; reinstall gradtts-tf (the package data "
            "gradtts_tf/demo_corpus/*.txt was not installed)"
        )
    sentences = load_sentences(path)
    return load_sentences() + sentences if split == "train" else sentences


# ---------------------------------------------------------------------------
# Synthesis
# ---------------------------------------------------------------------------


def find_flite(binary: str = "flite") -> str:
    """Resolves the flite executable.

    Args:
        binary: Name looked up on ``PATH`` or a path.

    Returns:
        Absolute path of the executable.

    Raises:
        FliteNotFoundError: If it cannot be found.
    """
    path = shutil.which(binary)
    if path is None:
        raise FliteNotFoundError(
            f"flite not found (looked for {binary!r} on PATH). It speaks the demo "
            "sentences; install it with `sudo apt-get install flite` (Debian/Ubuntu) "
            "or run `make setup`."
        )
    return path


def check_voice(flite: str, voice: str) -> None:
    """Fails early if flite does not know ``voice`` (a built-in name or a voice file).

    Raises:
        FliteNotFoundError: If the voice is neither built in nor an existing file.
    """
    if os.path.exists(voice):
        return
    out = subprocess.run(
        [flite, "-lv"], capture_output=True, text=True, timeout=FLITE_TIMEOUT_S, check=False
    )
    listing = (out.stdout + out.stderr).split(":", 1)[-1].split()
    if voice not in listing:
        raise FliteNotFoundError(
            f"flite voice {voice!r} is not available; built-in voices: {' '.join(listing)}"
        )


def is_valid_wav(path: str | os.PathLike, sample_rate: int) -> bool:
    """Whether ``path`` is a readable, non-empty mono WAV at ``sample_rate``."""
    try:
        info = sf.info(os.fspath(path))
    except Exception:  # missing, truncated or not audio: all mean "redo it"
        return False
    return info.samplerate == sample_rate and info.channels == 1 and info.frames > 0


def synthesize(flite: str, voice: str, text: str, out_path: Path, sample_rate: int) -> None:
    """Speaks ``text`` with flite and writes a 16-bit mono WAV at ``sample_rate``.

    The final file appears atomically (temp file + ``os.replace``), so an interrupted
    run never leaves a half-written wav that a rerun would take as valid.

    Args:
        flite: flite executable path.
        voice: flite voice name or voice file.
        text: Text to speak (passed as one argv item, no shell).
        out_path: Destination ``.wav``.
        sample_rate: Output rate in Hz.

    Raises:
        RuntimeError: If flite fails, times out or produces no audio.
    """
    from gradtts_tf.audio import load_audio, save_audio  # imports TensorFlow: keep lazy

    # Fixed names (not mkstemp) so files get the usual umask permissions; each
    # utterance is handled by exactly one thread.
    raw = out_path.with_name(f".{out_path.stem}.flite.wav")
    tmp = out_path.with_name(f".{out_path.stem}.part.wav")
    try:
        try:
            proc = subprocess.run(
                [flite, "-voice", voice, "-t", text, "-o", raw],
                capture_output=True,
                text=True,
                timeout=FLITE_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise RuntimeError(f"flite timed out after {err.timeout} s on {text!r}") from err
        if proc.returncode != 0 or not raw.is_file() or raw.stat().st_size == 0:
            raise RuntimeError(
                f"flite failed (exit {proc.returncode}) for {out_path.name} {text!r}: "
                f"{proc.stderr.strip()}"
            )
        save_audio(tmp, load_audio(raw, sample_rate), sample_rate)
        os.replace(tmp, out_path)
    finally:
        raw.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)


def _write_metadata(out_dir: Path, rows: Sequence[tuple[str, str, str]]) -> Path:
    """Writes ``metadata.csv`` atomically so readers never see a partial file."""
    path = out_dir / "metadata.csv"
    tmp = out_dir / ".metadata.csv.part"
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(f"{uid}|{text}|{norm}\n" for uid, text, norm in rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _read_metadata_norms(out_dir: Path) -> dict[str, str]:
    """``{id: normalized text}`` of an existing ``metadata.csv`` (empty if none or unreadable)."""
    try:
        lines = (out_dir / "metadata.csv").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    parts = (line.split("|") for line in lines)
    return {p[0]: p[2] for p in parts if len(p) == 3}


def build_demo_dataset(
    out_dir: str | os.PathLike,
    sentences: Sequence[str],
    sample_rate: int = 22050,
    voice: str = "slt",
    jobs: int = 2,
    flite: str = "flite",
    progress: bool = True,
    prefix: str = UTTERANCE_PREFIX,
) -> BuildResult:
    """Speaks ``sentences`` into an LJSpeech-format folder, reusing valid existing wavs.

    An existing wav is redone when the folder's ``metadata.csv`` says it was spoken from
    a different normalized text (the sentence list changed since it was built).

    Args:
        out_dir: Output folder (created if needed).
        sentences: Sentences; sentence ``i`` (0-based) becomes ``{prefix}{i+1:04d}``.
        sample_rate: Output rate in Hz.
        voice: flite voice name or voice file.
        jobs: Parallel flite processes.
        flite: flite executable name or path.
        progress: Show a tqdm progress bar.
        prefix: Utterance id prefix (``demo_`` by default).

    Returns:
        A :class:`BuildResult`.

    Raises:
        FliteNotFoundError: If flite or the voice is missing.
        RuntimeError: If synthesis of an utterance fails.
    """
    flite_path = find_flite(flite)
    check_voice(flite_path, voice)
    out_dir = Path(out_dir)
    wav_dir = out_dir / "wavs"
    wav_dir.mkdir(parents=True, exist_ok=True)

    rows = [
        (f"{prefix}{i:04d}", text, english_cleaners(text))
        for i, text in enumerate(sentences, start=1)
    ]
    spoken = _read_metadata_norms(out_dir)
    todo = [
        r
        for r in rows
        if spoken.get(r[0], r[2]) != r[2] or not is_valid_wav(wav_dir / f"{r[0]}.wav", sample_rate)
    ]
    if todo:
        # Import TensorFlow (via gradtts_tf.audio) once here rather than racing in threads.
        import gradtts_tf.audio  # noqa: F401

    bar = tqdm(
        total=len(rows), initial=len(rows) - len(todo), unit="utt", desc="flite",
        disable=not progress,
    )  # fmt: skip
    with bar, concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [
            pool.submit(synthesize, flite_path, voice, norm, wav_dir / f"{uid}.wav", sample_rate)
            for uid, _, norm in todo
        ]
        try:
            for fut in concurrent.futures.as_completed(futures):
                fut.result()
                bar.update(1)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise

    _write_metadata(out_dir, rows)
    durations = tuple(sf.info(os.fspath(wav_dir / f"{uid}.wav")).duration for uid, _, _ in rows)
    return BuildResult(
        out_dir=out_dir,
        ids=tuple(r[0] for r in rows),
        durations=durations,
        n_synthesized=len(todo),
        n_reused=len(rows) - len(todo),
    )


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


#: ``--corpus`` choices: ``(load_corpus split or None for the demo sentences, id prefix)``.
#: ``large`` keeps the ``demo_`` ids: its first 748 sentences are the demo ones, so their
#: wavs are reused when it is built into a folder that holds the demo dataset.
CORPORA: dict[str, tuple[str | None, str]] = {
    "demo": (None, UTTERANCE_PREFIX),
    "large": ("train", UTTERANCE_PREFIX),
    "dev": ("dev", "dev_"),
    "ood_eval": ("ood_eval", "ood_"),
}


def _positive_int(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return n


def _format_duration(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}h {minutes:02d}m {secs:04.1f}s"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gradtts-demo-data",
        description="Speak the bundled demo sentences with flite into an LJSpeech-format "
        "folder (wavs/*.wav + metadata.csv).",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder, e.g. data/demo")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--corpus",
        choices=tuple(CORPORA),
        default="demo",
        help="demo: the 748 project sentences (default, ~38 min); large: those plus 5500 "
        "sentences of varied English (~5.6 h of audio); "
        "dev / ood_eval: held-out sets for choosing settings / out-of-domain evaluation",
    )
    p.add_argument("--limit", type=_positive_int, default=None, help="only the first N sentences")
    p.add_argument("--sample-rate", type=_positive_int, default=22050, help="Hz (default 22050)")
    p.add_argument("--voice", default="slt", help="flite voice (default slt)")
    p.add_argument("--jobs", type=_positive_int, default=2, help="parallel flite processes")
    source.add_argument(
        "--sentences", type=Path, default=None, help="sentence file instead of --corpus"
    )
    p.add_argument("--flite", default="flite", help="flite executable (default: flite on PATH)")
    add_verbose_argument(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``gradtts-demo-data``).

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        Exit status 0; errors exit via ``SystemExit`` with a message.
    """
    quiet_tensorflow(argv)  # before TensorFlow (imported for resampling) loads
    args = _parser().parse_args(argv)
    split, prefix = CORPORA[args.corpus]
    try:
        if args.sentences is not None:
            sentences = load_sentences(args.sentences)
        else:
            sentences = load_sentences() if split is None else load_corpus(split)
        if args.limit is not None:
            sentences = sentences[: args.limit]
        result = build_demo_dataset(
            args.out,
            sentences,
            sample_rate=args.sample_rate,
            voice=args.voice,
            jobs=args.jobs,
            flite=args.flite,
            prefix=prefix,
        )
    except (FliteNotFoundError, ValueError, OSError, RuntimeError) as err:
        sys.exit(f"gradtts-demo-data: error: {err}")

    n = len(result.ids)
    print(
        f"Wrote {n} utterances to {result.out_dir} "
        f"({result.n_synthesized} synthesized, {result.n_reused} already present)"
    )
    print(
        f"Total duration: {_format_duration(result.total_seconds)} "
        f"({result.total_seconds:.1f} s, mean {result.total_seconds / n:.2f} s, "
        f"min {min(result.durations):.2f} s, max {max(result.durations):.2f} s)"
    )
    # Coverage of what is actually spoken: numbers are expanded to words by the cleaner.
    spoken = [english_cleaners(s) for s in sentences]
    print(format_coverage(phoneme_coverage(spoken), missing_words(spoken)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
