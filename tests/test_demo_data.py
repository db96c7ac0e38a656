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
