"""HiFi-GAN generator, discriminators, official-checkpoint conversion and `load_vocoder`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import REF

from gradtts_tf.config import AudioConfig, Config, VocoderConfig, load_config
from gradtts_tf.convert import hifigan_from_official, vocoder_config_from_official
from gradtts_tf.layers.hifigan import (
    HiFiGANGenerator,
    NormConv1D,
    NormConv1DTranspose,
    ResBlock1,
    ResBlock2,
)
from gradtts_tf.layers.hifigan_discriminators import (
    DiscriminatorP,
    DiscriminatorS,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    _avg_pool,
)
from gradtts_tf.vocoder import GriffinLimVocoder, load_vocoder, save_hifigan

CKPT_NPZ = REF / "hifigan_v1_small_state_dict.npz"
CKPT_PT = REF / "hifigan_v1_small.pt"
CONFIG_JSON = REF / "hifigan_v1_small_config.json"
IO = REF / "hifigan_v1_small_io.npz"

# A tiny V3-like layout: hop 16 * 16 = 256 like the real mel.
TINY_V3 = dict(
    resblock="2",
    upsample_rates=[16, 16],
    upsample_kernel_sizes=[32, 32],
    upsample_initial_channel=16,
    resblock_kernel_sizes=[3, 5],
    resblock_dilation_sizes=[[1, 2], [2, 6]],
)
TINY_V1 = dict(
    resblock="1",
    upsample_rates=[8, 8, 4],
    upsample_kernel_sizes=[16, 16, 8],
    upsample_initial_channel=16,
    resblock_kernel_sizes=[3, 7],
    resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]],
)


def _reference():
    io = np.load(IO)
    mel = io["mel"].transpose(0, 2, 1)  # [1, T, 80]
    return mel, io["audio"][:, 0]  # [1, 8192]


def _perturb(model: tf.keras.Model, seed: int = 0) -> None:
    """Random non-trivial weights (weight-norm g away from ||v||)."""
    rng = np.random.default_rng(seed)
    for v in model.trainable_variables:
        v.assign(v.numpy() * rng.uniform(0.5, 1.5, v.shape).astype(np.float32))


# ---------------------------------------------------------------------------
# Official checkpoint conversion
# ---------------------------------------------------------------------------


def test_official_generator_parity():
    """npz + JSON path -> matches the official PyTorch output to 1e-4 (max abs error)."""
    mel, audio = _reference()
    generator = hifigan_from_official(CKPT_NPZ, CONFIG_JSON)
    assert not generator.weight_norm
    out = generator(mel).numpy()
    assert out.shape == audio.shape == (1, 8192)
    err = np.abs(out - audio).max()
    print(f"hifigan_v1_small parity: max abs error {err:.3g} "
          f"(|audio| max {np.abs(audio).max():.3f})")
    assert err < 1e-4


def test_official_generator_from_dicts_and_weight_norm():
    """A dict state_dict + dict config; keeping weight_g/_v gives the same function."""
    mel, audio = _reference()
    with np.load(CKPT_NPZ) as npz:
        state = {"generator": {k: npz[k] for k in npz.files}}
    config = json.loads(CONFIG_JSON.read_text())
    wn = hifigan_from_official(state, config, weight_norm=True)
    assert wn.weight_norm
    np.testing.assert_allclose(wn(mel).numpy(), audio, atol=1e-4, rtol=0)
    folded = wn.fold_weight_norm()
    np.testing.assert_allclose(folded(mel).numpy(), audio, atol=1e-4, rtol=0)


def test_official_generator_from_pt():
    pytest.importorskip("torch")
    mel, audio = _reference()
    generator = hifigan_from_official(CKPT_PT, CONFIG_JSON)
    np.testing.assert_allclose(generator(mel).numpy(), audio, atol=1e-4, rtol=0)


def test_official_conversion_errors():
    with np.load(CKPT_NPZ) as npz:
        state = {k: npz[k] for k in npz.files}
    config = json.loads(CONFIG_JSON.read_text())
    with pytest.raises(ValueError, match="not used"):
        hifigan_from_official({**state, "extra.weight": np.zeros(3)}, config)
    with pytest.raises(ValueError, match="shape"):
        hifigan_from_official(state, {**config, "upsample_initial_channel": 32})
    missing = {k: v for k, v in state.items() if k != "conv_post.bias"}
    with pytest.raises(ValueError, match="conv_post.bias"):
        hifigan_from_official(missing, config)


def test_vocoder_config_from_official():
    vcfg, audio = vocoder_config_from_official(
        {**json.loads(CONFIG_JSON.read_text()), "sampling_rate": 22050, "hop_size": 256,
         "fmax": 8000, "fmax_for_loss": None, "num_gpus": 0}
    )
    assert vcfg.upsample_initial_channel == 64 and vcfg.resblock == "1"
    assert vcfg.upsample_rates == [8, 8, 2, 2] and vcfg.loss_f_max is None
    assert audio == {"n_mels": 80, "sample_rate": 22050, "hop_length": 256, "f_max": 8000.0}


def test_convert_cli_hifigan(tmp_path):
    from gradtts_tf.convert import main

    main(["--checkpoint", str(CKPT_NPZ), "--vocoder-config", str(CONFIG_JSON),
          "--out", str(tmp_path / "voc")])
    vocoder = load_vocoder(tmp_path / "voc", AudioConfig())
    mel, audio = _reference()
    np.testing.assert_allclose(vocoder(mel), audio, atol=1e-4, rtol=0)
    assert load_config(tmp_path / "voc" / "config.yaml").vocoder.upsample_initial_channel == 64


# ---------------------------------------------------------------------------
# Layers against numpy definitions of the torch operators
# ---------------------------------------------------------------------------


def _np_conv_transpose(x, w, b, stride, padding):
    """torch ConvTranspose1d: x [C_in, T], w [C_in, C_out, k] -> [C_out, T_out]."""
    c_in, t = x.shape
    _, c_out, k = w.shape
    full = np.zeros([c_out, (t - 1) * stride + k])
    for i in range(t):
        full[:, i * stride : i * stride + k] += np.tensordot(x[:, i], w, axes=(0, 0))
    out = full[:, padding : full.shape[1] - padding] if padding else full
    return out + b[:, None]


def _np_conv(x, w, b, stride=1, dilation=1, padding=0, groups=1):
    """torch Conv1d: x [C_in, T], w [C_out, C_in / groups, k] -> [C_out, T_out]."""
    x = np.pad(x, [(0, 0), (padding, padding)])
    c_out, cg, k = w.shape
    t_out = (x.shape[1] - dilation * (k - 1) - 1) // stride + 1
    out = np.zeros([c_out, t_out])
    per_out = c_out // groups
    for o in range(c_out):
        g = o // per_out
        xs = x[g * cg : (g + 1) * cg]
        for t in range(t_out):
            taps = xs[:, t * stride : t * stride + dilation * (k - 1) + 1 : dilation]
            out[o, t] = np.sum(taps * w[o]) + b[o]
    return out


@pytest.mark.parametrize("k,u,pad", [
    (16, 8, 4), (4, 2, 1), (8, 4, 2), (32, 16, 8), (3, 1, 1),  # HiFi-GAN's (k - u) / 2
    (5, 2, 0), (7, 3, 2), (11, 4, 3), (8, 4, 0), (2, 3, 0),  # k not a multiple of u, odd
])
def test_conv_transpose_matches_torch_definition(k, u, pad):
    rng = np.random.default_rng(k * 100 + u * 10 + pad)
    c_in, c_out, t = 5, 3, 7
    layer = NormConv1DTranspose(c_out, k, u, padding=pad, norm="none", in_channels=c_in)
    layer.build(None)
    w = rng.standard_normal([c_in, c_out, k]).astype(np.float32)  # torch [in, out, k]
    b = rng.standard_normal([c_out]).astype(np.float32)
    layer.kernel_raw.assign(w.transpose(2, 1, 0))  # ours [k, out, in]
    layer.bias.assign(b)
    x = rng.standard_normal([2, c_in, t]).astype(np.float32)
    ref = np.stack([_np_conv_transpose(xi.astype(np.float64), w, b, u, pad) for xi in x])
    out = layer(x.transpose(0, 2, 1)).numpy().transpose(0, 2, 1)  # [B, out, T_out]
    assert out.shape == ref.shape == (2, c_out, (t - 1) * u + k - 2 * pad)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    # Unknown batch and length (as exported): the same numbers.
    dynamic = tf.function(layer, input_signature=[tf.TensorSpec([None, None, c_in])])
    np.testing.assert_allclose(dynamic(x.transpose(0, 2, 1)).numpy(), out.transpose(0, 2, 1),
                               atol=1e-6)
    # Height-1 images [B, 1, T, C], as inside the generator: the same numbers.
    four_d = layer(x.transpose(0, 2, 1)[:, None]).numpy()  # [B, 1, T_out, out]
    np.testing.assert_allclose(four_d[:, 0], out.transpose(0, 2, 1), atol=1e-6)


@pytest.mark.parametrize("stride,dilation,padding,groups", [(1, 1, 3, 1), (1, 5, 5, 1),
                                                             (2, 1, 2, 4), (3, 1, 0, 2)])
def test_conv_matches_torch_definition(stride, dilation, padding, groups):
    rng = np.random.default_rng(stride + 10 * dilation + 100 * groups)
    c_in, c_out, k, t = 8, 4, 3, 23
    layer = NormConv1D(c_out, k, strides=stride, dilation_rate=dilation, padding=padding,
                       groups=groups, norm="none", in_channels=c_in)
    layer.build(None)
    w = rng.standard_normal([c_out, c_in // groups, k]).astype(np.float32)
    b = rng.standard_normal([c_out]).astype(np.float32)
    layer.kernel_raw.assign(w.transpose(2, 1, 0))
    layer.bias.assign(b)
    x = rng.standard_normal([c_in, t]).astype(np.float32)
    ref = _np_conv(x, w, b, stride, dilation, padding, groups)
    np.testing.assert_allclose(layer(x.T[None]).numpy()[0].T, ref, atol=1e-5)


def test_weight_norm_is_torch_dim0():
    """w = g * v / ||v||: per output channel (conv), per input channel (transposed conv)."""
    rng = np.random.default_rng(1)
    conv = NormConv1D(4, 3, norm="weight", in_channels=6)
    up = NormConv1DTranspose(4, 8, 4, padding=2, norm="weight", in_channels=6)
    for layer, n_g in ((conv, 4), (up, 6)):
        layer.build(None)
        assert tuple(layer.kernel_g.shape) == (n_g,)
        # Initial g = ||v|| so the initial kernel equals v.
        np.testing.assert_allclose(layer.kernel.numpy(), layer.kernel_v.numpy(), rtol=1e-5)
        layer.kernel_g.assign(rng.uniform(0.5, 2, n_g).astype(np.float32))
        v = layer.kernel_v.numpy()
        expected = layer.kernel_g.numpy() * v / np.sqrt((v**2).sum(axis=(0, 1)))
        np.testing.assert_allclose(layer.kernel.numpy(), expected, rtol=1e-5)


def test_spectral_norm_converges_to_unit_sigma():
    layer = NormConv1D(8, 5, norm="spectral", in_channels=4)
    layer.build(None)
    for _ in range(50):
        layer.compute_kernel(training=True)
    w = layer.compute_kernel(training=False).numpy().reshape(-1, 8)  # [k * in, out]
    assert abs(np.linalg.svd(w, compute_uv=False)[0] - 1.0) < 1e-3


def test_avg_pool_counts_padding_like_torch():
    x = np.arange(1, 12, dtype=np.float32)[None]  # [1, 11]
    padded = np.pad(x[0], 2)
    ref = np.array([padded[i : i + 4].mean() for i in range(0, len(padded) - 3, 2)])
    np.testing.assert_allclose(_avg_pool(x).numpy()[0], ref, rtol=1e-6)
    assert _avg_pool(x).shape[1] == 11 // 2 + 1


# ---------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("layout", [TINY_V1, TINY_V3], ids=["v1", "v3"])
def test_generator_shapes_and_fold(layout):
    gen = HiFiGANGenerator(n_mels=80, **layout, weight_norm=True)
    gen.build((None, None, 80))
    _perturb(gen)
    assert gen.hop_length == 256
    block_cls = ResBlock1 if layout["resblock"] == "1" else ResBlock2
    assert all(isinstance(b, block_cls) for b in gen.resblocks)
    n_blocks = len(layout["upsample_rates"]) * len(layout["resblock_kernel_sizes"])
    assert len(gen.resblocks) == n_blocks
    mel = np.random.default_rng(0).standard_normal([2, 9, 80]).astype(np.float32)
    out = gen(mel).numpy()
    assert out.shape == (2, 9 * 256) and out.dtype == np.float32
    assert np.all(np.abs(out) < 1) and np.std(out) > 0
    folded = gen.fold_weight_norm()
    assert not folded.weight_norm
    assert not any("kernel_v" in v.path for v in folded.weights)
    np.testing.assert_allclose(folded(mel).numpy(), out, atol=1e-5)


def test_generator_padding_does_not_leak():
    """Batched with lengths == each item alone (exactly, up to float rounding)."""
    gen = HiFiGANGenerator(n_mels=80, **TINY_V1, weight_norm=False)
    gen.build((None, None, 80))
    _perturb(gen, 3)
    rng = np.random.default_rng(4)
    a = rng.standard_normal([1, 13, 80]).astype(np.float32)
    b = rng.standard_normal([1, 6, 80]).astype(np.float32)
    batch = np.concatenate([a, np.pad(b, [(0, 0), (0, 7), (0, 0)], constant_values=5.0)])
    out = gen(batch, lengths=np.array([13, 6])).numpy()
    np.testing.assert_allclose(out[0], gen(a).numpy()[0], atol=1e-5)
    np.testing.assert_allclose(out[1, : 6 * 256], gen(b).numpy()[0], atol=1e-5)
    assert np.all(out[1, 6 * 256 :] == 0)


def test_generator_config_round_trip_and_weights(tmp_path):
    gen = HiFiGANGenerator.from_vocoder_config(VocoderConfig(**TINY_V3), n_mels=80,
                                               weight_norm=False)
    _perturb(gen, 5)
    clone = HiFiGANGenerator.from_config(gen.get_config())
    clone.build((None, None, 80))
    assert clone.get_config() == gen.get_config()
    gen.save_weights(tmp_path / "g.weights.h5")
    clone.load_weights(tmp_path / "g.weights.h5")
    mel = np.random.default_rng(1).standard_normal([1, 5, 80]).astype(np.float32)
    np.testing.assert_array_equal(clone(mel).numpy(), gen(mel).numpy())
    for layer in (ResBlock1(8, 3, [1, 3, 5], name="r1"), ResBlock2(8, 3, [1, 3], name="r2"),
                  NormConv1D(4, 3, groups=2, norm="spectral", in_channels=8, name="c"),
                  NormConv1DTranspose(4, 8, 4, padding=2, in_channels=8, name="t")):
        assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()


def test_generator_rejects_bad_layouts():
    with pytest.raises(ValueError, match="resblock"):
        HiFiGANGenerator(resblock="3")
    with pytest.raises(ValueError, match="k - u even"):
        HiFiGANGenerator(upsample_rates=[8, 8, 4], upsample_kernel_sizes=[16, 16, 7])


def test_vocoder_config_round_trip(tmp_path):
    config = load_config(None, ["vocoder.resblock=2", "vocoder.upsample_rates=[8,8,4]",
                                "vocoder.upsample_kernel_sizes=[16,16,8]",
                                "vocoder.loss_f_max=8000"])
    assert config.vocoder.resblock == "2" and config.vocoder.loss_f_max == 8000.0
    config.save(tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config
    assert Config().vocoder == VocoderConfig()  # official V1 defaults
    assert VocoderConfig().upsample_initial_channel == 512
    for path in ("configs/hifigan_v1.yaml", "configs/hifigan_demo.yaml"):
        cfg = load_config(Path(__file__).resolve().parents[1] / path)
        assert int(np.prod(cfg.vocoder.upsample_rates)) == cfg.audio.hop_length
    assert load_config(Path(__file__).resolve().parents[1] / "configs/hifigan_v1.yaml").vocoder \
        == VocoderConfig()


# ---------------------------------------------------------------------------
# Discriminators
# ---------------------------------------------------------------------------


def test_period_discriminator_equals_2d_convolution():
    """Folding periods into the batch == the official (k, 1) Conv2d on [B, T/p, p]."""
    d = DiscriminatorP(3, channels=[4, 6, 6, 8, 8], norm="none")
    d.build(None)
    _perturb(d, 7)
    audio = np.random.default_rng(2).standard_normal([2, 100]).astype(np.float32)
    logits, fmap = d(audio)
    assert len(fmap) == 6
    # Reference: reflect-pad to 102, view [B, 34, 3, 1] (NHWC), conv2d with (k, 1) kernels.
    x = tf.reshape(tf.pad(audio, [[0, 0], [0, 2]], mode="REFLECT"), [2, 34, 3, 1])
    for conv, got in zip(d.conv_layers(), fmap, strict=True):
        x = tf.pad(x, [[0, 0], [conv.padding, conv.padding], [0, 0], [0, 0]])
        x = tf.nn.conv2d(x, conv.kernel[:, None], [1, conv.strides, 1, 1], "VALID") + conv.bias
        if conv is not d.conv_post:
            x = tf.nn.leaky_relu(x, 0.1)
        # ours: [B * p, T_l, C]; reference NHWC: [B, T_l, p, C]
        ref = tf.reshape(tf.transpose(x, [0, 2, 1, 3]), got.shape)  # [B * p, T_l, C]
        np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-5)
    assert logits.shape == (2, 3 * x.shape[1])


def test_discriminator_shapes():
    audio = np.random.default_rng(3).standard_normal([2, 1024]).astype(np.float32)
    mpd = MultiPeriodDiscriminator([2, 3, 5], [4, 4, 8, 8, 8])
    mpd.build(None)
    logits, fmaps = mpd(audio)
    assert len(logits) == 3 and all(len(f) == 6 for f in fmaps)
    assert fmaps[1][0].shape[0] == 2 * 3 and fmaps[1][-1].shape[-1] == 1
    msd = MultiScaleDiscriminator([16] * 7, [1, 4, 16, 16, 16, 16, 1])
    msd.build(None)
    logits, fmaps = msd(audio)
    assert len(logits) == 3 and all(len(f) == 8 for f in fmaps)
    assert msd.discriminators[0].norm == "spectral" and msd.discriminators[1].norm == "weight"
    assert [f[0].shape[1] for f in fmaps] == [1024, 513, 257]  # AvgPool1d(4, 2, padding=2)
    with pytest.raises(ValueError, match="groups"):
        DiscriminatorS([8] * 7, [1, 4, 16, 16, 16, 16, 1]).build(None)


# ---------------------------------------------------------------------------
# load_vocoder
# ---------------------------------------------------------------------------


def test_load_vocoder_griffin_lim():
    audio_cfg = AudioConfig()
    for spec in (None, "griffin-lim"):
        vocoder = load_vocoder(spec, audio_cfg)
        assert isinstance(vocoder, GriffinLimVocoder)
        assert (vocoder.sample_rate, vocoder.hop_length) == (22050, 256)
        assert vocoder.name == "griffin-lim"
    mel = np.load(REF / "mel_case.npz")["mel"].T[None, :40]  # [1, 40, 80]
    batch = np.concatenate([mel, np.pad(mel[:, :25], [(0, 0), (0, 15), (0, 0)])])
    wav = vocoder(batch, lengths=[40, 25])
    assert wav.shape == (2, 40 * 256) and wav.dtype == np.float32
    assert np.all(np.isfinite(wav)) and np.abs(wav).max() <= 1 and wav[0].std() > 1e-3
    assert np.all(wav[1, 25 * 256 :] == 0)
    np.testing.assert_allclose(wav[1, : 25 * 256], vocoder(mel[:, :25])[0], atol=1e-5)
    assert vocoder(mel[0]).shape == (40 * 256,)


def test_load_vocoder_hifigan_checkpoint(tmp_path):
    config = load_config(None, [f"vocoder.{k}={json.dumps(v)}" for k, v in TINY_V3.items()])
    gen = HiFiGANGenerator.from_vocoder_config(config.vocoder, weight_norm=True)
    _perturb(gen, 9)
    save_hifigan(gen, config, tmp_path / "voc")
    assert sorted(p.name for p in (tmp_path / "voc").iterdir()) == [
        "config.yaml", "generator.weights.h5"]
    vocoder = load_vocoder(str(tmp_path / "voc"), config.audio)
    assert (vocoder.sample_rate, vocoder.hop_length) == (22050, 256)
    mel = np.random.default_rng(2).standard_normal([2, 7, 80]).astype(np.float32)
    out = vocoder(mel)
    assert out.shape == (2, 7 * 256) and out.dtype == np.float32
    np.testing.assert_allclose(out, gen(mel).numpy(), atol=1e-5)
    # The weights file's path works too; a different hop is refused.
    load_vocoder(tmp_path / "voc" / "generator.weights.h5", config.audio)
    with pytest.raises(ValueError, match="hop_length"):
        load_vocoder(tmp_path / "voc", AudioConfig(hop_length=200))
    with pytest.raises(FileNotFoundError, match="griffin-lim"):
        load_vocoder(tmp_path / "nothing", config.audio)


def test_load_vocoder_official_json_folder(tmp_path):
    """A folder with an official config.json + our generator.weights.h5."""
    generator = hifigan_from_official(CKPT_NPZ, CONFIG_JSON)
    generator.save_weights(tmp_path / "generator.weights.h5")
    (tmp_path / "config.json").write_text(CONFIG_JSON.read_text())
    vocoder = load_vocoder(tmp_path, AudioConfig())
    mel, audio = _reference()
    np.testing.assert_allclose(vocoder(mel), audio, atol=1e-4, rtol=0)
