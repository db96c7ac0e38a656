"""GradTTS model: parity with the official model, losses, synthesis, save/load."""

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import REF, loss_batch, tiny_gradtts

from gradtts_tf.convert import gradtts_from_official
from gradtts_tf.model import GradTTS

MODELS = ["gradtts_small", "gradtts_small_multispeaker"]


def _cl(a):
    """Official channels-first ``[B, C, T]`` -> ours ``[B, T, C]``."""
    return np.transpose(a, (0, 2, 1))


def _rel_close(ours, ref, rtol):
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    err = np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-8)
    assert err < rtol, f"max error relative to max |ref|: {err:.2e}"


@pytest.fixture(scope="module", params=MODELS)
def official(request):
    name = request.param
    params = json.loads((REF / f"{name}_config.json").read_text())
    model = gradtts_from_official(REF / f"{name}_state_dict.npz", params)
    io = dict(np.load(REF / f"{name}_io.npz"))
    return model, io


def test_official_losses(official):
    model, io = official
    batch = {
        "x": io["x"], "x_lengths": io["x_lengths"], "y": _cl(io["loss_y"]),
        "y_lengths": io["loss_y_lengths"], "spk": io.get("spk"),
    }
    losses = model.compute_losses(batch, out_size=None, t=io["loss_t"], z=_cl(io["loss_z"]))
    for name in ("dur", "prior", "diff"):
        np.testing.assert_allclose(losses[f"{name}_loss"], io[f"loss_{name}"], rtol=1e-4)
    np.testing.assert_allclose(
        losses["loss"], io["loss_dur"] + io["loss_prior"] + io["loss_diff"], rtol=1e-4
    )


@pytest.mark.parametrize("length_scale", ["1.0", "1.3"])
@pytest.mark.parametrize("steps", [1, 10])
def test_official_synthesis(official, length_scale, steps):
    model, io = official
    key = f"syn_ls{length_scale}_n{steps}"
    out = model.synthesise(
        io["x"], io["x_lengths"], n_timesteps=steps, temperature=1.5,
        length_scale=float(length_scale), spk=io.get("spk"), noise=_cl(io[f"{key}_noise"]),
    )
    assert np.array_equal(out["mel_lengths"].numpy(), io[f"{key}_y_lengths"])
    np.testing.assert_array_equal(out["attn"].numpy(), io[f"{key}_attn"][:, 0])
    _rel_close(out["encoder_outputs"], _cl(io[f"{key}_mu_y"]), 1e-4)
    _rel_close(out["model_outputs"], _cl(io[f"{key}_mel"]), 1e-4 if steps == 1 else 1e-3)


def test_summary_before_training_and_config_round_trip():
    model = tiny_gradtts(n_spks=3, spk_emb_dim=8)
    assert model.built and model.count_params() > 0
    lines = []
    model.summary(print_fn=lambda s, **_: lines.append(s))
    assert any("encoder" in s for s in lines)
    clone = GradTTS.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]


