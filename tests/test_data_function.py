import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from data_function import build_dataset, prepare_corpus, read_corpus
from gradtts_tf.audio import load_audio, mel_spectrogram
from gradtts_tf.config import load_config
from gradtts_tf.text import text_to_ids

SR = 22050


def _tone(seconds: float, freq: float = 220.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _config(tmp_path, *extra):
    return load_config(
        None,
        [
            "train.batch_size=2", "data.n_val=2", f"data.cache_dir={tmp_path / 'cache'}",
            *extra,
        ],
    )


@pytest.fixture
def corpus(tmp_path):
    """An LJSpeech folder with 8 good utterances and one of each kind of bad input."""
    root = tmp_path / "lj"
    (root / "wavs").mkdir(parents=True)
    lines = []
    for i in range(8):
        sf.write(root / "wavs" / f"good{i}.wav", _tone(0.4 + 0.1 * i, 200 + 20 * i), SR)
        lines.append(f"good{i}|Sentence number {i}.|Sentence number {i}.".encode())
    sf.write(root / "wavs" / "rate16k.wav", _tone(0.5, sr=16000), 16000)
    lines.append(b"rate16k|Resampled audio here.|Resampled audio here.")
    lines.append(b"missing|This file does not exist.|This file does not exist.")
    sf.write(root / "wavs" / "empty.wav", np.zeros(0, np.float32), SR)
    lines.append(b"empty|Zero length audio.|Zero length audio.")
    (root / "wavs" / "corrupt.wav").write_bytes(b"RIFF not really a wave file")
    lines.append(b"corrupt|Corrupt audio.|Corrupt audio.")
    sf.write(root / "wavs" / "notext.wav", _tone(0.5), SR)
    lines.append(b"notext|?!|?!")
    lines.append(b"a line without any separator")
    lines.append(b"latin1|caf\xe9 au lait|caf\xe9 au lait")
    (root / "metadata.csv").write_bytes(b"\n".join(lines) + b"\n")
    return root


def test_bad_input_is_skipped_and_reported(corpus, tmp_path):
    manifest = prepare_corpus(corpus, _config(tmp_path), progress=False)
    uids = sorted(e["uid"] for e in manifest.entries)
    assert uids == sorted([f"good{i}" for i in range(8)] + ["rate16k"])
    reasons = {s["uid"]: s["reason"] for s in manifest.skipped}
    assert reasons["missing"] == "bad audio"
    assert reasons["empty"] == "bad audio"
    assert reasons["corrupt"] == "bad audio"
    assert reasons["notext"] == "unusable transcript"
    by_reason = {s["reason"]: s for s in manifest.skipped}
    assert by_reason["malformed line"]["source"].endswith("metadata.csv:14")
    assert by_reason["non-UTF-8 line"]["source"].endswith("metadata.csv:15")
    out = manifest.summary()
    assert "9 utterances usable, 6 skipped" in out
    assert "metadata.csv:14" in out
    assert "resampled 1 files from 16000 Hz" in out


def test_manifest_is_cached_and_reused(corpus, tmp_path):
    config = _config(tmp_path)
    first = prepare_corpus(corpus, config, progress=False)
    mel_file = first.entries[0]["mel_path"]
    stamp = (tmp_path / "cache").stat().st_mtime_ns, np.load(mel_file).shape
    second = prepare_corpus(corpus, config, progress=False)
    assert second == first
    assert np.load(mel_file).shape == stamp[1]
    # Changing a setting that affects features invalidates the cache.
    third = prepare_corpus(corpus, _config(tmp_path, "audio.f_max=7000.0"), progress=False)
    assert third.cache_dir != first.cache_dir


def test_batches_have_static_padded_shapes_and_right_content(corpus, tmp_path):
    config = _config(tmp_path)
    manifest = prepare_corpus(corpus, config, progress=False)
    ds = build_dataset(corpus, config, "all", manifest=manifest)
    spec = ds.element_spec
    assert spec["x"].shape.as_list() == [None, manifest.max_text_len]
    assert spec["y"].shape.as_list() == [None, manifest.max_mel_len, 80]
    assert manifest.max_mel_len % 4 == 0
    batch = next(iter(ds))
    first = sorted(manifest.entries, key=lambda e: e["uid"])[0]
    ids = text_to_ids("Sentence number 0.")
    assert batch["x"][0, : len(ids)].numpy().tolist() == ids
    assert int(batch["x_lengths"][0]) == len(ids)
    mel = mel_spectrogram(load_audio(first["audio_path"], SR)).numpy()
    n = mel.shape[0]
    assert int(batch["y_lengths"][0]) == n
    np.testing.assert_allclose(batch["y"][0, :n].numpy(), mel, atol=1e-5)
    assert np.all(batch["y"][0, n:].numpy() == 0)
    assert batch["spk"].dtype == tf.int32


def test_train_split_is_reproducible_and_disjoint(corpus, tmp_path):
    config = _config(tmp_path)
    manifest = prepare_corpus(corpus, config, progress=False)
    train = {e["uid"] for e in manifest.split("train", config)}
    val = {e["uid"] for e in manifest.split("val", config)}
    assert len(val) == 2 and not train & val and len(train | val) == 9
    assert val == {e["uid"] for e in manifest.split("val", config)}
    ds = build_dataset(corpus, config, "train", manifest=manifest)
    assert ds.element_spec["x"].shape[0] == 2  # drop_remainder: static batch for XLA
    assert sum(1 for _ in ds) == len(train) // 2


def test_uncached_pipeline_equals_cached(corpus, tmp_path):
    cached = _config(tmp_path)
    plain = _config(tmp_path, "data.cache_mels=false")
    a = next(iter(build_dataset(corpus, cached, "all")))
    b = next(iter(build_dataset(corpus, plain, "all")))
    np.testing.assert_allclose(a["y"].numpy(), b["y"].numpy(), atol=1e-5)
    assert np.array_equal(a["x"].numpy(), b["x"].numpy())


def test_bucketing_gives_few_static_shapes(corpus, tmp_path):
    config = _config(tmp_path, "data.bucketing=true", "data.n_buckets=2", "data.n_val=0")
    manifest = prepare_corpus(corpus, config, progress=False)
    ds = build_dataset(corpus, config, "train", manifest=manifest)
    shapes = set()
    for batch in ds:
        t = batch["y"].shape[1]
        shapes.add(t)
        assert t % 4 == 0 and int(tf.reduce_max(batch["y_lengths"])) <= t
        assert batch["x"].shape[1] == manifest.max_text_len
    assert 1 <= len(shapes) <= 3
    assert max(shapes) <= manifest.max_mel_len


def test_filelist_with_speakers(tmp_path):
    for i in range(3):
        sf.write(tmp_path / f"u{i}.wav", _tone(0.5), SR)
    filelist = tmp_path / "train.txt"
    filelist.write_text("u0.wav|Hello there.|0\nu1.wav|Good day.|3\nu2.wav|Bad speaker.|x\n")
    utts, skipped = read_corpus(filelist)
    assert [u.speaker for u in utts] == [0, 3]
    assert skipped[0]["reason"] == "bad speaker id"
    config = _config(tmp_path, "model.n_spks=2")
    manifest = prepare_corpus(filelist, config, progress=False)
    assert [e["uid"] for e in manifest.entries] == ["u0"]  # speaker 3 >= n_spks
    assert any("not in [0, 2)" in s["detail"] for s in manifest.skipped)


def test_missing_data_path_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="data path not found"):
        read_corpus(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="without metadata.csv"):
        read_corpus(tmp_path)


def test_damaged_cache_mid_epoch_is_skipped_not_fatal(corpus, tmp_path, caplog):
    config = _config(tmp_path)
    manifest = prepare_corpus(corpus, config, progress=False)
    ds = build_dataset(corpus, config, "all", manifest=manifest)
    victim = sorted(manifest.entries, key=lambda e: e["uid"])[0]
    open(victim["mel_path"], "wb").close()  # truncated file: np.load raises EOFError
    n = sum(int(b["x"].shape[0]) for b in ds)
    assert n == len(manifest.entries) - 1
    assert any(victim["uid"] in r.getMessage() and "metadata.csv:" in r.getMessage()
               for r in caplog.records)


def test_new_audio_invalidates_the_cache(corpus, tmp_path):
    config = _config(tmp_path)
    first = prepare_corpus(corpus, config, progress=False)
    assert "missing" not in {e["uid"] for e in first.entries}
    sf.write(corpus / "wavs" / "missing.wav", _tone(0.5), SR)
    second = prepare_corpus(corpus, config, progress=False)
    assert "missing" in {e["uid"] for e in second.entries}
