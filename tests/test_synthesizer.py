"""Synthesizer API and sentence splitting: batched equals unbatched, seeds, tracing."""

import shutil

import numpy as np
import pytest
import tensorflow as tf

from gradtts_tf import Synthesizer
from gradtts_tf.config import SynthesisSettings
from gradtts_tf.convert import main as convert_main
from gradtts_tf.ops import fix_len_compatibility, sequence_mask
from gradtts_tf.synthesizer import SILENCE_LOG_MEL, piece_noise
from gradtts_tf.text import text_to_ids
from gradtts_tf.text.segment import segment, split_long, split_sentences
from tests.conftest import REF

TEXTS = [
    "A short one.",
    "This sentence is quite a lot longer than the first, so the batch needs padding.",
    "Two sentences here. The second one follows!",
    "Medium length words, spoken clearly.",
    "Yes.",
]


def _convert(out, name="gradtts_small"):
    convert_main([
        "--checkpoint", str(REF / f"{name}_state_dict.npz"),
        "--params", str(REF / f"{name}_config.json"), "--out", str(out),
    ])
    return out


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """The official small test model (random weights, every gate non-zero), Griffin-Lim."""
    return Synthesizer.from_pretrained(_convert(tmp_path_factory.mktemp("ckpt")))


class _FakeVocoder:
    """Stands for `gradtts_tf.vocoder.Vocoder`: records batch shapes."""

    name, sample_rate, hop_length = "fake", 16000, 256

    def __init__(self):
        self.calls = []

    def __call__(self, mel):
        self.calls.append(mel.shape)
        return np.tile(np.linspace(-2, 2, 256, dtype=np.float32), (mel.shape[0], mel.shape[1]))


def _hifigan_folder(out):
    """The official small HiFi-GAN V1 test generator as a checkpoint folder."""
    from gradtts_tf.convert.hifigan import hifigan_from_official

    generator = hifigan_from_official(REF / "hifigan_v1_small_state_dict.npz",
                                      REF / "hifigan_v1_small_config.json")
    generator.save_weights(out / "generator.weights.h5")
    shutil.copy(REF / "hifigan_v1_small_config.json", out / "config.json")
    return out


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# ---------------------------------------------------------------- splitting


def test_split_sentences_keeps_abbreviations_initials_and_decimals():
    text = ('Dr. Smith met J. R. R. Tolkien in the U.S. Army. "Was it 3.5 p.m.?" '
            "Yes! It rained... Then e.g. this stays.\nNew line here.")
    assert split_sentences(text) == [
        "Dr. Smith met J. R. R. Tolkien in the U.S. Army.",
        '"Was it 3.5 p.m.?"',
        "Yes!",
        "It rained...",
        "Then e.g. this stays.",
        "New line here.",
    ]
    assert split_sentences("   ") == []
    assert split_sentences("no final punctuation") == ["no final punctuation"]


def test_split_long_cuts_at_clauses_and_refuses_unsplittable():
    count = len  # characters as tokens
    sentence = "one two three, four five six; seven eight: nine ten - eleven"
    pieces = split_long(sentence, 20, count)
    assert pieces == ["one two three,", "four five six;", "seven eight:", "nine ten - eleven"]
    assert all(len(p) <= 20 for p in pieces)
    assert split_long(sentence, 30, count) == [
        "one two three, four five six;", "seven eight: nine ten - eleven"]
    assert split_long("short.", 20, count) == ["short."]
    with pytest.raises(ValueError, match="over the limit of 5"):
        split_long("unsplittable words here", 5, count)
    assert segment("One. Two.", 50, count, split=False) == ["One. Two."]
    with pytest.raises(ValueError, match="over the limit"):
        segment("One. Two.", 5, count, split=False)


def test_prepare_reports_empty_unpronounceable_and_too_long(synth):
    with pytest.raises(ValueError, match="empty"):
        synth.prepare("   ")
    with pytest.raises(ValueError, match="no letters or phonemes"):
        synth.prepare("?! ...")
    with pytest.raises(ValueError, match="over the limit of 50"):
        synth.prepare(" ".join(["word"] * 40), max_tokens=50)
    # Punctuation that does not start a sentence stays with the previous one.
    pieces = synth.prepare("Hello there. ?! Bye, then.")
    assert [p for p, _ in pieces] == ["Hello there. ?!", "Bye, then."]
    assert pieces[1][1] == text_to_ids("Bye, then.")
    long = "First clause here, second clause there, third clause everywhere."
    assert len(synth.prepare(long, max_tokens=60)) == 3


