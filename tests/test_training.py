"""train.py / convert CLI / Synthesizer: the user-facing paths on real (flite) data."""

import json
import warnings

import numpy as np
import pytest

import train
from gradtts_tf.config import load_config
from gradtts_tf.convert import main as convert_main
from gradtts_tf.synthesizer import Synthesizer
from tests.conftest import REF

TINY = [
    "model.n_enc_channels=32", "model.filter_channels=64", "model.filter_channels_dp=32",
    "model.n_enc_layers=1", "model.dec_dim=8", "train.batch_size=4", "train.out_size=64",
    "data.n_val=4", "train.learning_rate=0.003",
]


def test_fit_on_demo_data_loss_goes_down_and_resumes(demo_corpus, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--config", "configs/demo.yaml", "--data", str(demo_corpus), "--out", str(run),
            "--no-jit"]
    for item in TINY:
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
    for name in ("model.weights.h5", "config.yaml", "backup"):
        assert (run / name).exists()
    # Rerunning with more epochs resumes at epoch 7 instead of starting over.
    train.main(args[:-1] + ["8"])
    history = np.genfromtxt(run / "history.csv", delimiter=",", names=True)
    assert history["epoch"].tolist() == list(range(8))

    synth = Synthesizer.from_pretrained(run)
    audio, sr = synth.tts("A short test sentence.", n_timesteps=2, seed=1)
    again, _ = synth.tts("A short test sentence.", n_timesteps=2, seed=1)
    assert sr == 22050 and audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) > 0 and np.all(np.abs(audio) <= 1.0 + 1e-6)
    np.testing.assert_array_equal(audio, again)


def test_train_cli_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main(["--config", "configs/demo.yaml", "--data", "x", "--out", str(tmp_path),
                    "--set", "train.batchsize=3"])
    assert "unknown key 'batchsize'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--config", "configs/demo.yaml", "--data", "x", "--out", str(tmp_path),
                    "--epochs", "0"])


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
