"""train.py / convert CLI / Synthesizer: the user-facing paths on real (flite) data."""

import json
import shutil
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REF

from gradtts_tf.cli import train
from gradtts_tf.config import load_config
from gradtts_tf.convert import main as convert_main
from gradtts_tf.data import prepare_corpus, stream_order
from gradtts_tf.model import GradTTS
from gradtts_tf.synthesizer import Synthesizer
from gradtts_tf.training import WarmupDecay, build_model
from gradtts_tf.training import train as train_run

TINY = [
    "model.n_enc_channels=32", "model.filter_channels=64", "model.filter_channels_dp=32",
    "model.n_enc_layers=1", "model.dec_dim=8", "train.batch_size=4", "train.out_size=64",
    "data.n_val=4", "train.learning_rate=0.003",
]


# Nine epochs of a whole train.py run and two resumes, ~110 s on 2 cores: with the slow
# tests (in CI); the trainer's own tests and the vocoder run-folder test stay by default.
@pytest.mark.slow
def test_fit_on_demo_data_loss_goes_down_and_resumes(demo_corpus, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--config", "configs/demo.yaml", "--data", str(demo_corpus), "--out", str(run),
            "--no-jit"]
    for item in TINY + ["train.log_images_every=0"]:
        args += ["--set", item]
    args += ["--epochs", "6"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train.main(args)
    assert not [w for w in caught if "Gradients do not exist" in str(w.message)]
    out = capsys.readouterr().out
    assert "24 utterances usable, 0 skipped" in out
    history = np.genfromtxt(run / "history.csv", delimiter=",", names=True)
    assert len(history) == 6
    assert history["loss"][-1] < history["loss"][0]
    assert np.isfinite(history["val_loss"]).all()
    for name in ("model.weights.h5", "config.yaml", "checkpoints/ckpt-00000030"):
        assert (run / name).exists()
    # Rerunning with more epochs resumes at epoch 7 instead of starting over.
    train.main(args[:-1] + ["8"])
    history = np.genfromtxt(run / "history.csv", delimiter=",", names=True)
    assert history["epoch"].tolist() == list(range(8))
    # A new constant learning rate on resume is used, not the checkpoint's.
    capsys.readouterr()
    lower = load_config(
        "configs/demo.yaml", TINY + ["train.learning_rate=0.0005", "train.log_images_every=0"]
    )
    fit = train_run(lower, demo_corpus, run, epochs=9, jit_compile=False)
    assert "changed: train.learning_rate" in capsys.readouterr().out
    assert float(fit.model.optimizer.learning_rate.numpy()) == pytest.approx(5e-4)
    assert fit.progress.epoch == 9

    synth = Synthesizer.from_pretrained(run)
    audio, sr = synth.tts("A short test sentence.", steps=2, seed=1)
    again, _ = synth.tts("A short test sentence.", steps=2, seed=1)
    assert sr == 22050 and audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) > 0 and np.all(np.abs(audio) <= 1.0 + 1e-6)
    np.testing.assert_array_equal(audio, again)


def test_train_cli_rejects_bad_arguments(tmp_path, capsys):
    common = ["--config", "configs/demo.yaml", "--data", "x", "--out", str(tmp_path / "run")]
    # Each case breaks one rule; the exit code is argparse's (2) and the message names
    # the argument and what is wrong with it.
    for args, messages in (
        # The misspelt key, and the right spelling among the allowed ones.
        (["--set", "train.batchsize=3"], ["train: unknown key 'batchsize' (allowed:",
                                          " batch_size,"]),
        (["--epochs", "0"], ["error: --epochs must be >= 1"]),
        (["--steps-per-epoch", "0"], ["error: --steps-per-epoch must be >= 1"]),
        (["--ignore-layers", "encoder"], ["error: --ignore-layers needs --warm-start"]),
    ):
        with pytest.raises(SystemExit) as exc:
            train.main([*common, *args])
        assert exc.value.code == 2, args
        err = capsys.readouterr().err
        assert "usage:" in err, args
        for message in messages:
            assert message in err, (args, err)
    assert not (tmp_path / "run").exists()  # refused before a run folder was made


