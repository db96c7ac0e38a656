import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from gradtts_tf.audio import load_audio, mel_spectrogram
from gradtts_tf.config import ConfigError, load_config
from gradtts_tf.data import Manifest, build_dataset, prepare_corpus, read_corpus
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


def test_manifest_is_cached_and_reused(corpus, tmp_path, monkeypatch):
    import os
    from pathlib import Path

    from gradtts_tf.data import pipeline as data_function

    # Count the expensive work: audio reads (one per utterance with a usable transcript)
    # and traces of the mel function (one per preparation pass).
    calls = {"load_audio": 0, "mel": 0}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(data_function, "load_audio",
                        counted("load_audio", data_function.load_audio))
    monkeypatch.setattr(data_function, "mel_from_config",
                        counted("mel", data_function.mel_from_config))

    def cache_state(cache_dir):
        return {p.name: (p.stat().st_mtime_ns, p.stat().st_ino)
                for p in sorted(Path(cache_dir).iterdir())}

    config = _config(tmp_path)
    first = prepare_corpus(corpus, config, progress=False)
    # 8 good + rate16k + missing/empty/corrupt reach the audio reader ("?!" and the
    # malformed/latin-1 lines are rejected before).
    assert calls == {"load_audio": 12, "mel": 1}
    cached = cache_state(first.cache_dir)
    assert set(cached) == {"manifest.json"} | {f"{e['uid']}.npy" for e in first.entries}
    # Back-date every cached file, so a rewrite on the second call cannot hide within the
    # file system's timestamp granularity.
    for name in cached:
        os.utime(Path(first.cache_dir) / name, ns=(10**18, 10**18))
    cached = cache_state(first.cache_dir)
    mels = {e["uid"]: np.load(e["mel_path"]) for e in first.entries}

    second = prepare_corpus(corpus, config, progress=False)
    assert second == first
    assert calls == {"load_audio": 12, "mel": 1}  # nothing read or computed again
    assert cache_state(first.cache_dir) == cached  # nothing rewritten, nothing added

    # A setting that changes the features invalidates the cache: a new folder, every
    # utterance read again, other mels; the old cache is left as it was.
    third = prepare_corpus(corpus, _config(tmp_path, "audio.f_max=7000.0"), progress=False)
    assert Path(third.cache_dir).parent == Path(first.cache_dir).parent
    assert third.cache_dir != first.cache_dir
    assert calls == {"load_audio": 24, "mel": 2}
    for e in third.entries:
        other = np.load(e["mel_path"])
        assert other.shape == mels[e["uid"]].shape
        assert np.abs(other - mels[e["uid"]]).max() > 0.1, e["uid"]
    assert cache_state(first.cache_dir) == cached

    # A cached mel that went missing makes the manifest unusable: the corpus is prepared
    # again and the same features come back.
    victim = first.entries[0]
    os.remove(victim["mel_path"])
    fourth = prepare_corpus(corpus, config, progress=False)
    assert calls == {"load_audio": 36, "mel": 3}
    assert fourth == first
    np.testing.assert_array_equal(np.load(victim["mel_path"]), mels[victim["uid"]])


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


def test_val_ids_are_held_out_besides_the_random_split(corpus, tmp_path, caplog):
    config = _config(tmp_path)
    manifest = prepare_corpus(corpus, config, progress=False)
    random_val = {e["uid"] for e in manifest.split("val", config)}
    train_before = [e["uid"] for e in manifest.split("train", config)]
    chosen = train_before[:2]
    config = _config(tmp_path, f"data.val_ids=[{chosen[0]}, {chosen[1]}, no_such_id]")
    with caplog.at_level("WARNING", logger="gradtts_tf.data"):
        val = {e["uid"] for e in manifest.split("val", config)}
    train = {e["uid"] for e in manifest.split("train", config)}
    assert set(chosen) <= val and len(val) == 4  # the 2 chosen + n_val=2 drawn at random
    assert not train & val and len(train | val) == 9
    assert "no_such_id" in caplog.text and "1 of 3 ids" in caplog.text
    # Without val_ids the split is what it always was.
    assert random_val == {e["uid"] for e in manifest.split("val", _config(tmp_path))}


def test_val_ids_must_be_a_list_of_strings():
    with pytest.raises(ConfigError, match="data.val_ids: expected a list of strings"):
        load_config(None, ["data.val_ids=demo_0001"])


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


DEMO_YAML = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"

# The bad rows of `_five_good_five_bad`: metadata.csv line -> (id, reason, detail snippet).
BAD_ROWS = {
    2: ("missing", "bad audio", "audio file not found"),
    4: ("corrupt", "bad audio", "cannot read audio file"),
    6: ("zerolen", "bad audio", "no samples"),
    8: ("emptytext", "unusable transcript", "empty or whitespace only"),
    10: ("?", "malformed line", "expected 'id|text|normalized'"),
}


def _five_good_five_bad(root: Path) -> Path:
    """An LJSpeech folder: good0..good4 on odd lines, one bad row of each kind between."""
    (root / "wavs").mkdir(parents=True)
    for i in range(5):
        sf.write(root / "wavs" / f"good{i}.wav", _tone(0.4 + 0.1 * i, 200 + 20 * i), SR)
    (root / "wavs" / "corrupt.wav").write_bytes(b"RIFF not really a wave file")
    sf.write(root / "wavs" / "zerolen.wav", np.zeros(0, np.float32), SR)
    sf.write(root / "wavs" / "emptytext.wav", _tone(0.5), SR)
    bad = [
        "missing|This file does not exist.|This file does not exist.",
        "corrupt|Corrupt audio.|Corrupt audio.",
        "zerolen|Zero length audio.|Zero length audio.",
        "emptytext||",
        "a line without any separator",
    ]
    lines = []
    for i in range(5):
        lines += [f"good{i}|Sentence number {i}.|Sentence number {i}.", bad[i]]
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def five_good(tmp_path) -> Path:
    return _five_good_five_bad(tmp_path / "lj5")