# ---------------------------------------------------------------- synthesis


def test_batched_equals_unbatched_per_item(synth, monkeypatch):
    monkeypatch.setattr(synth, "vocoder", _FakeVocoder())  # only mels are compared
    kw = dict(steps=2, temperature=1.5, seed=11)
    batched, _ = synth.synthesize(TEXTS, batch_size=3, **kw)
    for k, text in enumerate(TEXTS):
        (alone,), _ = synth.synthesize([text], batch_size=1, **{**kw, "seed": 11 + k})
        assert alone.mel_lengths == batched[k].mel_lengths
        assert _rel(batched[k].mel, alone.mel) < 1e-4, k
    # The stochastic sampler draws its per-step noise per piece as well.
    kw = dict(steps=2, seed=5, stoc=True)
    batched, _ = synth.synthesize(TEXTS[:3], batch_size=8, **kw)
    (alone,), _ = synth.synthesize([TEXTS[2]], **{**kw, "seed": 7})
    assert _rel(batched[2].mel, alone.mel) < 1e-4


def test_decoder_is_not_padding_invariant_so_pieces_are_grouped_by_length(synth):
    """Why the decoder groups pieces by padded length instead of padding them.

    GroupNorm statistics and the linear attention of the official U-Net include the
    padded frames: the same piece decoded with 64 more padded frames changes a lot.
    """
    model = synth.model
    aligned = model.align(np.array([text_to_ids(TEXTS[0])]), [len(text_to_ids(TEXTS[0]))])
    y_len = int(aligned["y_lengths"][0])
    outs = []
    for t_pad in (int(fix_len_compatibility(y_len)), int(fix_len_compatibility(y_len)) + 64):
        mu = tf.pad(aligned["mu_y"][:, :y_len], [[0, 0], [0, t_pad - y_len], [0, 0]])
        mask = sequence_mask([y_len], t_pad)[:, :, None]  # [1, T, 1]
        mel = model.decoder.reverse_diffusion(mu, mask, mu, 2)
        outs.append(mel.numpy()[0, :y_len])
    assert _rel(outs[1], outs[0]) > 1e-2


def test_tts_equals_model_synthesise_with_the_same_noise(synth):
    text = TEXTS[1]
    audio, sr = synth.tts(text, steps=2, temperature=1.3, length_scale=1.2, seed=4)
    (utt,), _ = synth.synthesize([text], steps=2, temperature=1.3, length_scale=1.2,
                                 seed=4)
    ids = text_to_ids(text)
    y_len = utt.mel_lengths[0]
    eps = piece_noise(4, 0, [y_len, synth.model.n_feats])
    noise = tf.pad(eps, [[0, fix_len_compatibility(y_len) - y_len], [0, 0]])[None]
    ref = synth.model.synthesise(np.array([ids]), [len(ids)], n_timesteps=2, temperature=1.3,
                                 length_scale=1.2, noise=noise)
    assert int(ref["mel_lengths"][0]) == y_len
    assert _rel(utt.mel, ref["model_outputs"].numpy()[0]) < 1e-5
    assert sr == 22050 and audio.dtype == np.float32 and audio.shape == (y_len * 256,)
    np.testing.assert_array_equal(audio, utt.audio)


def test_seeds_reproduce_and_differ(synth, monkeypatch):
    monkeypatch.setattr(synth, "vocoder", _FakeVocoder())
    a, _ = synth.tts(TEXTS[0], steps=2, seed=1)
    b, _ = synth.tts(TEXTS[0], steps=2, seed=1)
    np.testing.assert_array_equal(a, b)
    with pytest.warns(DeprecationWarning, match="now called steps"):
        old_name, _ = synth.tts(TEXTS[0], n_timesteps=2, seed=1)
    np.testing.assert_array_equal(a, old_name)
    (u1,), _ = synth.synthesize([TEXTS[0]], steps=2, seed=1)
    (u2,), _ = synth.synthesize([TEXTS[0]], steps=2, seed=2)
    (u3,), _ = synth.synthesize([TEXTS[0]], steps=2)  # random seed
    assert _rel(u1.mel, u2.mel) > 1e-2 and _rel(u1.mel, u3.mel) > 1e-2


