"""The evaluation code on known audio: error rates, recogniser floors, MCD, CLI."""

import json

import numpy as np
import pytest
from conftest import REF

from gradtts_tf import evaluation as ev
from gradtts_tf.audio import load_audio
from gradtts_tf.config import load_config
from gradtts_tf.vocoder import GriffinLimVocoder

SR = 22050
# Measured: pocketsphinx 5.1.1 (default en-us model + LM) on the 24 fixture utterances
# (flite, voice slt) gives WER 14.8 %, CER 7.8 %; on the 20 held-out demo utterances
# 18.4 % (Griffin-Lim resynthesis of those: 15.6 %).
RECORDINGS_MAX_WER = 0.30


@pytest.fixture(scope="module")
def recognizer() -> ev.Recognizer:
    return ev.Recognizer()


@pytest.fixture(scope="module")
def references(demo_corpus) -> list[ev.Reference]:
    return ev.load_references(demo_corpus)


# ---------------------------------------------------------------------------
# Text and error rates on hand-made strings
# ---------------------------------------------------------------------------


def test_normalize_text():
    assert ev.normalize_text("Dr. Who paid $3!") == "doctor who paid three dollars"
    assert ev.normalize_text("  It's 21 -- 'quoted'  ") == "it's twenty one quoted"
    assert ev.normalize_text("100% & more") == "one hundred percent and more"
    assert ev.normalize_text("Well-known, isn't it?") == "well known isn't it"


def test_edit_distance():
    assert ev.edit_distance("kitten", "sitting") == 3
    assert ev.edit_distance("", "abc") == 3
    assert ev.edit_distance(["a", "b"], ["a", "b"]) == 0
    assert ev.edit_distance("flaw", "lawn") == 2


def test_wer_cer_exact_values():
    assert ev.wer("the cat sat on the mat", "the cat sat on the mat") == 0.0
    assert ev.wer("the cat sat", "the cat sat down") == pytest.approx(1 / 3)  # insertion
    assert ev.wer("the cat sat", "a cat") == pytest.approx(2 / 3)  # substitution + deletion
    assert ev.wer("I have 2 dogs.", "i have two dogs") == 0.0  # numbers, case, punctuation
    assert ev.wer("hello world", "") == 1.0
    assert ev.wer("", "") == 0.0
    assert ev.wer("", "noise") == 1.0
    assert ev.cer("abc", "abd") == pytest.approx(1 / 3)
    assert ev.cer("the cat", "the bat") == pytest.approx(1 / 7)
    assert ev.cer("the cat", "thecat") == pytest.approx(1 / 7)  # spaces count
    assert ev.word_errors("a b c d", "a x c") == (2, 4)
    assert ev.char_errors("ab", "abcd") == (2, 2)


# ---------------------------------------------------------------------------
# The recogniser on known audio
# ---------------------------------------------------------------------------


def test_recordings_score_low_wer(references, recognizer):
    report = ev.evaluate_recordings(references, recognizer)
    o = report.overall
    print(f"recordings: WER {o['wer']:.3f}, CER {o['cer']:.3f} over {o['n_words']} words")
    assert o["n_sentences"] == 24
    assert o["wer"] < RECORDINGS_MAX_WER
    assert o["cer"] < RECORDINGS_MAX_WER / 2
    # Most utterances are recognised nearly word for word.
    assert sum(r.wer <= 0.2 for r in report.sentences) >= 16


def test_silence_and_noise_score_wer_near_one(references, recognizer):
    text = references[0].text
    silence = np.zeros(3 * SR, np.float32)
    noise = (0.1 * np.random.default_rng(0).standard_normal(3 * SR)).astype(np.float32)
    for audio in (silence, noise):
        result = ev.score(text, audio, SR, recognizer)
        assert 0.9 <= result.wer <= 1.2, (result.wer, result.hypothesis)
        assert len(result.hypothesis.split()) <= 2


# ---------------------------------------------------------------------------
# Signal measures
# ---------------------------------------------------------------------------