def test_resume_refuses_a_different_model(demo_corpus, tmp_path):
    config = load_config("configs/demo.yaml", TINY)
    (tmp_path / "config.yaml").write_text("model:\n  n_enc_layers: 5\n")
    from gradtts_tf.training import train as run_training

    with pytest.raises(ValueError, match="different model"):
        run_training(config, demo_corpus, tmp_path, epochs=1)


def test_convert_cli_output_loads_and_matches_official(tmp_path):
    name = "gradtts_small"
    convert_main([
        "--checkpoint", str(REF / f"{name}_state_dict.npz"),
        "--params", str(REF / f"{name}_config.json"), "--out", str(tmp_path),
    ])
    synth = Synthesizer.from_pretrained(tmp_path)
    assert synth.config.model.n_enc_channels == json.loads(
        (REF / f"{name}_config.json").read_text())["n_enc_channels"]
    io = np.load(REF / f"{name}_io.npz")
    out = synth.model.synthesise(
        io["x"], io["x_lengths"], n_timesteps=10, temperature=1.5,
        noise=np.transpose(io["syn_ls1.0_n10_noise"], (0, 2, 1)),
    )
    ref = np.transpose(io["syn_ls1.0_n10_mel"], (0, 2, 1))
    err = np.max(np.abs(out["model_outputs"].numpy() - ref)) / np.max(np.abs(ref))
    assert err < 1e-3


def test_convert_reads_torch_pt_when_available(tmp_path):
    pytest.importorskip("torch")
    from gradtts_tf.convert import load_state_dict

    a = load_state_dict(REF / "gradtts_small.pt")
    b = load_state_dict(REF / "gradtts_small_state_dict.npz")
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_convert_rejects_mismatched_params(tmp_path):
    from gradtts_tf.convert import gradtts_from_official

    params = json.loads((REF / "gradtts_small_config.json").read_text())
    params["n_enc_layers"] = 3
    with pytest.raises((ValueError, KeyError), match="encoder"):
        gradtts_from_official(REF / "gradtts_small_state_dict.npz", params)


def _event_tags(folder):
    tags = set()
    for path in folder.glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags.update(v.tag for v in event.summary.value)
    return tags