def test_sentences_are_joined_with_a_pause(synth):
    (utt,), timings = synth.synthesize([TEXTS[2]], steps=2, seed=0, sentence_pause=0.1)
    assert utt.pieces == ["Two sentences here.", "The second one follows!"]
    pause = round(0.1 * 22050 / 256)  # 9 frames
    first, second = utt.mel_lengths
    assert utt.mel.shape == (first + pause + second, 80)
    assert utt.audio.shape == ((first + pause + second) * 256,)
    np.testing.assert_array_equal(utt.mel[first : first + pause], SILENCE_LOG_MEL)
    assert not np.any(utt.audio[first * 256 : (first + pause) * 256])
    assert np.sqrt(np.mean(utt.audio[: first * 256] ** 2)) > 1e-3
    assert timings.audio == pytest.approx(len(utt.audio) / 22050)
    assert timings.decoder > 0 and timings.encoder > 0 and timings.vocoder > 0
    assert "RTF" in timings.report()
    # Unsplit, the two sentences are one piece.
    (whole,), _ = synth.synthesize([TEXTS[2]], steps=2, seed=0, split_sentences=False)
    assert len(whole.mel_lengths) == 1


def test_sentences_spoken_alone_with_first_piece_join_to_the_whole_text(synth):
    (whole,), _ = synth.synthesize([TEXTS[2]], steps=2, seed=7)
    # Each sentence alone, in one batch with per-text seeds and positions.
    parts, _ = synth.synthesize(whole.pieces, steps=2, seed=[7, 7], first_piece=[0, 1],
                                split_sentences=False)
    joined = np.concatenate([parts[0].audio, synth.pause(), parts[1].audio])
    np.testing.assert_array_equal(joined, whole.audio)
    # Without the position the second sentence gets the first one's noise: other audio.
    (alone,), _ = synth.synthesize([whole.pieces[1]], steps=2, seed=7)
    assert alone.audio.shape == parts[1].audio.shape
    assert not np.array_equal(alone.audio, parts[1].audio)
    # Per-text seeds equal the base-seed convention (text k uses seed + k).
    a, _ = synth.synthesize(TEXTS[:2], steps=2, seed=[5, 6])
    b, _ = synth.synthesize(TEXTS[:2], steps=2, seed=5)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.audio, y.audio)
    with pytest.raises(ValueError, match="2 texts but 1 seeds"):
        synth.synthesize(TEXTS[:2], steps=2, seed=[5])
    assert len(synth.pause(0.1)) == round(0.1 * 22050 / 256) * 256


def test_max_padding_batches_other_lengths_close_to_alone(synth, monkeypatch):
    calls = []
    decode = synth._decode
    monkeypatch.setattr(synth, "_decode", lambda batch, *a: calls.append(
        [p.y_len for p in batch]) or decode(batch, *a))
    kw = dict(steps=2, seed=3, split_sentences=False)
    exact, _ = synth.synthesize(TEXTS, **kw)
    n_exact = len(calls)
    calls.clear()
    padded, _ = synth.synthesize(TEXTS, max_padding=20.0, **kw)
    assert len(calls) == 1 < n_exact  # one batch of every length
    longest = max(range(len(TEXTS)), key=lambda k: exact[k].mel_lengths[0])
    for k, (a, b) in enumerate(zip(exact, padded, strict=True)):
        assert a.mel_lengths == b.mel_lengths and a.audio.shape == b.audio.shape
        if k == longest:  # not padded beyond its own padded length: unchanged
            assert _rel(b.mel, a.mel) < 1e-4
        else:  # padded: the U-Net is not padding-invariant (how much, the voice tells)
            assert _rel(b.mel, a.mel) > 1e-4
    calls.clear()
    tight, _ = synth.synthesize(TEXTS, max_padding=0.05, **kw)
    for batch in calls:
        assert fix_len_compatibility(max(batch)) <= fix_len_compatibility(min(batch)) * 1.05
    with pytest.raises(ValueError, match="max_padding must be >= 0"):
        synth.synthesize(TEXTS, max_padding=-1, **kw)