def test_prior_loss_of_perfect_prediction():
    model = tiny_gradtts()
    batch = loss_batch()
    mu_x = model.encoder(batch["x"], batch["x_lengths"])[0].numpy()
    y = np.zeros_like(batch["y"])
    for i in range(2):
        tx, ty = int(batch["x_lengths"][i]), int(batch["y_lengths"][i])
        # Each token's mean repeated over ty // tx frames: the exact optimum of MAS.
        reps = np.full(tx, ty // tx)
        reps[: ty - reps.sum()] += 1
        y[i, :ty] = np.repeat(mu_x[i, :tx], reps, axis=0)
    batch["y"] = y
    losses = model.compute_losses(batch, out_size=None)
    np.testing.assert_allclose(losses["prior_loss"], 0.5 * np.log(2 * np.pi), rtol=1e-5)


def test_random_crop_when_every_item_is_shorter_than_out_size():
    model = tiny_gradtts(out_size=40)
    losses = model.compute_losses(loss_batch(t_y=24), training=True)
    assert all(np.isfinite(float(v)) for v in losses.values())


def test_weights_h5_round_trip(tmp_path):
    model = tiny_gradtts()
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    other = tiny_gradtts(seed=99)
    other.load_weights(path)
    for a, b in zip(model.weights, other.weights, strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), a.path
    batch = loss_batch()
    out_a = model.synthesise(batch["x"], batch["x_lengths"], n_timesteps=2, seed=5)
    out_b = other.synthesise(batch["x"], batch["x_lengths"], n_timesteps=2, seed=5)
    np.testing.assert_array_equal(out_a["model_outputs"], out_b["model_outputs"])


def test_random_crop_takes_a_window_of_mel_and_alignment():
    model = tiny_gradtts(out_size=8)
    rng = np.random.default_rng(1)
    y = rng.normal(size=(2, 24, 80)).astype(np.float32)
    attn = (rng.random((2, 24, 7)) > 0.5).astype(np.float32)  # [B, T_y, T_x]
    y_lengths = tf.constant([24, 5], tf.int32)
    for _ in range(5):
        y_cut, attn_cut, mask = model._random_crop(tf.constant(y), y_lengths, attn, 8)
        y_cut, attn_cut, mask = y_cut.numpy(), attn_cut.numpy(), mask.numpy()[:, :, 0]
        # Item 0: some offset in [0, 24 - 8 - 1] (as the official random.choice(range(...))).
        offsets = [o for o in range(16) if np.array_equal(y_cut[0], y[0, o:o + 8])]
        assert len(offsets) == 1
        np.testing.assert_array_equal(attn_cut[0], attn[0, offsets[0]:offsets[0] + 8])
        # Item 1 is shorter than out_size: its 5 frames, then zeros, mask 5 long.
        np.testing.assert_array_equal(y_cut[1, :5], y[1, :5])
        assert np.all(y_cut[1, 5:] == 0) and np.all(attn_cut[1, 5:] == 0)
        assert mask.tolist() == [[1.0] * 8, [1.0] * 5 + [0.0] * 3]


def test_one_token_text_and_speaker_conditioned_encoder():
    model = tiny_gradtts(n_spks=2, spk_emb_dim=8, spk_cond_encoder=True)
    batch = loss_batch(n_spks=2)
    batch["x_lengths"] = np.array([1, 4], np.int32)
    batch["x"][0, 1:] = 0
    losses = model.compute_losses(batch, training=True)
    assert all(np.isfinite(float(v)) for v in losses.values())
    a = model.synthesise(batch["x"][:1], [1], n_timesteps=2, spk=[0], seed=0)
    b = model.synthesise(batch["x"][:1], [1], n_timesteps=2, spk=[1], seed=0)
    assert int(a["mel_lengths"][0]) >= 1
    # With the flag the encoder sees the speaker: durations or means differ.
    assert not np.allclose(a["encoder_outputs"][0, :1], b["encoder_outputs"][0, :1])


def test_model_config_is_the_one_list_of_hyperparameters():
    """`GradTTS` takes every `ModelConfig` field with its default, and its config is
    derived from that list (plus what other sections give it)."""
    import dataclasses
    import inspect

    from gradtts_tf.config import Config, ModelConfig

    params = inspect.signature(GradTTS.__init__).parameters
    for field in dataclasses.fields(ModelConfig):
        assert params[field.name].default == field.default, field.name
    config = Config()
    config.model.n_enc_layers, config.model.dec_dim, config.audio.n_mels = 1, 8, 40
    model = GradTTS.from_config_tree(config)
    got = model.get_config()
    assert {f.name for f in dataclasses.fields(ModelConfig)} <= set(got)
    assert (got["n_enc_layers"], got["dec_dim"], got["n_feats"]) == (1, 8, 40)
    assert GradTTS.from_config(got).get_config() == got