@pytest.mark.slow
def test_mixed_precision_accumulation_ema_schedule_logs_and_nan_guard(demo_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "wavs").mkdir(parents=True)
    shutil.copy(demo_corpus / "metadata.csv", corpus)
    for wav in (demo_corpus / "wavs").glob("*.wav"):
        shutil.copy(wav, corpus / "wavs")
    config = load_config("configs/demo.yaml", TINY + [
        "train.precision=mixed_float16", "train.grad_accum_steps=2", "train.ema_decay=0.5",
        "train.lr_schedule=exponential", "train.warmup_steps=2", "train.lr_decay_steps=4",
        "train.checkpoint_every_steps=3", "train.log_every_steps=1", "train.n_log_samples=1",
        "train.log_synth_timesteps=2", "train.png_logs=true", "train.jit_compile='off'",
    ])
    # The fifth utterance of the stream (second batch) gets a NaN mel.
    manifest = prepare_corpus(corpus, config, progress=False)
    entries = manifest.split("train", config)
    bad = entries[stream_order(len(entries), config.train.seed, 0)[5]]
    np.save(bad["mel_path"], np.full_like(np.load(bad["mel_path"]), np.nan))

    run = tmp_path / "run"
    history = train_run(config, corpus, run, epochs=2, verbose=0)
    model = history.model

    # The NaN batch was skipped and reported with its utterances.
    assert [r["step"] for r in history.nonfinite] == [2]
    assert bad["uid"] in history.nonfinite[0]["uids"] and len(history.nonfinite[0]["uids"]) == 4
    assert bad["uid"] in (run / "nonfinite.log").read_text()
    np.testing.assert_allclose(history.history["nonfinite"], [1 / 3, 0.0])
    assert all(np.isfinite(w).all() for w in model.get_weights())

    # mixed_float16 with dynamic loss scaling: each overflowing or NaN step halved the
    # scale and was left out; two finite batches make one update.
    assert model.encoder.dtype_policy.name == "mixed_float16"
    assert keras.mixed_precision.dtype_policy().name == "float32"  # restored
    state = model._training_state
    halvings = 15 - int(np.log2(float(state.loss_scale.numpy())))
    assert 1 <= halvings <= 6
    assert int(model.optimizer.iterations.numpy()) == (6 - halvings) // 2
    assert int(state.accum_count.numpy()) == (6 - halvings) % 2
    lr = WarmupDecay(0.003, "exponential", 2, 0.5, 4)(model.optimizer.iterations)
    np.testing.assert_allclose(float(model.optimizer.learning_rate), float(lr), rtol=1e-6)

    # model.weights.h5 holds the EMA weights; checkpoints hold the raw ones.
    exported = GradTTS.from_config_tree(config)
    exported.load_weights(run / "model.weights.h5")
    for a, b in zip(exported.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # fit() ends with the EMA weights swapped in
    raw = build_model(config)
    raw.load_weights(run / "checkpoints" / "ckpt-00000006" / "state.weights.h5")
    assert any(not np.array_equal(a, b)
               for a, b in zip(raw.get_weights(), exported.get_weights(), strict=True))

    # TensorBoard scalars, images and audio; the same images (and WAVs) as files.
    assert {"loss", "dur_loss", "prior_loss", "diff_loss", "enc_grad_norm", "dec_grad_norm",
            "learning_rate", "step_time", "examples_per_sec", "loss_scale",
            "nonfinite"} <= _event_tags(run / "logs" / "train")
    assert {"loss", "diff_loss"} <= _event_tags(run / "logs" / "validation")
    sample_tags = _event_tags(run / "logs" / "samples")
    assert any(t.endswith("/mel") for t in sample_tags)
    assert any(t.endswith("/audio") for t in sample_tags)
    pngs = sorted(p.name for p in (run / "images").glob("*.png"))
    assert len(pngs) == 2 and pngs[0].startswith("step00000003_0_")
    assert len(list((run / "images").glob("*.wav"))) == 2
    progress = json.loads((run / "progress.json").read_text())
    assert progress["step"] == 6 and "examples_per_sec" in progress


def test_sample_logger_speaks_with_the_voices_settings(tmp_path, monkeypatch):
    """Logged samples use the config's `inference` temperature and length scale."""
    from gradtts_tf.model import GradTTS
    from gradtts_tf.training import callbacks as cb
    from gradtts_tf.training import checkpoints

    model = GradTTS(n_vocab=149, n_enc_channels=16, filter_channels=16, filter_channels_dp=16,
                    n_enc_layers=1, dec_dim=8, out_size=16, seed=0)
    calls = []
    real = model.synthesise

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "synthesise", spy)
    model.compile(optimizer=keras.optimizers.Adam())  # EMAWeights reads the optimizer
    sample = {"uid": "u1", "ids": [1, 2, 3, 4], "mel": np.zeros((12, 80), np.float32)}
    config = load_config("configs/demo.yaml", ["inference.temperature=2.5",
                                               "inference.length_scale=0.8"])
    logger = cb.SampleLogger([sample], tmp_path / "logs", checkpoints.Progress(), config.audio,
                             png_dir=tmp_path / "png",
                             settings=config.inference.override(steps=2))
    logger.set_model(model)
    logger.log_samples()
    assert [(c["temperature"], c["length_scale"], c["n_timesteps"]) for c in calls] == [
        (2.5, 0.8, 2)
    ]
    assert len(list((tmp_path / "png").glob("*.wav"))) == 1