def test_graphs_are_traced_once_for_all_lengths_and_batch_sizes(synth, monkeypatch):
    monkeypatch.setattr(synth, "vocoder", _FakeVocoder())
    synth.synthesize(TEXTS[:2], steps=2, seed=0, batch_size=2)
    before = synth.tracing_count
    synth.synthesize(TEXTS, steps=2, seed=0, batch_size=4)
    synth.synthesize(["Another, rather different length of text to speak."], steps=2)
    assert synth.tracing_count == before


def test_tts_batch_and_errors(synth):
    out = synth.tts_batch(TEXTS[:2], steps=2, seed=3)
    single, _ = synth.tts(TEXTS[1], steps=2, seed=4)
    assert [sr for _, sr in out] == [22050, 22050]
    assert out[1][0].shape == single.shape
    for audio, _ in out:
        assert audio.dtype == np.float32 and np.all(np.isfinite(audio))
        assert np.max(np.abs(audio)) <= 1.0
    with pytest.raises(ValueError, match="text 1: empty text"):
        synth.tts_batch(["Fine.", ""], steps=2)
    with pytest.raises(ValueError, match="no letters or phonemes"):
        synth.tts("?!", steps=2)
    with pytest.raises(ValueError, match="one speaker"):
        synth.tts("Fine.", speaker=2)
    with pytest.raises(ValueError, match="steps: expected an integer >= 1, got 0"):
        synth.tts("Fine.", steps=0)
    with pytest.raises(ValueError, match="temperature: expected a number > 0"):
        synth.tts("Fine.", temperature=0.0)
    with pytest.raises(TypeError):
        synth.tts_batch("not a list")


def test_vocoder_gets_equal_length_batches_and_sets_the_rate(synth, monkeypatch):
    fake = _FakeVocoder()
    monkeypatch.setattr(synth, "vocoder", fake)
    utts, _ = synth.synthesize(["Same words.", "Same words.", "Other."], steps=2, seed=0)
    assert sorted(fake.calls)[-1][0] == 2  # the two equal-length pieces together
    assert np.max(np.abs(utts[0].audio)) == 1.0  # clipped to [-1, 1]
    assert Synthesizer(synth.model, synth.config, vocoder=fake).sample_rate == 16000
    with pytest.raises(FileNotFoundError, match="griffin-lim"):
        Synthesizer(synth.model, synth.config, vocoder="/no/such/vocoder")


def test_hifigan_waveforms_batched_equal_unbatched(synth, tmp_path, monkeypatch):
    from gradtts_tf.vocoder import load_vocoder

    vocoder = load_vocoder(_hifigan_folder(tmp_path), synth.config.audio)
    monkeypatch.setattr(synth, "vocoder", vocoder)
    batched = synth.tts_batch(TEXTS[:3], steps=2, seed=20, batch_size=3)
    for k, text in enumerate(TEXTS[:3]):
        alone, sr = synth.tts(text, steps=2, seed=20 + k)
        assert sr == 22050 and batched[k][0].shape == alone.shape
        assert np.max(np.abs(batched[k][0] - alone)) < 1e-4
        assert np.sqrt(np.mean(alone**2)) > 1e-4


def test_multispeaker_speakers_differ_and_are_checked(tmp_path):
    synth = Synthesizer.from_pretrained(
        _convert(tmp_path, "gradtts_small_multispeaker"), vocoder=_FakeVocoder())
    (a,), _ = synth.synthesize(["Same text."], steps=1, seed=0, speaker=0)
    (c,), _ = synth.synthesize(["Same text."], steps=1, seed=0, speaker=3)
    assert _rel(c.mel, a.mel) > 1e-3
    with pytest.raises(ValueError, match="out of range"):
        synth.check_speaker(4)


def test_from_pretrained_names_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.yaml not found"):
        Synthesizer.from_pretrained(tmp_path)


