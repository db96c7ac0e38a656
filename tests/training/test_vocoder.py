"""HiFi-GAN GAN training: losses, the two-optimizer train step, data, the run folder."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from gradtts_tf.audio import load_audio, mel_spectrogram
from gradtts_tf.cli.train_vocoder import main
from gradtts_tf.config import load_config
from gradtts_tf.hifigan import (
    HiFiGAN,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from gradtts_tf.training.checkpoints import RunError, config_differences, list_checkpoints
from gradtts_tf.training.vocoder import (
    build_vocoder_model,
    init_generator_from,
    make_fine_tune_mels,
    train_vocoder,
    vocoder_dataset,
)
from gradtts_tf.vocoder import load_vocoder

SEG = 2048
TINY = {
    "vocoder.resblock": "2",
    "vocoder.upsample_rates": [16, 16],
    "vocoder.upsample_kernel_sizes": [32, 32],
    "vocoder.upsample_initial_channel": 16,
    "vocoder.resblock_kernel_sizes": [3],
    "vocoder.resblock_dilation_sizes": [[1, 3]],
    "vocoder.mpd_periods": [2, 3],
    "vocoder.mpd_channels": [4, 4, 4, 4, 4],
    "vocoder.msd_channels": [16] * 7,
    "vocoder.msd_groups": [1, 4, 16, 16, 16, 16, 1],
    "vocoder.segment_size": SEG,
    "vocoder.batch_size": 2,
    "data.n_val": 2,
}


def tiny_config(**extra):
    items = {**TINY, **extra}
    return load_config(None, [f"{k}={json.dumps(v)}" for k, v in items.items()])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Six tone + noise utterances (0.3 to 1.05 s), LJSpeech layout, 22050 Hz."""
    root = tmp_path_factory.mktemp("voc_corpus")
    (root / "wavs").mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(6):
        n = int(22050 * (0.3 + 0.15 * i))
        t = np.arange(n) / 22050
        wav = 0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.02 * rng.standard_normal(n)
        sf.write(root / "wavs" / f"u{i}.wav", wav.astype(np.float32), 22050, subtype="PCM_16")
        lines.append(f"u{i}|Sentence number {i}.|Sentence number {i}.")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def _batch(config, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(SEG) / 22050
    audio = np.stack([0.4 * np.sin(2 * np.pi * f * t) for f in (220, 330)])
    audio = (audio + 0.05 * rng.standard_normal(audio.shape)).astype(np.float32)  # [2, SEG]
    mel = mel_spectrogram(audio).numpy()  # [2, SEG / 256, 80]
    return {"mel": mel, "audio": audio}


def _snapshot(variables):
    return {v.path: v.numpy().copy() for v in variables}


def _changed(before, variables):
    return {v.path: not np.array_equal(before[v.path], v.numpy()) for v in variables}


def _sn_state(layer):
    """A spectral-norm layer's ``(u [b], v [k * a], W [k * a, b])`` (kernel ``[k, a, b]``)."""
    w = layer.kernel_raw.numpy().astype(np.float64)
    return (layer.sn_u.numpy().astype(np.float64), layer.sn_v.numpy().astype(np.float64),
            w.reshape(-1, w.shape[-1]))


def _power_iteration(w, u):
    """One step as torch.nn.utils.spectral_norm (our layout): v = Wu/|Wu|, u = W^T v/|W^T v|."""
    v = w @ u
    v /= np.linalg.norm(v)
    u = w.T @ v
    return u / np.linalg.norm(u), v


def test_loss_formulas_match_official():
    rng = np.random.default_rng(1)
    real = [rng.standard_normal([2, 5]).astype(np.float32) for _ in range(3)]
    fake = [rng.standard_normal([2, 7]).astype(np.float32) for _ in range(3)]
    d_ref = sum(np.mean((1 - r) ** 2) + np.mean(f**2) for r, f in zip(real, fake, strict=True))
    np.testing.assert_allclose(discriminator_loss(real, fake).numpy(), d_ref, rtol=1e-6)
    g_ref = sum(np.mean((1 - f) ** 2) for f in fake)
    np.testing.assert_allclose(generator_adversarial_loss(fake).numpy(), g_ref, rtol=1e-6)
    fr = [[rng.standard_normal([2, 4, 3]).astype(np.float32) for _ in range(2)] for _ in range(2)]
    fg = [[rng.standard_normal([2, 4, 3]).astype(np.float32) for _ in range(2)] for _ in range(2)]
    fm_ref = 2 * sum(np.mean(np.abs(a - b)) for da, db in zip(fr, fg, strict=True)
                     for a, b in zip(da, db, strict=True))
    np.testing.assert_allclose(feature_matching_loss(fr, fg).numpy(), fm_ref, rtol=1e-6)


def test_train_step_updates_every_weight():
    config = tiny_config()
    model = build_vocoder_model(config, run_eagerly=True)
    g_vars, d_vars = model.generator_variables, model.discriminator_variables
    assert len(g_vars) > 10 and len(d_vars) > 10
    # Each optimizer tracks exactly its own network's variables.
    g_paths, d_paths = {v.path for v in g_vars}, {v.path for v in d_vars}
    assert not g_paths & d_paths
    assert g_paths | d_paths == {v.path for v in model.trainable_variables}
    assert {v.path for v in model.g_optimizer._trainable_variables} == g_paths
    assert {v.path for v in model.d_optimizer._trainable_variables} == d_paths
    before = _snapshot(model.trainable_variables)
    sn_layers = [layer for layer in model._flatten_layers(include_self=False)
                 if getattr(layer, "norm", None) == "spectral" and hasattr(layer, "sn_u")]
    sn_before = {layer.path: _sn_state(layer) for layer in sn_layers}
    logs = model.train_on_batch(_batch(config), return_dict=True)
    assert set(logs) == {"g_loss", "d_loss", "mel_loss", "fm_loss", "adv_loss"}
    assert all(np.isfinite(v) for v in logs.values()), logs
    assert logs["g_loss"] > 45 * logs["mel_loss"] > 0
    changed = _changed(before, model.trainable_variables)
    assert all(changed.values()), [k for k, c in changed.items() if not c]
    assert int(model.g_optimizer.iterations) == int(model.d_optimizer.iterations) == 1
    # Spectral-norm power-iteration state exists, is not trainable and was updated.
    sn = [v for v in model.non_trainable_variables if "sn_u" in v.path]
    assert sn and not any("sn_" in v.path for v in model.trainable_variables)
    assert len(sn_layers) == len(sn) == 8  # MSD's first sub-discriminator: 7 convs + post
    for layer in sn_layers:
        u0, v0, w0 = sn_before[layer.path]
        u, v, w1 = _sn_state(layer)
        # One power iteration per training forward, and a step runs the discriminators
        # twice: on the kernel before the D update (D loss), then on the updated kernel
        # (G loss). u and v must be exactly where those two iterations lead (measured:
        # within 2e-7; one iteration, or both on the old kernel, are off by 6e-4 or more).
        u1, _ = _power_iteration(w0, u0)
        u2, v2 = _power_iteration(w1, u1)
        np.testing.assert_allclose(v, v2, atol=1e-5, err_msg=layer.path)
        np.testing.assert_allclose(u, u2, atol=1e-5, err_msg=layer.path)
        np.testing.assert_allclose([np.linalg.norm(u), np.linalg.norm(v)], 1.0, atol=1e-5)
        assert np.abs(v - v0).max() > 1e-3, layer.path  # the random start was left
        if u.size > 1:  # a 1-vector stays +-1
            assert np.abs(u - u0).max() > 1e-3, layer.path
        # The kernel used for inference is divided by the estimate u . W^T v, which is at
        # most the largest singular value (and positive after an iteration).
        sigma = float(u @ (w1.T @ v))
        assert 0 < sigma <= np.linalg.svd(w1, compute_uv=False)[0] * (1 + 1e-5), layer.path
        np.testing.assert_allclose(np.reshape(layer.kernel, w1.shape), w1 / sigma,
                                   rtol=1e-4, atol=1e-6, err_msg=layer.path)


def test_hifigan_model_config_round_trip():
    model = HiFiGAN.from_config_tree(tiny_config(**{"vocoder.loss_f_max": 8000}))
    clone = HiFiGAN.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert model.loss_f_max == 8000.0 and model.mel_loss_weight == 45.0
    assert model.generator.weight_norm  # training form; folded when saved
    with pytest.raises(ValueError, match="hop_length"):
        HiFiGAN(hop_length=200)


@pytest.mark.parametrize("frozen", ["d", "g"])
def test_each_optimizer_updates_only_its_network(frozen):
    """With one learning rate at 0, the other network's step leaves it untouched."""
    config = tiny_config()
    model = build_vocoder_model(config, run_eagerly=True)
    (model.d_optimizer if frozen == "d" else model.g_optimizer).learning_rate = 0.0
    before = _snapshot(model.trainable_variables)
    model.train_on_batch(_batch(config, 1))
    g = _changed(before, model.generator_variables)
    d = _changed(before, model.discriminator_variables)
    if frozen == "d":
        assert all(g.values()) and not any(d.values())
    else:
        assert all(d.values()) and not any(g.values())


@pytest.mark.slow
def test_fit_graph_mode():
    """Two `fit` steps in a traced tf.function: finite losses, every weight moves."""
    config = tiny_config()
    model = build_vocoder_model(config, jit_compile=False)
    before = _snapshot(model.trainable_variables)
    ds = tf.data.Dataset.from_tensors(_batch(config, 2)).repeat(2)
    history = model.fit(ds, epochs=1, verbose=0)
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    assert all(_changed(before, model.trainable_variables).values())


def test_dataset_segments(corpus):
    config = tiny_config()
    train = next(iter(vocoder_dataset(corpus, config, "train")))
    assert train["mel"].shape == (2, SEG // 256, 80) and train["audio"].shape == (2, SEG)
    for mel, audio in zip(train["mel"].numpy(), train["audio"].numpy(), strict=True):
        np.testing.assert_allclose(mel, mel_spectrogram(audio).numpy(), atol=1e-5)
        assert np.abs(audio).max() <= 0.95 + 1e-6  # peak-normalised utterances
    val = [b["audio"].numpy() for b in vocoder_dataset(corpus, config, "val")]
    again = [b["audio"].numpy() for b in vocoder_dataset(corpus, config, "val")]
    assert sum(len(b) for b in val) == 2
    for a, b in zip(val, again, strict=True):
        np.testing.assert_array_equal(a, b)  # the middle segment, deterministic
    with pytest.raises(ValueError, match="multiple"):
        vocoder_dataset(corpus, tiny_config(**{"vocoder.segment_size": 1000}), "train")


def test_fine_tune_dataset_aligns_mel_and_audio(corpus, tmp_path):
    """Mel frames i..i+S/hop go with audio samples i*hop.. (not normalised)."""
    config = tiny_config()
    frames = SEG // 256
    for i in range(6):
        audio = load_audio(corpus / "wavs" / f"u{i}.wav", 22050)
        n = len(audio) // 256
        mel = np.repeat(np.arange(n, dtype=np.float32)[:, None], 80, axis=1)  # mel[t] = t
        np.save(tmp_path / f"u{i}.npy", mel)
    originals = {i: load_audio(corpus / "wavs" / f"u{i}.wav", 22050) for i in range(6)}
    for batch in vocoder_dataset(corpus, config, "all", fine_tune_mels=tmp_path):
        for mel, audio in zip(batch["mel"].numpy(), batch["audio"].numpy(), strict=True):
            start = int(mel[0, 0])
            np.testing.assert_array_equal(mel[:, 0], start + np.arange(frames))
            match = [i for i, a in originals.items()
                     if np.array_equal(a[start * 256 : start * 256 + SEG], audio)]
            assert match, "audio segment does not line up with the mel frames"


def test_train_vocoder_run_folder_and_resume(corpus, tmp_path):
    config = tiny_config()
    run = tmp_path / "run"
    history = train_vocoder(config, corpus, run, epochs=1, steps_per_epoch=2, run_eagerly=True,
                            verbose=0)
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    assert "val_mel_loss" in history.history
    for name in ("config.yaml", "generator.weights.h5", "history.csv", "checkpoints"):
        assert (run / name).exists(), name
    assert [p.name for p in list_checkpoints(run)] == ["ckpt-00000002"]
    vocoder = load_vocoder(run, config.audio)
    mel = _batch(config)["mel"]
    assert vocoder(mel).shape == (2, SEG)
    # Resume: the second call continues at epoch 2 with the decayed learning rate.
    train_vocoder(config, corpus, run, epochs=2, steps_per_epoch=2, run_eagerly=True, verbose=0)
    rows = list(csv.DictReader(open(run / "history.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    np.testing.assert_allclose(float(rows[1]["lr"]), 2e-4 * 0.999, rtol=1e-6)
    other = tiny_config(**{"vocoder.upsample_initial_channel": 32})
    with pytest.raises(RunError, match="vocoder.upsample_initial_channel: 16 in the run, 32"):
        train_vocoder(other, corpus, run, epochs=3, steps_per_epoch=1, run_eagerly=True)
    # Training settings may change on resume (a longer run, a lower learning rate).
    assert config_differences(config, tiny_config(**{"vocoder.learning_rate": 1e-4}),
                              "vocoder")[0] == []
    # A new run can start its generator from the checkpoint (same function).
    model = HiFiGAN.from_config_tree(config)
    init_generator_from(model, run)
    resumed = load_vocoder(run, config.audio)
    np.testing.assert_allclose(model.generator(mel).numpy(), resumed(mel), atol=1e-5)
    assert np.abs(resumed(mel) - vocoder(mel)).max() > 0  # epoch 2 changed the generator


def _cli_error(capsys, argv) -> str:
    """Runs the CLI expecting an argparse error: exit code 2, message on stderr."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err
    return err


def test_cli_arguments(corpus, tmp_path, capsys):
    common = ["--config", "configs/hifigan_demo.yaml", "--data", str(corpus),
              "--out", str(tmp_path)]
    # Each case is otherwise valid, so the message shows which check refused it.
    assert "error: --epochs must be >= 1" in _cli_error(capsys, [*common, "--epochs", "0"])
    assert "error: --steps-per-epoch must be >= 1" in _cli_error(
        capsys, [*common, "--steps-per-epoch", "0"])
    err = _cli_error(capsys, ["--data", str(corpus), "--out", str(tmp_path)])
    assert "error: --config is required for training" in err
    err = _cli_error(capsys, [*common, "--set", "vocoder.upsample_rates=[8,8]",
                              "--set", "vocoder.upsample_kernel_sizes=[16,16]"])
    assert "prod(vocoder.upsample_rates)=64 must equal audio.hop_length=256" in err
    assert not list(tmp_path.iterdir())  # refused before any run folder was written


@pytest.mark.slow  # ~8 s on 2 cores
def test_make_fine_tune_mels(corpus, tmp_path):
    from gradtts_tf.model import GradTTS

    config = load_config(None, ["model.n_enc_channels=16", "model.filter_channels=32",
                                "model.filter_channels_dp=16", "model.n_enc_layers=1",
                                "model.dec_dim=8", "data.n_val=2"])
    model = GradTTS.from_config_tree(config)
    (tmp_path / "tts").mkdir()
    model.save_weights(tmp_path / "tts" / "model.weights.h5")
    config.save(tmp_path / "tts" / "config.yaml")
    n = make_fine_tune_mels(tmp_path / "tts", corpus, tmp_path / "mels", steps=2)
    assert n == 6
    for i in range(6):
        mel = np.load(tmp_path / "mels" / f"u{i}.npy")
        audio = load_audio(corpus / "wavs" / f"u{i}.wav", 22050)
        assert mel.shape == (len(audio) // 256, 80) and np.all(np.isfinite(mel))
