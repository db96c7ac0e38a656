"""Tests for the demo dataset builder (sentence list, phoneme coverage, flite synthesis)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gradtts_tf import demo_data
from gradtts_tf.text import english_cleaners

SENTENCES = demo_data.default_sentences_path()
HAS_FLITE = shutil.which("flite") is not None
needs_flite = pytest.mark.skipif(
    not HAS_FLITE, reason="flite not installed (apt-get install flite)"
)


def test_sentence_file_is_clean_and_large() -> None:
    raw = SENTENCES.read_bytes().decode("utf-8")  # must be valid UTF-8
    lines = raw.splitlines()
    assert all(line.strip() == line and line for line in lines), "blank or padded lines"
    assert len(set(lines)) == len(lines), "duplicate sentences"
    assert len(lines) >= 650
    assert not any("|" in line for line in lines)
    assert demo_data.load_sentences() == lines
    n_words = np.array([len(line.split()) for line in lines])
    assert n_words.min() >= 3 and n_words.max() <= 25
    # Most clips should be ~2-5 s, i.e. 6-15 words.
    assert np.mean((n_words >= 6) & (n_words <= 15)) > 0.8


def test_phoneme_coverage_of_sentence_file() -> None:
    sentences = demo_data.load_sentences()
    coverage = demo_data.phoneme_coverage(sentences)
    assert set(coverage) == set(demo_data.ARPABET_PHONEMES)
    assert len(coverage) == 39
    low = {p: c for p, c in coverage.items() if c < demo_data.MIN_PHONEME_COUNT}
    assert not low, f"phonemes below {demo_data.MIN_PHONEME_COUNT}: {low}"
    # Apart from numerals, every word is in CMUdict.
    missing = demo_data.missing_words(sentences)
    assert all(any(ch.isdigit() for ch in w) for w in missing), missing
    # Spoken (number-expanded) text has no dictionary gaps at all.
    assert demo_data.missing_words(english_cleaners(s) for s in sentences) == {}


def test_phoneme_coverage_counts_small_example() -> None:
    coverage = demo_data.phoneme_coverage(["The boy's toy-box!", "Measure 1999."])
    # the = DH AH; boy's = B OY Z; toy = T OY; box = B AA K S; measure = M EH ZH ER
    expected = {"DH": 1, "AH": 1, "B": 2, "OY": 2, "Z": 1, "T": 1, "AA": 1, "K": 1, "S": 1}
    expected |= {"M": 1, "EH": 1, "ZH": 1, "ER": 1}
    assert {p: c for p, c in coverage.items() if c} == expected
    assert demo_data.missing_words(["Measure 1999.", "qzxv qzxv"]) == {"1999": 1, "qzxv": 2}


def test_load_sentences_rejects_separator(tmp_path: Path) -> None:
    bad = tmp_path / "s.txt"
    bad.write_text("fine line\n\nbad | line\n", encoding="utf-8")
    with pytest.raises(ValueError, match="separator"):
        demo_data.load_sentences(bad)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert demo_data.main(["--out", str(out), "--limit", "3", "--jobs", "2"]) == 0
    return out


@needs_flite
def test_build_limit_3(built: Path) -> None:
    sentences = demo_data.load_sentences()[:3]
    wavs = sorted((built / "wavs").glob("*.wav"))
    assert [w.name for w in wavs] == ["demo_0001.wav", "demo_0002.wav", "demo_0003.wav"]
    assert not list((built / "wavs").glob(".*")), "temp files left behind"
    for wav in wavs:
        audio, rate = sf.read(wav, dtype="float32")
        info = sf.info(wav)
        assert rate == 22050 and info.channels == 1 and info.subtype == "PCM_16"
        assert 0.5 < len(audio) / rate < 15.0
        assert np.sqrt(np.mean(audio**2)) > 0.01  # non-silent
        assert np.max(np.abs(audio)) <= 1.0
    lines = (built / "metadata.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    for i, (line, text) in enumerate(zip(lines, sentences, strict=True), start=1):
        uid, raw, norm = line.split("|")
        assert uid == f"demo_{i:04d}"
        assert raw == text
        assert norm == english_cleaners(text)


@needs_flite
def test_rerun_skips_existing(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wavs = sorted((built / "wavs").glob("*.wav"))
    before = {w: w.stat().st_mtime_ns for w in wavs}
    meta_before = (built / "metadata.csv").read_text(encoding="utf-8")
    capsys.readouterr()
    assert demo_data.main(["--out", str(built), "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert "0 synthesized, 3 already present" in out
    assert {w: w.stat().st_mtime_ns for w in wavs} == before
    assert (built / "metadata.csv").read_text(encoding="utf-8") == meta_before


@needs_flite
def test_rerun_replaces_corrupt_wav(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    (out / "wavs").mkdir(parents=True)
    (out / "wavs" / "demo_0001.wav").write_bytes(b"RIFF truncated")
    result = demo_data.build_demo_dataset(out, ["A short test sentence."], progress=False)
    assert result.n_synthesized == 1 and result.n_reused == 0
    assert demo_data.is_valid_wav(out / "wavs" / "demo_0001.wav", 22050)
    assert 0.5 < result.total_seconds < 15.0
    # A different target rate invalidates the existing file.
    assert not demo_data.is_valid_wav(out / "wavs" / "demo_0001.wav", 16000)


def test_missing_flite_binary_gives_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        demo_data.main(["--out", str(tmp_path / "d"), "--flite", "no-such-flite-xyz"])
    assert "apt-get install flite" in str(exc.value)
    assert "make setup" in str(exc.value)
    assert not (tmp_path / "d").exists()


def test_flite_not_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SystemExit) as exc:
        demo_data.main(["--out", str(tmp_path / "d"), "--limit", "1"])
    assert "flite not found" in str(exc.value)
    assert "apt-get install flite" in str(exc.value)


@needs_flite
def test_unknown_voice(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        demo_data.main(["--out", str(tmp_path / "d"), "--voice", "no_such_voice"])
    assert "no_such_voice" in str(exc.value) and "slt" in str(exc.value)


@pytest.mark.parametrize("flag", ["--limit", "--jobs", "--sample-rate"])
def test_rejects_non_positive_ints(flag: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        demo_data.main(["--out", str(tmp_path), flag, "0"])
    assert exc.value.code == 2


# ---------------------------------------------------------------------------
# The large corpus (train / dev / ood_eval)
# ---------------------------------------------------------------------------

# Well-known Harvard (IEEE) sentences: intelligibility-test material that must never be
# training or evaluation text.
HARVARD = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "Oak is strong and also gives shade.",
    "Cats and dogs each hate the other.",
)


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[str]]:
    return {split: demo_data.load_corpus(split) for split in demo_data.CORPUS_SPLITS}


def test_corpus_sizes(corpus: dict[str, list[str]]) -> None:
    assert demo_data.CORPUS_SPLITS == ("train", "dev", "ood_eval")
    assert len(corpus["train"]) == 748 + 5500
    assert len(corpus["dev"]) == 100
    assert len(corpus["ood_eval"]) == 100
    # The project sentences lead the training split, in order (same ids as --corpus demo).
    assert corpus["train"][:748] == demo_data.load_sentences()
    n_words = np.array([len(s.split()) for s in corpus["train"]])
    assert 8 < n_words.mean() < 12 and n_words.min() >= 3 and n_words.max() <= 30
    # The package data stays small.
    sizes = {p.name: p.stat().st_size for p in demo_data.corpus_dir().glob("*.txt")}
    assert set(sizes) == {"train.txt", "dev.txt", "ood_eval.txt"}
    assert sum(sizes.values()) < 400_000


def test_corpus_files_are_clean_lines() -> None:
    for split in demo_data.CORPUS_SPLITS:
        raw = demo_data.corpus_path(split).read_bytes().decode("ascii")  # plain ASCII
        assert raw.endswith("\n") and "\r" not in raw
        assert all(line and line.strip() == line for line in raw.splitlines()), split


def test_corpus_has_no_duplicates_and_splits_are_disjoint(
    corpus: dict[str, list[str]],
) -> None:
    keys = {split: [demo_data.sentence_key(s) for s in sents] for split, sents in corpus.items()}
    for split, k in keys.items():
        assert len(set(k)) == len(k), f"normalized duplicates in {split}"
    train, dev, ood = (set(keys[s]) for s in demo_data.CORPUS_SPLITS)
    assert not train & dev and not train & ood and not dev & ood


def test_every_corpus_sentence_is_speakable(corpus: dict[str, list[str]]) -> None:
    problems = {
        s: demo_data.sentence_problem(s)
        for sents in corpus.values()
        for s in sents
        if demo_data.sentence_problem(s) is not None
    }
    assert not problems, list(problems.items())[:10]
    # The cleaners leave only what the symbol table and flite both read.
    allowed = set("abcdefghijklmnopqrstuvwxyz .,!?;:'-")
    for s in corpus["train"] + corpus["dev"] + corpus["ood_eval"]:
        assert set(english_cleaners(s)) <= allowed, s


def test_corpus_has_no_harvard_sentences(corpus: dict[str, list[str]]) -> None:
    everything = {demo_data.sentence_key(s) for sents in corpus.values() for s in sents}
    for sentence in HARVARD:
        assert demo_data.is_test_list_sentence(sentence)
        assert demo_data.sentence_problem(sentence) == "standard intelligibility-test sentence"
        assert demo_data.sentence_key(sentence) not in everything
    # Caught inside a longer line and whatever the case and punctuation.
    inside = "Then he said: the BIRCH canoe slid on the smooth planks"
    assert demo_data.is_test_list_sentence(inside)
    assert not any(demo_data.is_test_list_sentence(s) for sents in corpus.values() for s in sents)


def test_ood_eval_comes_from_another_source(corpus: dict[str, list[str]]) -> None:
    # Narration from the novel: its detective is everywhere there and absent from the
    # training text.
    ood_text = " ".join(corpus["ood_eval"]).lower()
    train_text = " ".join(corpus["train"] + corpus["dev"]).lower()
    assert ood_text.count("holmes") >= 10
    assert "sherlock" not in train_text and "baker street" not in train_text
    assert train_text.count("holmes") <= 1  # one fortune mentions a department store


def test_phoneme_coverage_of_large_corpus(corpus: dict[str, list[str]]) -> None:
    spoken = [english_cleaners(s) for s in corpus["train"]]
    coverage = demo_data.phoneme_coverage(spoken)
    assert len(coverage) == 39
    # Measured: ZH is the rarest phoneme with about 200 occurrences.
    low = {p: c for p, c in coverage.items() if c < 150}
    assert not low, low
    assert demo_data.missing_words(spoken) == {}
    # The large corpus is several times richer than the demo sentences alone.
    demo = demo_data.phoneme_coverage(english_cleaners(s) for s in demo_data.load_sentences())
    assert sum(coverage.values()) > 5 * sum(demo.values())


@pytest.mark.parametrize(
    ("sentence", "reason"),
    [
        ("Too short.", "words"),
        ("This one has no final punctuation", "capital letter"),
        ("lowercase start is not a sentence.", "capital letter"),
        ("See http://example.com for more.", "characters"),
        ('She said "hello" twice.', "characters"),
        ("The NASA launch was delayed.", "all-caps"),
        ("We meet at 3:45 on Monday.", "number"),
        ("Version 1.2.3 fixed it.", "number"),
        ("He likes his MP3 player.", "number"),
        ("This is a damn fine cup.", "blocked word"),
        ("It was goin' well until noon.", "apostrophe"),
        ("The zorblatt quivered in the sun.", "CMUdict"),
        ("Wait ... what did you say?", "space"),
        ("A " + "very " * 30 + "long one.", "words"),
    ],
)
def test_filter_rejects(sentence: str, reason: str) -> None:
    problem = demo_data.sentence_problem(sentence)
    assert problem is not None and reason in problem, (sentence, problem)


@pytest.mark.parametrize(
    "sentence",
    [
        "The repair bill came to $1,250.",
        "Her birthday falls on the 21st of March.",
        "The marathon covers 26.2 miles.",
        "Don't count your chickens before they hatch!",
        "Is it raining in the mother-in-law's garden?",
    ],
)
def test_filter_accepts(sentence: str) -> None:
    assert demo_data.sentence_problem(sentence) is None


def test_load_corpus_rejects_unknown_split() -> None:
    with pytest.raises(ValueError, match="train, dev, ood_eval"):
        demo_data.load_corpus("test")


def test_corpus_and_sentences_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        demo_data.main(["--out", str(tmp_path), "--corpus", "large", "--sentences", "x.txt"])
    assert exc.value.code == 2


@needs_flite
def test_build_large_and_ood_limit(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --corpus large starts with the demo sentences under the same ids: building it
    # into the demo folder reuses their wavs.
    capsys.readouterr()
    assert demo_data.main(["--out", str(built), "--corpus", "large", "--limit", "3"]) == 0
    assert "0 synthesized, 3 already present" in capsys.readouterr().out

    out = tmp_path / "ood"
    assert demo_data.main(["--out", str(out), "--corpus", "ood_eval", "--limit", "2"]) == 0
    printed = capsys.readouterr().out
    assert "Wrote 2 utterances" in printed and "2 synthesized" in printed
    assert "Phoneme coverage" in printed
    wavs = sorted(p.name for p in (out / "wavs").glob("*.wav"))
    assert wavs == ["ood_0001.wav", "ood_0002.wav"]
    lines = (out / "metadata.csv").read_text(encoding="utf-8").splitlines()
    expected = demo_data.load_corpus("ood_eval")[:2]
    assert [line.split("|")[1] for line in lines] == expected
    for wav in (out / "wavs").glob("*.wav"):
        assert 1.0 < sf.info(wav).duration < 15.0


@needs_flite
def test_rerun_redoes_wav_of_changed_sentence(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    first = demo_data.build_demo_dataset(out, ["A short test sentence."], progress=False)
    assert first.n_synthesized == 1
    again = demo_data.build_demo_dataset(out, ["A short test sentence."], progress=False)
    assert again.n_reused == 1
    changed = demo_data.build_demo_dataset(out, ["A different sentence now."], progress=False)
    assert changed.n_synthesized == 1 and changed.n_reused == 0