def _warnings(caplog) -> list[str]:
    return [
        r.getMessage() for r in caplog.records
        if r.name == "gradtts_tf.data" and r.levelno == logging.WARNING
    ]


def test_build_dataset_logs_one_warning_per_skipped_row(five_good, tmp_path, caplog):
    config = _config(tmp_path, "data.n_val=1")
    for attempt in ("first pass", "manifest from the cache"):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="gradtts_tf.data"):
            ds = build_dataset(five_good, config, split="train")
        warnings = _warnings(caplog)
        assert len(warnings) == len(BAD_ROWS), (attempt, warnings)
        for line, (uid, reason, detail) in BAD_ROWS.items():
            source = f"{five_good / 'metadata.csv'}:{line}"
            matching = [w for w in warnings if f"{source} " in w]
            assert len(matching) == 1, (attempt, source, warnings)
            assert f"({uid}): {reason}: " in matching[0] and detail in matching[0]
        infos = [r.getMessage() for r in caplog.records
                 if r.name == "gradtts_tf.data" and r.levelno == logging.INFO]
        assert any("5 utterances usable, 5 skipped" in m for m in infos), (attempt, infos)
        assert any("skipped 3 x bad audio" in m for m in infos)
    assert [int(b["x"].shape[0]) for b in ds] == [2, 2]  # 4 training utterances


def test_prepare_corpus_logs_the_manifest_summary(five_good, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="gradtts_tf.data"):
        manifest = prepare_corpus(five_good, _config(tmp_path), progress=False)
    assert _warnings(caplog) == [f"skipped {Manifest.describe_skip(s)}" for s in manifest.skipped]
    summary = manifest.summary()
    assert all(Manifest.describe_skip(s) in summary for s in manifest.skipped)


def test_train_split_smaller_than_a_batch_is_a_clear_error(five_good):
    # configs/demo.yaml: train.batch_size 8, data.n_val 20 (capped: 4 of the 5 go to val).
    with pytest.raises(ValueError) as err:
        build_dataset(five_good, str(DEMO_YAML), split="train")
    message = str(err.value)
    assert f"split 'train' of {five_good} has 1 usable utterances" in message
    assert "train.batch_size=8" in message
    assert ("lower data.n_val (now 20) or data.val_fraction (now 0.0): the 'val' split "
            "holds 4") in message
    assert "fix the 5 skipped utterances" in message
    config = load_config(DEMO_YAML, ["data.n_val=0"])
    with pytest.raises(ValueError, match=r"has 5 usable utterances, fewer than one batch of "
                                         r"train\.batch_size=8.*Set train\.batch_size to 5"):
        build_dataset(five_good, config, split="train")


def test_train_split_of_exactly_one_batch_yields_it(five_good, tmp_path):
    config = _config(tmp_path, "data.n_val=0", "train.batch_size=5")
    batches = list(build_dataset(five_good, config, split="train"))
    assert len(batches) == 1
    assert sorted(batches[0]["x_lengths"].numpy().tolist()) == sorted(
        len(text_to_ids(f"Sentence number {i}.")) for i in range(5)
    )


def test_val_split_smaller_than_a_batch_still_yields_it(five_good, tmp_path):
    config = _config(tmp_path, "data.n_val=3", "train.batch_size=8")
    assert [int(b["x"].shape[0]) for b in build_dataset(five_good, config, "val")] == [3]
    empty = _config(tmp_path, "data.n_val=0")
    with pytest.raises(ValueError, match=r"split 'val' of .* is empty \(5 usable utterances"
                                         r".*set data\.n_val or data\.val_fraction above 0"):
        build_dataset(five_good, empty, "val")


def test_resumable_stream_fills_batches_across_epochs(five_good, tmp_path):
    # `start` (as train.py uses it) makes an endless stream: 5 items fill batches of 8.
    config = _config(tmp_path, "data.n_val=0", "train.batch_size=8")
    batches = list(build_dataset(five_good, config, "train", start=0).take(2))
    assert [int(b["x"].shape[0]) for b in batches] == [8, 8]


def test_bucketing_without_a_full_bucket_is_a_clear_error(five_good, tmp_path, caplog):
    def config(batch):
        return _config(tmp_path, "data.n_val=0", "data.bucketing=true", "data.n_buckets=2",
                       f"train.batch_size={batch}")

    # 0.4..0.8 s of audio: 35..69 frames; median edge 52 -> buckets of 3, 2 and 0.
    with pytest.raises(ValueError) as err:
        build_dataset(five_good, config(4), "train")
    message = str(err.value)
    assert "has 5 usable utterances in 3 length buckets of [3, 2, 0] utterances" in message
    assert "train.batch_size=4" in message and "Set train.batch_size to 3 or less" in message
    assert "lower data.n_buckets (now 2), set data.bucketing=false" in message
    # Batches of 3: the first bucket fills one; the other two utterances are reported.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gradtts_tf.data"):
        batches = list(build_dataset(five_good, config(3), "train"))
    assert [tuple(b["y"].shape[:2]) for b in batches] == [(3, 52)]
    assert any("2 utterances are in length buckets holding fewer than one batch of "
               "train.batch_size=3 (bucket sizes [3, 2, 0]) and never reach a batch" in w
               for w in _warnings(caplog))