def test_mel_cepstral_distortion(references):
    a = load_audio(references[0].audio_path, SR)
    b = load_audio(references[1].audio_path, SR)
    noise = (0.1 * np.random.default_rng(1).standard_normal(a.size)).astype(np.float32)
    assert ev.mel_cepstrum(a).shape == (a.size // 256, ev.N_CEPSTRA)
    assert ev.mel_cepstral_distortion(a, a) < 1e-6
    # A gain change moves only c0, which MCD leaves out (but for the log floor in pauses).
    assert ev.mel_cepstral_distortion(0.5 * a, a) < 0.1
    same_text = ev.mel_cepstral_distortion(GriffinLimVocoder(load_config().audio)(
        np.asarray(ev.mel_from_config(a, load_config().audio))[None])[0], a)
    other_text = ev.mel_cepstral_distortion(b, a)
    assert same_text < 1.5  # Griffin-Lim of the same mel (measured 0.7 dB)
    assert other_text > 3.0  # another sentence, same voice (measured 4.6 dB)
    assert ev.mel_cepstral_distortion(noise, a) > other_text


def test_mel_cepstrum_recovers_a_cosine_log_spectrum(monkeypatch):
    # ln M_n = c0 + 2 * c3 * cos(pi * 3 * (n + 1/2) / N) must give back c_3 and nothing else.
    n_mels = 80
    n = np.arange(n_mels)
    log_mel = 0.7 + 2 * 0.25 * np.cos(np.pi * 3 * (n + 0.5) / n_mels)
    monkeypatch.setattr(ev, "mel_from_config", lambda audio, cfg: np.tile(log_mel, (5, 1)))
    ceps = ev.mel_cepstrum(np.zeros(2048, np.float32))
    expected = np.zeros(ev.N_CEPSTRA)
    expected[2] = 0.25  # c_3 is column 2: c_0 is dropped
    np.testing.assert_allclose(ceps, np.tile(expected, (5, 1)), atol=1e-12)


def test_mcd_value_from_known_cepstra(monkeypatch):
    """MCD pinned on log-mels whose cepstra are known exactly (derived by hand).

    ``mel_cepstrum`` inverts ``ln M_n = c_0 + 2 sum_d c_d cos(pi d (n + 1/2) / N)``, so a
    log-mel built from cosines has exactly the chosen cepstra. The waveforms are
    placeholders: the patched ``mel_from_config`` hands out a log-mel by their length,
    and ``trim=False`` keeps silence trimming out of it (all-zero audio).
    """
    n_mels, frames = 80, 12
    n = np.arange(n_mels)

    def basis(d):  # the log-mel of c_d = 1
        return 2 * np.cos(np.pi * d * (n + 0.5) / n_mels)

    # A: c_3 ramps 0, 0.1, ..., 1.1 over the frames, so DTW sees distinct frames.
    a = np.stack([0.7 + 0.1 * t * basis(3) for t in range(frames)])  # [12, 80]
    # B: A plus c_5 = 0.2 and c_7 = -0.1 on every frame, a c_0 offset of 1.3 (energy,
    # excluded) and c_30 = 0.5 (beyond D = 24, excluded).
    b = a + 1.3 + 0.2 * basis(5) - 0.1 * basis(7) + 0.5 * basis(30)
    # C: B at half speed (every frame twice), 24 frames.
    c = np.repeat(b, 2, axis=0)
    mels = {2048: a, 4096: b, 6144: c, 8192: a + 1.3 + 0.5 * basis(30)}
    monkeypatch.setattr(ev, "mel_from_config", lambda audio, cfg: mels[np.asarray(audio).size])

    def mcd(x, y):
        return ev.mel_cepstral_distortion(np.zeros(x, np.float32), np.zeros(y, np.float32),
                                          trim=False)

    # Per frame: ||dc|| = sqrt(0.2^2 + 0.1^2) = sqrt(0.05). DTW keeps the diagonal (any
    # other path has more steps, none cheaper than sqrt(0.05)), so the mean over the path
    # is 10 / ln 10 * sqrt(2 * 0.05) = 4.342945 * 0.316228 = 1.373360 dB.
    expected = 10 / np.log(10) * np.sqrt(2 * 0.05)
    assert expected == pytest.approx(1.373360, abs=1e-6)
    assert mcd(2048, 4096) == pytest.approx(expected, rel=1e-9)
    assert mcd(4096, 2048) == pytest.approx(expected, rel=1e-9)
    # Twice as slow: each frame of A is matched to both copies (path of 24 steps, each
    # sqrt(0.05)), so the time stretch costs nothing.
    assert mcd(2048, 6144) == pytest.approx(expected, rel=1e-9)
    # c_0 and cepstra above D only: no distortion.
    assert mcd(2048, 8192) == pytest.approx(0.0, abs=1e-9)
    # Fewer cepstra drop c_5 and c_7 (D = 4): no distortion; D = 6 keeps c_5 only.
    assert ev.mel_cepstral_distortion(np.zeros(2048, np.float32), np.zeros(4096, np.float32),
                                      n_cepstra=4, trim=False) == pytest.approx(0.0, abs=1e-9)
    assert ev.mel_cepstral_distortion(
        np.zeros(2048, np.float32), np.zeros(4096, np.float32), n_cepstra=6, trim=False
    ) == pytest.approx(10 / np.log(10) * np.sqrt(2 * 0.04), rel=1e-9)


def _tone(seconds: float, pad: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    tone = 0.5 * np.sin(2 * np.pi * 220 * t)
    silence = np.zeros(int(pad * SR))
    return np.concatenate([silence, tone, silence]).astype(np.float32)


def test_duration_ratio():
    short, long = _tone(1.0, pad=0.5), _tone(2.0, pad=0.2)
    # Silence is trimmed: 1 s of tone against 2 s, to within a few frames.
    assert ev.duration_ratio(short, long) == pytest.approx(0.5, abs=0.03)
    assert ev.duration_ratio(short, long, trim=False) == pytest.approx(2.0 / 2.4)
    assert ev.duration_ratio(long, long) == 1.0
    silent = np.zeros(SR, np.float32)
    assert ev.trim_silence(silent).size == SR  # nothing to trim against: kept whole


# ---------------------------------------------------------------------------
# The evaluation API and report
# ---------------------------------------------------------------------------


class _Playback:
    """A 'synthesiser' that plays the reference recording of each text."""

    def __init__(self, references):
        self.by_text = {ev.normalize_text(r.text): r.audio_path for r in references}
        self.calls = []

    def tts(self, text, **kwargs):
        self.calls.append(kwargs)
        path = self.by_text.get(ev.normalize_text(text))
        audio = load_audio(path, SR) if path else np.zeros(SR, np.float32)
        return audio, SR


SENTENCE_KEYS = {
    "text", "normalized", "hypothesis", "wer", "cer", "word_errors", "n_words",
    "char_errors", "n_chars", "duration", "reference_id", "mcd", "duration_ratio", "rtf",
    "seconds",
}
OVERALL_KEYS = {"n_sentences", "wer", "cer", "mcd", "duration_ratio", "rtf", "n_words",
                "duration"}


def test_evaluate_report_and_json_schema(references, recognizer, tmp_path):
    refs = references[:2]
    synth = _Playback(refs)
    sentences = [r.text.upper() for r in refs] + ["An unmatched sentence."]
    report = ev.evaluate(
        synth, sentences, refs, vocoders=["griffin-lim"], recognizer=recognizer,
        steps=3, seed=7,
    )
    assert set(report.systems) == {"model", "recordings", "vocoded:griffin-lim"}
    assert synth.calls[0] == {"steps": 3, "temperature": 1.5, "length_scale": 1.0,
                              "solver": "euler", "seed": 7}
    model, recs = report["model"], report["recordings"]
    # Playing the recordings back scores exactly like the recordings.
    for m, r in zip(model.sentences[:2], recs.sentences, strict=True):
        assert m.reference_id == r.reference_id
        assert m.hypothesis == r.hypothesis and m.wer == r.wer
        assert m.mcd == pytest.approx(0.0, abs=1e-9) and m.duration_ratio == 1.0
        assert m.rtf is not None and m.rtf > 0
    unmatched = model.sentences[2]
    assert unmatched.reference_id is None and unmatched.mcd is None
    assert unmatched.duration_ratio is None and unmatched.wer >= 0.9
    o = model.overall
    total = sum(r.word_errors for r in model.sentences) / sum(r.n_words for r in model.sentences)
    assert o["wer"] == pytest.approx(total)
    assert o["mcd"] == pytest.approx(0.0, abs=1e-9)  # the mean over sentences with references
    assert report["vocoded:griffin-lim"].overall["mcd"] < 1.5

    path = tmp_path / "out" / "eval.json"
    report.save_json(path)
    data = json.loads(path.read_text())
    assert set(data) == {"settings", "systems"}
    assert data["settings"]["n_with_reference"] == 2
    for name, system in data["systems"].items():
        assert set(system["overall"]) == OVERALL_KEYS, name
        assert system["sentences"], name
        for s in system["sentences"]:
            assert set(s) == SENTENCE_KEYS
    assert data["systems"]["recordings"]["overall"]["rtf"] is None
    assert len(data["systems"]["model"]["sentences"]) == 3
    table = report.table()
    assert "vocoded:griffin-lim" in table and "WER %" in table


def test_load_references_split_matches_training(demo_corpus):
    from gradtts_tf.data import prepare_corpus

    config = load_config(None, ["data.n_val=4"])
    val = ev.load_references(demo_corpus, "val", config)
    expected = [e["uid"] for e in prepare_corpus(demo_corpus, config, progress=False)
                .split("val", config)]
    assert [r.uid for r in val] == expected and len(val) == 4
    assert len(ev.load_references(demo_corpus, "train", config)) == 20


def test_read_sentences(tmp_path):
    f = tmp_path / "s.txt"
    f.write_text("# comment\nHello there.\n\n  id1|From metadata.|from metadata.\n")
    assert ev.read_sentences(f) == ["Hello there.", "From metadata."]


def test_cli_end_to_end_on_tiny_checkpoint(demo_corpus, references, tmp_path, capsys):
    import evaluate
    from gradtts_tf.convert import main as convert

    ckpt = tmp_path / "ckpt"
    convert([
        "--checkpoint", str(REF / "gradtts_small_state_dict.npz"),
        "--params", str(REF / "gradtts_small_config.json"), "--out", str(ckpt),
    ])
    sentences = tmp_path / "sentences.txt"
    sentences.write_text(f"{references[0].text}\nNo recording of this.\n")
    out = tmp_path / "eval.json"
    evaluate.main([
        "--checkpoint", str(ckpt), "--sentences", str(sentences),
        "--references", str(demo_corpus), "--steps", "2", "--json", str(out), "--quiet",
    ])
    printed = capsys.readouterr().out
    assert "model" in printed and "recordings" in printed and f"wrote {out}" in printed
    data = json.loads(out.read_text())
    systems = data["systems"]
    assert set(systems) == {"model", "recordings", "vocoded:griffin-lim"}
    model = systems["model"]
    assert model["overall"]["n_sentences"] == 2
    assert [s["reference_id"] for s in model["sentences"]] == [references[0].uid, None]
    # An untrained checkpoint does not speak: its WER is near 1 and its MCD high.
    assert model["overall"]["wer"] >= 0.8
    assert model["overall"]["mcd"] > systems["vocoded:griffin-lim"]["overall"]["mcd"]
    assert model["overall"]["rtf"] > 0
    assert systems["recordings"]["overall"]["n_sentences"] == 1
    assert data["settings"]["steps"] == 2 and data["settings"]["split"] == "all"