def test_frozen_graphs_equal_live_ones_and_freeze_false_follows_the_weights(tmp_path):
    folder = _convert(tmp_path / "ckpt")
    frozen = Synthesizer.from_pretrained(folder)
    live = Synthesizer(frozen.model, frozen.config, vocoder=_FakeVocoder(), freeze=False)
    frozen.vocoder = _FakeVocoder()
    (a,), _ = frozen.synthesize([TEXTS[1]], steps=3, seed=5)
    (b,), _ = live.synthesize([TEXTS[1]], steps=3, seed=5)
    np.testing.assert_allclose(a.mel, b.mel, rtol=1e-5, atol=1e-5)
    # Scaling the decoder's last conv changes what the live graphs say, not the frozen.
    kernel = frozen.model.decoder.estimator.final_conv.kernel
    kernel.assign(kernel * 0.5)
    (a2,), _ = frozen.synthesize([TEXTS[1]], steps=3, seed=5)
    (b2,), _ = live.synthesize([TEXTS[1]], steps=3, seed=5)
    np.testing.assert_allclose(a2.mel, a.mel, rtol=1e-6, atol=1e-6)
    assert np.abs(b2.mel - b.mel).max() > 1e-3


def test_voice_inference_settings_are_the_defaults(synth, monkeypatch):
    import dataclasses

    monkeypatch.setattr(synth, "vocoder", _FakeVocoder())
    voice = dataclasses.replace(synth.config.inference, steps=3, temperature=2.5,
                                length_scale=0.8)
    monkeypatch.setattr(synth.config, "inference", voice)
    assert synth.synthesis_settings() == SynthesisSettings(3, 2.5, 0.8)
    assert synth.synthesis_settings(5, None, 1.0) == SynthesisSettings(5, 2.5, 1.0)
    (by_default,), _ = synth.synthesize([TEXTS[3]], seed=2)
    (explicit,), _ = synth.synthesize([TEXTS[3]], steps=3, temperature=2.5,
                                      length_scale=0.8, seed=2)
    (official,), _ = synth.synthesize([TEXTS[3]], steps=3, temperature=1.5,
                                      length_scale=1.0, seed=2)
    np.testing.assert_array_equal(by_default.mel, explicit.mel)
    assert by_default.mel.shape[0] < official.mel.shape[0]  # length scale 0.8


@pytest.mark.slow  # ~17 s on 2 cores
def test_bfloat16_decoder_is_close_to_float32_and_keeps_the_durations(tmp_path):
    folder = _convert(tmp_path / "ckpt")
    exact = Synthesizer.from_pretrained(folder, vocoder=_FakeVocoder())
    fast = Synthesizer.from_pretrained(folder, vocoder=_FakeVocoder(), decoder_dtype="bfloat16")
    assert fast.model is not exact.model and fast.decoder_dtype == "bfloat16"
    assert fast.model.decoder.estimator.compute_dtype == "bfloat16"
    assert fast.model.encoder.compute_dtype == "float32"
    for a, b in zip(exact.model.weights, fast.model.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    (a,), _ = exact.synthesize([TEXTS[1]], steps=4, seed=5)
    (b,), _ = fast.synthesize([TEXTS[1]], steps=4, seed=5)
    assert a.mel.shape == b.mel.shape  # the encoder and durations stay float32
    err, scale = np.abs(a.mel - b.mel), np.abs(a.mel)
    # bfloat16 keeps ~3 significant digits per activation: measured 0.47 % of the mean
    # and 0.72 % of the largest value here (oneDNN's bfloat16 math alone: 0.29 / 0.38 %).
    assert 0 < err.mean() < 0.01 * scale.mean() and err.max() < 0.02 * scale.max()
    with pytest.raises(ValueError, match="needs freeze=True"):
        Synthesizer(exact.model, exact.config, vocoder=_FakeVocoder(), freeze=False,
                    decoder_dtype="bfloat16")
    with pytest.raises(ValueError, match="decoder_dtype: expected one of float32, bfloat16"):
        Synthesizer(exact.model, exact.config, vocoder=_FakeVocoder(), decoder_dtype="half")
