"""Tests for the Grad-TTS diffusion decoder: parity with the official PyTorch model.

Reference tensors are channels-first (``[B, C, T]``); they are transposed to our
``[B, T, C]`` layout here.
"""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REF

from gradtts_tf.convert.decoder import _Loader, load_decoder_weights
from gradtts_tf.layers.diffusion import Diffusion, get_noise
from gradtts_tf.layers.score_estimator import GradLogPEstimator2d
from gradtts_tf.layers.unet_blocks import (
    Block,
    Downsample,
    GroupNorm,
    LinearAttention,
    Residual,
    ResnetBlock,
    Rezero,
    SinusoidalPosEmb,
    Upsample,
    group_norm_mish,
    mish,
)

MODELS = ("gradtts_small", "gradtts_small_multispeaker")


def _tr(a: np.ndarray) -> np.ndarray:
    """``[B, C, T]`` -> ``[B, T, C]``."""
    return np.ascontiguousarray(np.transpose(a, (0, 2, 1)))


def _rel_err(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(max abs error, max abs error / max |ref|)."""
    err = float(np.max(np.abs(np.asarray(out, np.float64) - ref)))
    return err, err / float(np.max(np.abs(ref)))


class Ref:
    """One reference model: config, state dict, io tensors and a loaded ``Diffusion``."""

    def __init__(self, name: str):
        self.name = name
        self.config = json.loads((REF / f"{name}_config.json").read_text())
        with np.load(REF / f"{name}_state_dict.npz") as data:
            self.state_dict = {k: data[k] for k in data.files}
        with np.load(REF / f"{name}_io.npz") as data:
            self.io = {k: data[k] for k in data.files}
        self.decoder = make_decoder(self.config)
        self.consumed = load_decoder_weights(self.decoder, self.state_dict)

    @property
    def multi(self) -> bool:
        return self.config["n_spks"] > 1

    def speaker(self, spk: np.ndarray | None = None) -> np.ndarray | None:
        """Speaker embedding vectors ``spk_emb.weight[spk]`` (``None`` if single speaker)."""
        if not self.multi:
            return None
        spk = self.io["spk"] if spk is None else spk
        return self.state_dict["spk_emb.weight"][spk]

    def est_inputs(self):
        io = self.io
        return _tr(io["est_x"]), _tr(io["est_mask"]), _tr(io["est_mu"]), io["est_t"]


def make_decoder(config: dict, **kwargs) -> Diffusion:
    return Diffusion(
        config["n_feats"],
        config["dec_dim"],
        n_spks=config["n_spks"],
        spk_emb_dim=config["spk_emb_dim"],
        beta_min=config["beta_min"],
        beta_max=config["beta_max"],
        pe_scale=config["pe_scale"],
        **kwargs,
    )


@pytest.fixture(scope="module")
def refs() -> dict[str, Ref]:
    return {name: Ref(name) for name in MODELS}


@pytest.fixture(scope="module")
def single(refs) -> Ref:
    return refs["gradtts_small"]


@pytest.fixture(scope="module")
def multi(refs) -> Ref:
    return refs["gradtts_small_multispeaker"]


def _random_batch(rng, batch=2, frames=16, n_feats=80, lengths=(16, 11)):
    x0 = rng.standard_normal((batch, frames, n_feats)).astype(np.float32)
    mu = rng.standard_normal((batch, frames, n_feats)).astype(np.float32)
    mask = (np.arange(frames)[None, :] < np.asarray(lengths)[:, None]).astype(np.float32)
    return x0, mu, mask[:, :, None]


# --------------------------------------------------------------------------- parity


@pytest.mark.parametrize("name", MODELS)
def test_estimator_matches_official(refs, name):
    ref = refs[name]
    x, mask, mu, t = ref.est_inputs()
    out = ref.decoder.estimator(x, mask, mu, t, spk_emb=ref.speaker()).numpy()
    expected = _tr(ref.io["est_out"])
    abs_err, rel_err = _rel_err(out, expected)
    print(f"{name}: estimator max abs err {abs_err:.3g}, rel to max|ref| {rel_err:.3g}")
    assert rel_err < 1e-4
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_multispeaker_estimator_used_spk_emb_rows(multi):
    """The fixture's estimator call used ``spk_emb.weight[spk]``; other rows do not match."""
    x, mask, mu, t = multi.est_inputs()
    expected = _tr(multi.io["est_out"])
    wrong = multi.speaker((multi.io["spk"] + 1) % multi.config["n_spks"])
    out = multi.decoder.estimator(x, mask, mu, t, spk_emb=wrong).numpy()
    assert _rel_err(out, expected)[1] > 1e-2
    with pytest.raises(ValueError, match="spk_emb is required"):
        multi.decoder.estimator(x, mask, mu, t)


@pytest.mark.parametrize(
    ("name", "case"),
    [
        ("gradtts_small", "ls1.0_n1"),
        ("gradtts_small", "ls1.3_n10"),
        ("gradtts_small_multispeaker", "ls1.0_n10"),
    ],
)
def test_reverse_diffusion_matches_official_synthesis(refs, name, case):
    """Official synthesis: ``z = mu_y + eps / 1.5``, Euler-Maruyama, ``stoc=False``."""
    ref = refs[name]
    io = ref.io
    n_timesteps = int(case.split("_n")[1])
    eps = _tr(io[f"syn_{case}_noise"])  # [B, T_pad, 80]
    lengths = io[f"syn_{case}_y_lengths"]
    t_pad, t_max = eps.shape[1], int(lengths.max())
    mu_y = np.zeros_like(eps)
    mu_y[:, :t_max] = _tr(io[f"syn_{case}_mu_y"])  # the official mu_y is zero when padded
    mask = (np.arange(t_pad)[None, :] < lengths[:, None]).astype(np.float32)[:, :, None]
    mel = ref.decoder.reverse_diffusion(
        mu_y + eps / 1.5, mask, mu_y, n_timesteps, spk_emb=ref.speaker()
    ).numpy()
    expected = _tr(io[f"syn_{case}_mel"])
    abs_err, rel_err = _rel_err(mel[:, :t_max], expected)
    print(f"{name} {case}: mel max abs err {abs_err:.3g}, rel to max|ref| {rel_err:.3g}")
    assert rel_err < 1e-4
    np.testing.assert_array_equal(mel[:, t_max:], 0.0)


# --------------------------------------------------------------------------- weights


@pytest.mark.parametrize("name", MODELS)
def test_all_decoder_keys_consumed(refs, name):
    ref = refs[name]
    decoder_keys = {k for k in ref.state_dict if k.startswith("decoder.")}
    assert ref.consumed == decoder_keys
    assert len(ref.decoder.trainable_weights) == len(decoder_keys)


def test_loader_errors(single):
    sd = dict(single.state_dict)
    key = "decoder.estimator.downs.1.0.block1.block.0.weight"
    missing = {k: v for k, v in sd.items() if k != key}
    with pytest.raises(KeyError, match=key.replace(".", r"\.")):
        load_decoder_weights(make_decoder(single.config), missing)
    bad = dict(sd)
    bad[key] = np.zeros((32, 16, 3, 5), np.float32)
    with pytest.raises(ValueError, match="shape mismatch.*" + key.replace(".", r"\.")):
        load_decoder_weights(make_decoder(single.config), bad)
    extra = dict(sd)
    extra["decoder.estimator.spk_mlp.0.weight"] = np.zeros((64, 64), np.float32)
    with pytest.raises(ValueError, match="unused"):
        load_decoder_weights(make_decoder(single.config), extra)
    assert "decoder.estimator.spk_mlp.0.weight" not in load_decoder_weights(
        make_decoder(single.config), extra, strict=False
    )


def _torch_conv2d(x, w, b, stride, pad):
    """PyTorch ``Conv2d`` on ``x [C_in, H, W]``, ``w [C_out, C_in, kH, kW]``."""
    c_out, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    h_out = (xp.shape[1] - kh) // stride + 1
    w_out = (xp.shape[2] - kw) // stride + 1
    out = np.zeros((c_out, h_out, w_out))
    for i in range(h_out):
        for j in range(w_out):
            patch = xp[:, i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[:, i, j] = np.tensordot(w, patch, axes=([1, 2, 3], [0, 1, 2]))
    return out + b[:, None, None]


def _torch_conv_transpose2d(x, w, b, stride, pad):
    """PyTorch ``ConvTranspose2d`` on ``x [C_in, H, W]``, ``w [C_in, C_out, kH, kW]``."""
    _, c_out, kh, kw = w.shape
    h, wd = x.shape[1:]
    full = np.zeros((c_out, (h - 1) * stride + kh, (wd - 1) * stride + kw))
    for i in range(h):
        for j in range(wd):
            contrib = np.tensordot(x[:, i, j], w, axes=([0], [0]))  # [C_out, kH, kW]
            full[:, i * stride : i * stride + kh, j * stride : j * stride + kw] += contrib
    return full[:, pad : full.shape[1] - pad, pad : full.shape[2] - pad] + b[:, None, None]


@pytest.mark.parametrize("kind", ["down", "up"])
def test_strided_convs_match_torch_semantics(kind):
    """Downsample / Upsample + kernel mapping vs direct PyTorch-semantics convolutions.

    F != T so that a swapped spatial axis would show.
    """
    rng = np.random.default_rng(1)
    dim, n_f, n_t = 3, 6, 8
    x_torch = rng.standard_normal((dim, n_f, n_t))  # official [C, F, T]
    b = rng.standard_normal(dim).astype(np.float32)
    if kind == "down":
        layer = Downsample(dim)
        w = rng.standard_normal((dim, dim, 3, 3)).astype(np.float32)
        expected = _torch_conv2d(x_torch, w, b, stride=2, pad=1)
    else:
        layer = Upsample(dim)
        w = rng.standard_normal((dim, dim, 4, 4)).astype(np.float32)
        expected = _torch_conv_transpose2d(x_torch, w, b, stride=2, pad=1)
    layer.build()
    _Loader({"c.weight": w, "c.bias": b}).conv(layer.conv, "c")
    x = np.transpose(x_torch, (2, 1, 0))[None].astype(np.float32)  # [1, T, F, C]
    out = layer(x).numpy()[0]  # [T', F', C]
    np.testing.assert_allclose(np.transpose(out, (2, 1, 0)), expected, rtol=1e-5, atol=1e-5)


def test_linear_attention_matches_official_formula():
    rng = np.random.default_rng(2)
    dim, heads, dim_head, n_f, n_t = 8, 2, 4, 4, 6
    hidden = heads * dim_head
    w_qkv = rng.standard_normal((3 * hidden, dim, 1, 1)).astype(np.float32)
    w_out = rng.standard_normal((dim, hidden, 1, 1)).astype(np.float32)
    b_out = rng.standard_normal(dim).astype(np.float32)
    x = rng.standard_normal((2, dim, n_f, n_t)).astype(np.float32)  # official [B, C, F, T]

    # Official: rearrange 'b (qkv heads c) h w -> qkv b heads c (h w)', softmax k, einsums.
    qkv = np.einsum("oc,bchw->bohw", w_qkv[:, :, 0, 0], x).reshape(2, 3, heads, dim_head, -1)
    q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
    k = np.exp(k - k.max(-1, keepdims=True))
    k = k / k.sum(-1, keepdims=True)
    context = np.einsum("bhdn,bhen->bhde", k, v)
    out = np.einsum("bhde,bhdn->bhen", context, q).reshape(2, hidden, n_f, n_t)
    expected = np.einsum("oc,bchw->bohw", w_out[:, :, 0, 0], out) + b_out[None, :, None, None]

    layer = LinearAttention(dim, heads=heads, dim_head=dim_head)
    layer.build()
    loader = _Loader({"qkv.weight": w_qkv, "out.weight": w_out, "out.bias": b_out})
    loader.conv(layer.to_qkv, "qkv")
    loader.conv(layer.to_out, "out")
    got = layer(np.transpose(x, (0, 3, 2, 1))).numpy()  # [B, T, F, C]
    np.testing.assert_allclose(np.transpose(got, (0, 3, 2, 1)), expected, rtol=1e-4, atol=1e-4)


def test_sinusoidal_pos_emb():
    t = np.array([0.0, 0.25, 0.9], np.float32)
    emb = SinusoidalPosEmb(16)(t, scale=1000.0).numpy()
    freqs = np.exp(np.arange(8) * -(math.log(10000) / 7))
    arg = 1000.0 * t[:, None].astype(np.float64) * freqs[None]
    np.testing.assert_allclose(emb, np.concatenate([np.sin(arg), np.cos(arg)], -1), atol=2e-4)


# --------------------------------------------------------------------------- SDE


def test_forward_diffusion_limits(single):
    dec = single.decoder
    rng = np.random.default_rng(3)
    x0, mu, mask = _random_batch(rng)
    z = rng.standard_normal(x0.shape).astype(np.float32)
    # t = 0: mean x0, variance 0.
    xt, zm = dec.forward_diffusion(x0, mask, mu, np.zeros(2, np.float32), z)
    np.testing.assert_allclose(xt, x0 * mask, atol=1e-6)
    np.testing.assert_array_equal(zm, z * mask)
    # t = 1: closed form, and mean -> mu, variance -> 1 (cum = 10.025).
    t1 = np.ones(2, np.float32)
    mean, _ = dec.forward_diffusion(x0, mask, mu, t1, np.zeros_like(z))
    cum = 0.05 + 0.5 * (20.0 - 0.05)
    np.testing.assert_allclose(
        mean, (x0 * math.exp(-0.5 * cum) + mu * (1 - math.exp(-0.5 * cum))) * mask, atol=1e-6
    )
    assert np.abs(mean - mu * mask).max() < 0.01 * np.abs(x0 - mu).max()
    zeros = np.zeros_like(x0)
    noise_only, _ = dec.forward_diffusion(zeros, mask, zeros, t1, z)
    np.testing.assert_allclose(noise_only, z * mask * math.sqrt(1 - math.exp(-cum)), atol=1e-6)
    np.testing.assert_allclose(noise_only, z * mask, atol=1e-4 * np.abs(z).max())


def test_loss_t_matches_numpy(multi):
    dec = multi.decoder
    rng = np.random.default_rng(4)
    x0, mu, mask = _random_batch(rng)
    t = np.array([0.3, 0.85], np.float32)
    z = rng.standard_normal(x0.shape).astype(np.float32)
    spk = multi.speaker(np.array([2, 0]))

    cum = (0.05 * t + 0.5 * (20.0 - 0.05) * t**2)[:, None, None]
    xt = x0 * np.exp(-0.5 * cum) + mu * (1 - np.exp(-0.5 * cum)) + z * np.sqrt(1 - np.exp(-cum))
    xt = xt * mask
    est = dec.estimator(xt, mask, mu, t, spk_emb=spk).numpy()
    expected = np.sum((est * np.sqrt(1 - np.exp(-cum)) + z * mask) ** 2) / (mask.sum() * 80)

    loss = dec.loss_t(x0, mask, mu, t, z, spk_emb=spk)
    assert loss.shape == () and loss.dtype == tf.float32
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_reverse_diffusion_single_step(single):
    dec = single.decoder
    rng = np.random.default_rng(5)
    z, mu, mask = _random_batch(rng)
    t = np.full(2, 0.5, np.float32)
    beta = 0.05 + (20.0 - 0.05) * 0.5
    x = z * mask
    score = dec.estimator(x, mask, mu, t).numpy()

    det = dec.reverse_diffusion(z, mask, mu, 1).numpy()
    np.testing.assert_allclose(det, (x - 0.5 * (mu - x - score) * beta) * mask, atol=1e-4)

    eps = rng.standard_normal((1, *z.shape)).astype(np.float32)
    sto = dec.reverse_diffusion(z, mask, mu, 1, stoc=True, noise=eps).numpy()
    dxt = (0.5 * (mu - x) - score) * beta + eps[0] * math.sqrt(beta)
    np.testing.assert_allclose(sto, (x - dxt) * mask, atol=1e-4)
    np.testing.assert_allclose(dec(z, mask, mu, n_timesteps=1), det, atol=1e-6)


def test_stochastic_sampling_determinism(multi):
    dec = multi.decoder
    rng = np.random.default_rng(6)
    z, mu, mask = _random_batch(rng)
    spk = multi.speaker(np.array([1, 3]))
    eps = rng.standard_normal((3, *z.shape)).astype(np.float32)
    a = dec.reverse_diffusion(z, mask, mu, 3, stoc=True, spk_emb=spk, noise=eps).numpy()
    b = dec.reverse_diffusion(z, mask, mu, 3, stoc=True, spk_emb=spk, noise=eps).numpy()
    np.testing.assert_array_equal(a, b)
    det = dec.reverse_diffusion(z, mask, mu, 3, spk_emb=spk).numpy()
    assert np.abs(a - det).max() > 0.1
    # Without `noise`, draws come from the layer's SeedGenerator: successive calls differ.
    c = dec.reverse_diffusion(z, mask, mu, 3, stoc=True, spk_emb=spk).numpy()
    d = dec.reverse_diffusion(z, mask, mu, 3, stoc=True, spk_emb=spk).numpy()
    assert np.abs(c - d).max() > 0.1
    np.testing.assert_array_equal(c[1, 11:], 0.0)


def test_padding_does_not_change_valid_outputs(single, multi):
    rng = np.random.default_rng(7)
    for ref in (single, multi):
        x, mu, mask = _random_batch(rng)
        t = np.array([0.2, 0.7], np.float32)
        spk = ref.speaker(np.array([0, 2])) if ref.multi else None
        pad = 1.0 - mask
        x2 = x + 100.0 * pad * rng.standard_normal(x.shape).astype(np.float32)
        mu2 = mu - 50.0 * pad * rng.standard_normal(mu.shape).astype(np.float32)
        out = ref.decoder.estimator(x, mask, mu, t, spk_emb=spk).numpy()
        out2 = ref.decoder.estimator(x2, mask, mu2, t, spk_emb=spk).numpy()
        np.testing.assert_allclose(out2, out, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(out[1, 11:], 0.0)
        mel = ref.decoder.reverse_diffusion(x, mask, mu, 2, spk_emb=spk).numpy()
        mel2 = ref.decoder.reverse_diffusion(x2, mask, mu2, 2, spk_emb=spk).numpy()
        np.testing.assert_allclose(mel2, mel, rtol=1e-6, atol=1e-5)


# --------------------------------------------------------------------------- Keras


def test_get_config_round_trip(multi):
    dec = multi.decoder
    config = dec.get_config()
    clone = Diffusion.from_config(config)
    assert clone.get_config() == config
    clone.build()
    clone.set_weights(dec.get_weights())
    x, mask, mu, t = multi.est_inputs()
    spk = multi.speaker()
    np.testing.assert_array_equal(
        clone.estimator(x, mask, mu, t, spk_emb=spk), dec.estimator(x, mask, mu, t, spk_emb=spk)
    )
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(dec))
    assert isinstance(again, Diffusion) and again.get_config() == config

    est = GradLogPEstimator2d.from_config(dec.estimator.get_config())
    assert est.get_config() == dec.estimator.get_config()

    wrapped = Residual(Rezero(LinearAttention(16, name="attn"), name="rezero"), name="res")
    back = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(wrapped))
    assert isinstance(back.fn, Rezero) and isinstance(back.fn.fn, LinearAttention)
    assert back.fn.fn.get_config() == wrapped.fn.fn.get_config()
    back.build((None, None, None, 16))
    shapes = sorted(tuple(w.shape) for w in back.weights)
    assert shapes == sorted([(1,), (1, 1, 16, 384), (1, 1, 128, 16), (16,)])


def test_rezero_starts_at_zero():
    layer = Residual(Rezero(LinearAttention(8, heads=2, dim_head=4)))
    layer.build((None, None, None, 8))
    assert float(layer.fn.g.numpy()[0]) == 0.0
    x = np.random.default_rng(8).standard_normal((1, 4, 4, 8)).astype(np.float32)
    np.testing.assert_array_equal(layer(x), x)


# Under XLA ~14 s on 2 cores: with the slow tests (in CI).
@pytest.mark.parametrize("jit", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_tf_function_matches_eager(multi, jit):
    dec = multi.decoder
    rng = np.random.default_rng(9)
    x, mu, mask = _random_batch(rng)
    t = np.array([0.4, 0.6], np.float32)
    z = rng.standard_normal(x.shape).astype(np.float32)
    spk = multi.speaker(np.array([3, 1]))
    seq = tf.TensorSpec([None, None, 80], tf.float32)
    msk = tf.TensorSpec([None, None, 1], tf.float32)
    vec = tf.TensorSpec([None], tf.float32)
    emb = tf.TensorSpec([None, 16], tf.float32)

    # Few U-Net traces per function: tracing / XLA-compiling one costs ~1-3 s on CPU.
    @tf.function(input_signature=[seq, msk, seq, vec, seq, emb], jit_compile=jit)
    def run(x, mask, mu, t, z, spk):
        if jit:
            # The estimator runs inside the sampler's while loop.
            return (
                dec.reverse_diffusion(z, mask, mu, 2, spk_emb=spk),
                dec.compute_loss(x, mask, mu, spk_emb=spk, seed=13),
            )
        return dec.estimator(x, mask, mu, t, spk_emb=spk), dec.loss_t(x, mask, mu, t, z, spk)

    graph = run(x, mask, mu, t, z, spk)
    if jit:
        eager = (dec.reverse_diffusion(z, mask, mu, 2, spk_emb=spk),)
        # XLA's stateless RNG differs from the TF kernels: only check it is repeatable.
        random_loss = float(graph[1])
        assert np.isfinite(random_loss) and float(run(x, mask, mu, t, z, spk)[1]) == random_loss
    else:
        eager = (dec.estimator(x, mask, mu, t, spk_emb=spk), dec.loss_t(x, mask, mu, t, z, spk))
    for g, e in zip(graph, eager, strict=False):
        assert _rel_err(np.asarray(g), np.asarray(e))[1] < 1e-5


def test_compute_loss_randomness(single):
    dec = single.decoder
    x, mu, mask = _random_batch(np.random.default_rng(10))
    assert float(dec.compute_loss(x, mask, mu)) != float(dec.compute_loss(x, mask, mu))
    a = dec.compute_loss(x, mask, mu, seed=11)
    graph = tf.function(lambda x, m, mu: dec.compute_loss(x, m, mu, seed=11))(x, mask, mu)
    assert float(a) == float(dec.compute_loss(x, mask, mu, seed=11))
    np.testing.assert_allclose(float(graph), float(a), rtol=1e-6)
    # An int seed draws t with `seed` and z with `seed + 1`: reproduce via loss_t.
    t = keras.random.uniform((2,), 0.0, 1.0, seed=11)
    z = keras.random.normal(x.shape, seed=12)
    np.testing.assert_allclose(
        float(dec.loss_t(x, mask, mu, np.clip(t, 1e-5, 1 - 1e-5), z)), float(a), rtol=1e-6
    )


@pytest.mark.parametrize("name", MODELS)
def test_gradients_reach_every_weight(refs, name):
    ref = refs[name]
    dec = ref.decoder
    x, mu, mask = _random_batch(np.random.default_rng(11))
    spk = ref.speaker(np.array([0, 1])) if ref.multi else None
    with tf.GradientTape() as tape:
        loss = dec.compute_loss(x, mask, mu, spk_emb=spk)
    weights = dec.trainable_weights
    grads = tape.gradient(loss, weights)
    missing = [w.path for w, g in zip(weights, grads, strict=True) if g is None]
    assert not missing
    by_path = {w.path: g for w, g in zip(weights, grads, strict=True)}
    gates = [p for p in by_path if p.endswith("/g")]
    assert len(gates) == 6
    assert all(float(tf.reduce_max(tf.abs(by_path[p]))) > 0 for p in gates)
    if ref.multi:
        spk_paths = [p for p in by_path if "spk_mlp" in p]
        assert len(spk_paths) == 4
        assert all(float(tf.reduce_max(tf.abs(by_path[p]))) > 0 for p in spk_paths)


def test_mixed_precision(single):
    dec = make_decoder(single.config, dtype="mixed_float16")
    load_decoder_weights(dec, single.state_dict)
    assert dec.estimator.downs[0][0].block1.conv.compute_dtype == "float16"
    x, mask, mu, t = single.est_inputs()
    out = dec.estimator(x, mask, mu, t)
    assert out.dtype == tf.float16
    assert _rel_err(out.numpy().astype(np.float32), _tr(single.io["est_out"]))[1] < 1e-2
    z = np.zeros_like(x)
    loss16 = dec.loss_t(x, mask, mu, t, z)
    loss32 = single.decoder.loss_t(x, mask, mu, t, z)
    assert loss16.dtype == tf.float32
    np.testing.assert_allclose(float(loss16), float(loss32), rtol=1e-2)
    assert dec.reverse_diffusion(x, mask, mu, 1).dtype == tf.float32


def test_build_without_data_and_noise_schedule():
    dec = Diffusion(80, 8, n_spks=3, spk_emb_dim=8)
    dec.build()
    assert dec.built and dec.estimator.built
    n_params = sum(int(np.prod(w.shape)) for w in dec.trainable_weights)
    assert n_params > 0
    assert get_noise(0.5, 0.05, 20.0) == pytest.approx(0.05 + 19.95 * 0.5)
    assert get_noise(1.0, 0.05, 20.0, cumulative=True) == pytest.approx(10.025)
    with pytest.raises(ValueError, match="n_timesteps"):
        dec.reverse_diffusion(np.zeros((1, 4, 80)), np.ones((1, 4, 1)), np.zeros((1, 4, 80)), 0)


@pytest.mark.parametrize("frames,length", [(4, 1), (8, 8)])
def test_estimator_zero_input_and_shortest_mel(frames, length):
    est = GradLogPEstimator2d(8, n_feats=80)
    est.build()
    x = tf.zeros([2, frames, 80])
    mask = tf.sequence_mask([length, 1], frames, dtype=tf.float32)[:, :, None]  # [B, T, 1]
    out = est(x, mask, x, tf.constant([0.5, 0.01])).numpy()
    assert out.shape == (2, frames, 80) and np.isfinite(out).all()
    assert np.all(out[0, length:] == 0) and np.all(out[1, 1:] == 0)
    assert np.any(out[0, :length] != 0)  # biases alone give a non-zero score


def test_unet_blocks_on_zeros_and_length_one():
    x = tf.zeros([1, 4, 8, 8])  # [B, T, F, C]
    mask = tf.constant([1.0, 0.0, 0.0, 0.0])[None, :, None, None]  # [B, T, 1, 1]
    t_emb = tf.zeros([1, 16])
    for layer, args in (
        (Block(8, 16, name="b"), (x, mask)),
        (ResnetBlock(8, 16, 16, name="r"), (x, mask, t_emb)),
        (LinearAttention(8, name="a"), (x,)),
    ):
        layer.build()
        out = layer(*args).numpy()
        assert out.shape[:3] == (1, 4, 8) and np.isfinite(out).all()
        if len(args) > 1:
            assert np.all(out[:, 1:] == 0)


def test_group_norm_equals_keras_group_normalization():
    """Our channels-last GroupNorm: Keras' result (same weights), also in mixed precision."""
    rng = np.random.default_rng(0)
    x = tf.constant(3.0 + 2.0 * rng.standard_normal((2, 12, 10, 16)), tf.float32)  # [B, T, F, C]
    ours = GroupNorm(groups=8, epsilon=1e-5)
    ref = keras.layers.GroupNormalization(groups=8, epsilon=1e-5)
    ours.build(x.shape)
    ref.build(x.shape)
    weights = [rng.standard_normal(w.shape).astype("float32") for w in ref.get_weights()]
    ours.set_weights(weights)
    ref.set_weights(weights)
    np.testing.assert_allclose(ours(x).numpy(), ref(x).numpy(), rtol=1e-5, atol=1e-5)
    assert GroupNorm.from_config(ours.get_config()).groups == 8
    half = GroupNorm(groups=8, epsilon=1e-5, dtype="mixed_float16")
    half.build(x.shape)
    half.set_weights(weights)
    out = half(x)
    assert out.dtype == tf.float16
    np.testing.assert_allclose(out.numpy(), ref(x).numpy(), atol=2e-2)


def _values_and_grads(fn, x, weights):
    """``fn(x)``, and the gradients of a fixed random projection of it to ``x``, ``weights``."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        proj = tf.cast(np.random.default_rng(3).standard_normal(y.shape), y.dtype)
        loss = tf.reduce_sum(tf.cast(y * proj, tf.float32))
    return [y, *tape.gradient(loss, [x, *weights])]


@pytest.mark.parametrize("jit", [False, True])
def test_group_norm_mish_matches_autodiff(jit):
    """``group_norm_mish``: GroupNorm then mish, value and gradients (x, gamma, beta)."""
    rng = np.random.default_rng(1)
    # Padded frames (zeros) and an offset, as the U-Net's masked conv outputs have.
    x = 3.0 + 2.0 * rng.standard_normal((2, 12, 10, 16))  # [B, T, F, C]
    x[1, 7:] = 0.0
    x = tf.constant(x, tf.float32)
    norm = GroupNorm(groups=4, epsilon=1e-5)
    norm.build(x.shape)
    norm.set_weights([1.0 + rng.standard_normal(16), rng.standard_normal(16)])
    weights = [norm.gamma.value, norm.beta.value]
    ours = tf.function(
        lambda: _values_and_grads(norm.call_mish, x, weights), jit_compile=jit
    )()
    ref = _values_and_grads(lambda v: mish(norm(v)), x, weights)
    for a, b in zip(ours, ref, strict=True):
        scale = float(np.abs(b.numpy()).max())
        assert scale > 0.1
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5 * scale)


def test_group_norm_mish_keeps_input_dtype():
    """bfloat16 / float16 inputs: the same forward as GroupNorm then mish in that dtype."""
    rng = np.random.default_rng(2)
    x32 = tf.constant(rng.standard_normal((1, 6, 4, 8)), tf.float32)
    gamma, beta = tf.constant(rng.standard_normal(8), tf.float32), tf.zeros(8)

    def norm_with_policy(policy):
        norm = GroupNorm(groups=2, epsilon=1e-5, dtype=policy)
        norm.build(x32.shape)
        norm.set_weights([gamma.numpy(), beta.numpy()])
        return norm

    ref = _values_and_grads(lambda v: mish(norm_with_policy("float32")(v)), x32, [])
    for dtype, policy in ((tf.bfloat16, "mixed_bfloat16"), (tf.float16, "mixed_float16")):
        x = tf.cast(x32, dtype)
        out = group_norm_mish(x, gamma, beta, groups=2, epsilon=1e-5)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out.numpy(), mish(norm_with_policy(policy)(x)).numpy())
        got = _values_and_grads(lambda v: group_norm_mish(v, gamma, beta, 2, 1e-5), x, [])
        for a, b in zip(got, ref, strict=True):
            np.testing.assert_allclose(
                tf.cast(a, tf.float32).numpy(), b.numpy(), rtol=3e-2, atol=3e-2
            )


def test_rezero_recomputes_without_changing_gradients():
    """Rezero's recomputing backward pass equals autodiff of ``fn(x) * g``."""
    layer = Rezero(LinearAttention(8, heads=2, dim_head=4))
    x = tf.constant(np.random.default_rng(9).standard_normal((2, 5, 4, 8)), tf.float32)
    layer.build(x.shape)
    layer.g.assign([0.7])
    weights = [w.value for w in layer.trainable_weights]
    assert len(weights) == 4  # to_qkv kernel, to_out kernel and bias, g
    ours = tf.function(lambda: _values_and_grads(layer, x, weights))()
    ref = _values_and_grads(lambda v: layer.fn(v) * layer.g, x, weights)
    for a, b in zip(ours, ref, strict=True):
        assert float(np.abs(b.numpy()).max()) > 1e-3
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
def test_mish_value_and_recomputed_gradient(jit):
    """``mish`` and its custom gradient equal the textbook form and its autodiff."""
    x = tf.constant(np.concatenate([np.linspace(-30, 30, 601), [-100.0, 0.0, 50.0, 100.0]]),
                    tf.float32)
    _check_mish(x, jit, rtol=1e-5, atol=1e-6)


def test_mish_bfloat16_value_and_gradient():
    """The bfloat16 form (textbook forward, recomputed gradient) to bfloat16 precision."""
    x = tf.constant(np.concatenate([np.linspace(-30, 30, 601), [-100.0, 0.0, 50.0, 100.0]]),
                    tf.bfloat16)
    _check_mish(x, False, rtol=2e-2, atol=2e-2)


def _check_mish(x, jit, rtol, atol):
    def value_and_grad(fn, v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            y = fn(v)
        return y, tape.gradient(y, v)

    ours = tf.function(lambda: value_and_grad(mish, x), jit_compile=jit)()
    # The reference: the textbook form's autodiff in float32, on the same (rounded) x.
    ref = value_and_grad(lambda v: v * tf.tanh(tf.math.softplus(v)), tf.cast(x, tf.float32))
    for a, b in zip(ours, ref, strict=True):
        a = tf.cast(a, tf.float32).numpy()
        assert np.isfinite(a).all()
        np.testing.assert_allclose(a, b.numpy(), rtol=rtol, atol=atol)
    # Known points: mish(0) = 0, mish'(0) = tanh(log 2) = 0.6, mish(x) -> x for large x.
    value, grad = (tf.cast(t, tf.float32).numpy() for t in ours)
    assert value[602] == 0.0 and abs(grad[602] - 0.6) < max(atol, 1e-6)
    assert value[-1] == 100.0 and grad[-1] == pytest.approx(1.0)
