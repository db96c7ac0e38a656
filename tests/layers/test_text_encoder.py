"""Text encoder: parity with the official PyTorch Grad-TTS encoder, shapes, masking, graphs."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REF

from gradtts_tf.convert.encoder import load_encoder_weights
from gradtts_tf.layers.conv_relu_norm import ConvReluNorm
from gradtts_tf.layers.duration_predictor import DurationPredictor
from gradtts_tf.layers.ffn import FFN
from gradtts_tf.layers.layer_norm import LayerNorm
from gradtts_tf.layers.relative_attention import (
    RelativeMultiHeadAttention,
    absolute_to_relative,
    relative_to_absolute,
)
from gradtts_tf.layers.text_encoder import Encoder, TextEncoder

MODELS = ["gradtts_small", "gradtts_small_multispeaker"]

# A tiny configuration for the structural tests.
SMALL = dict(
    n_vocab=20, n_feats=6, n_channels=8, filter_channels=16, filter_channels_dp=8,
    n_heads=2, n_layers=2, kernel_size=3, p_dropout=0.1, window_size=2,
)


def _official_encoder(name: str) -> tuple[TextEncoder, dict, set[str]]:
    cfg = json.loads((REF / f"{name}_config.json").read_text())
    enc = TextEncoder(
        cfg["n_vocab"], cfg["n_feats"], cfg["n_enc_channels"], cfg["filter_channels"],
        cfg["filter_channels_dp"], cfg["n_heads"], cfg["n_enc_layers"], cfg["enc_kernel"],
        cfg["enc_dropout"], cfg["window_size"], spk_emb_dim=cfg["spk_emb_dim"],
        n_spks=cfg["n_spks"], name="encoder",
    )
    enc.build()
    state_dict = dict(np.load(REF / f"{name}_state_dict.npz"))
    used = load_encoder_weights(enc, state_dict)
    return enc, state_dict, used


@pytest.fixture(scope="module", params=MODELS)
def official(request):
    enc, state_dict, used = _official_encoder(request.param)
    io = dict(np.load(REF / f"{request.param}_io.npz"))
    return enc, state_dict, used, io


def _small_encoder(seed: int = 0, **overrides) -> TextEncoder:
    keras.utils.set_random_seed(seed)
    enc = TextEncoder(**{**SMALL, **overrides})
    enc.build()
    # Make the zero-initialised prenet projection non-zero so the prenet path matters.
    for w in enc.prenet.proj.weights:
        w.assign(np.random.default_rng(seed).normal(0, 0.2, w.shape).astype("float32"))
    return enc


def _batch(rng: np.random.Generator, lengths: list[int], t: int, n_vocab: int = 20):
    x = rng.integers(1, n_vocab, (len(lengths), t))
    for i, n in enumerate(lengths):
        x[i, n:] = 0
    return x.astype("int32"), np.asarray(lengths, "int32")


# --------------------------------------------------------------------------- parity


def test_parity_with_official(official):
    enc, _, _, io = official
    mu_x, logw, x_mask = enc(io["x"], io["x_lengths"], training=False)
    for got, key in ((mu_x, "enc_mu_x"), (logw, "enc_logw"), (x_mask, "enc_x_mask")):
        want = io[key].transpose(0, 2, 1)  # [B, C, T] -> [B, T, C]
        got = np.asarray(got)
        err = np.abs(got - want)
        print(f"{key}: max abs err {err.max():.3e}, max |ref| {np.abs(want).max():.3f}")
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=key)


def test_all_encoder_keys_consumed(official):
    _, state_dict, used, _ = official
    assert used == {k for k in state_dict if k.startswith("encoder.")}
    assert len(used) == 63


def test_loader_errors():
    state_dict = dict(np.load(REF / "gradtts_small_state_dict.npz"))
    cfg = dict(
        n_vocab=149, n_feats=80, n_channels=64, filter_channels=256, filter_channels_dp=64,
        n_heads=2, n_layers=2, kernel_size=3, p_dropout=0.1, window_size=4,
    )
    with pytest.raises(ValueError, match="build"):
        load_encoder_weights(TextEncoder(**cfg), state_dict)

    enc = TextEncoder(**cfg)
    enc.build()
    missing = {k: v for k, v in state_dict.items() if k != "encoder.proj_m.bias"}
    with pytest.raises(KeyError, match="encoder.proj_m.bias"):
        load_encoder_weights(enc, missing)

    enc = TextEncoder(**{**cfg, "filter_channels": 128})
    enc.build()
    with pytest.raises(ValueError, match=r"encoder\.encoder\.ffn_layers\.0\.conv_1\.weight"):
        load_encoder_weights(enc, state_dict)


# --------------------------------------------------------------------------- skewing


def test_relative_absolute_index_conversions():
    rng = np.random.default_rng(0)
    for t in (1, 2, 5):
        rel = rng.normal(size=(2, 3, t, 2 * t - 1)).astype("float32")
        absolute = relative_to_absolute(tf.constant(rel)).numpy()
        i, j = np.meshgrid(np.arange(t), np.arange(t), indexing="ij")
        np.testing.assert_array_equal(absolute, rel[:, :, i, j - i + t - 1])

        a = rng.normal(size=(2, 3, t, t)).astype("float32")
        back = absolute_to_relative(tf.constant(a)).numpy()
        want = np.zeros((2, 3, t, 2 * t - 1), "float32")
        want[:, :, i, j - i + t - 1] = a[:, :, i, j]
        np.testing.assert_array_equal(back, want)


def _numpy_attention(layer: RelativeMultiHeadAttention, x: np.ndarray, mask: np.ndarray):
    """Direct per-position reference (explicit clipped relative offsets, loops)."""
    def conv(c, h):
        return h @ c.kernel.numpy()[0] + c.bias.numpy()

    b, t, _ = x.shape
    nh, d, w = layer.n_heads, layer.k_channels, layer.window_size
    q, k, v = (conv(c, x).reshape(b, t, nh, d) for c in (layer.conv_q, layer.conv_k, layer.conv_v))
    ek, ev = layer.emb_rel_k.numpy(), layer.emb_rel_v.numpy()
    out = np.zeros((b, t, nh, d))
    for bi in range(b):
        for h in range(nh):
            hr = 0 if layer.heads_share else h
            scores = np.zeros((t, t))
            for i in range(t):
                for j in range(t):
                    r = j - i
                    rel = ek[hr, r + w] if abs(r) <= w else np.zeros(d)
                    scores[i, j] = q[bi, i, h] @ (k[bi, j, h] + rel) / np.sqrt(d)
                    if layer.proximal_bias:
                        scores[i, j] -= np.log1p(abs(r))
                    if mask[bi, i, 0] * mask[bi, j, 0] == 0:
                        scores[i, j] = -1e4
            p = np.exp(scores - scores.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            for i in range(t):
                for j in range(t):
                    r = j - i
                    rel = ev[hr, r + w] if abs(r) <= w else np.zeros(d)
                    out[bi, i, h] += p[i, j] * (v[bi, j, h] + rel)
    return conv(layer.conv_o, out.reshape(b, t, nh * d))


@pytest.mark.parametrize("heads_share,proximal_bias", [(True, False), (False, True)])
def test_attention_matches_direct_reference(heads_share, proximal_bias):
    keras.utils.set_random_seed(1)
    layer = RelativeMultiHeadAttention(
        8, 6, 2, window_size=2, heads_share=heads_share, proximal_bias=proximal_bias
    )
    layer.build((None, None, 8))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 7, 8)).astype("float32")
    mask = (np.arange(7)[None, :, None] < np.array([7, 4])[:, None, None]).astype("float32")
    got = layer(x, mask).numpy()
    want = _numpy_attention(layer, x, mask)
    valid = mask[..., 0] > 0
    np.testing.assert_allclose(got[valid], want[valid], rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("t", [1, 6])
def test_layer_shapes_zero_inputs(t):
    keras.utils.set_random_seed(0)
    x = np.zeros((2, t, 8), "float32")
    mask = np.ones((2, t, 1), "float32")
    layers = [
        (LayerNorm(8), (x,), 8),
        (ConvReluNorm(8, 12, 8, 5, 3, 0.5), (x, mask), 8),
        (RelativeMultiHeadAttention(8, 10, 2, window_size=4), (x, mask), 10),
        (RelativeMultiHeadAttention(8, 10, 4, window_size=None), (x, mask), 10),
        (FFN(8, 5, 16, 3), (x, mask), 5),
        (Encoder(8, 16, 2, 2, 3, 0.1, window_size=4), (x, mask), 8),
        (DurationPredictor(8, 16, 3, 0.1), (x, mask), 1),
    ]
    for layer, args, out_ch in layers:
        layer.build((None, None, 8))
        y = layer(*args, training=False) if len(args) > 1 else layer(*args)
        assert tuple(y.shape) == (2, t, out_ch), layer.name
        assert np.isfinite(y.numpy()).all(), layer.name
        assert layer.compute_output_shape((2, t, 8)) == (2, t, out_ch), layer.name


@pytest.mark.parametrize("window_size", [2, None])
@pytest.mark.parametrize("lengths,t", [([1, 1], 1), ([1, 4], 4), ([0, 3], 3)])
def test_text_encoder_shapes(window_size, lengths, t):
    enc = _small_encoder(window_size=window_size)
    x, x_lengths = _batch(np.random.default_rng(0), lengths, t)
    valid = np.arange(t) < np.c_[lengths]  # [2, t]
    results = {}
    # All-zero ids (the padding id everywhere) must give the same shapes, mask and
    # zeroed padding as real ids.
    for name, ids in (("zeros", np.zeros_like(x)), ("ids", x)):
        mu_x, logw, x_mask = (o.numpy() for o in enc(ids, x_lengths))
        assert mu_x.shape == (2, t, 6), name
        assert logw.shape == (2, t, 1), name
        assert x_mask.shape == (2, t, 1), name
        np.testing.assert_array_equal(x_mask[..., 0], valid, err_msg=name)
        assert np.isfinite(mu_x).all() and np.isfinite(logw).all(), name
        assert np.all(mu_x[~valid] == 0) and np.all(logw[~valid] == 0), name
        results[name] = mu_x, logw
    (mu_0, logw_0), (mu_x, logw) = results["zeros"], results["ids"]
    # Valid positions carry the token embeddings: zero ids and real ids must differ there
    # (an encoder that ignored its input would pass the checks above).
    assert np.abs(mu_0[valid] - mu_x[valid]).max() > 0.1
    assert np.abs(logw_0[valid] - logw[valid]).max() > 0.01
    # With identical (zero) ids, rows of equal length are computed alike.
    if lengths[0] == lengths[1]:
        np.testing.assert_allclose(mu_0[0], mu_0[1], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(logw_0[0], logw_0[1], rtol=1e-5, atol=1e-6)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="kernel_size"):
        TextEncoder(**{**SMALL, "kernel_size": 4})
    with pytest.raises(ValueError, match="divisible"):
        RelativeMultiHeadAttention(10, 10, 4)
    with pytest.raises(ValueError, match="n_spks"):
        TextEncoder(**SMALL, spk_cond=True)


# --------------------------------------------------------------------------- masking


def test_padding_never_changes_valid_outputs():
    enc = _small_encoder()
    rng = np.random.default_rng(3)
    x, x_lengths = _batch(rng, [5, 3, 1], 5)
    ref = [o.numpy() for o in enc(x, x_lengths)]
    mask = ref[2] > 0

    # More padding, and garbage token ids in the padded region.
    x_long = np.concatenate([x, rng.integers(1, 20, (3, 4)).astype("int32")], axis=1)
    x_long[1, 3:5] = [7, 9]
    x_long[2, 1:5] = [1, 2, 3, 4]
    got = [o.numpy() for o in enc(x_long, x_lengths)]
    for r, g in zip(ref[:2], got[:2], strict=True):
        np.testing.assert_allclose(g[:, :5][mask[..., 0]], r[mask[..., 0]], rtol=1e-5, atol=1e-6)
        assert np.all(g[~np.concatenate([mask, np.zeros((3, 4, 1), bool)], 1)[..., 0]] == 0)
    np.testing.assert_array_equal(got[2][:, :5], ref[2])

    # Each item alone (no batch-mates, no padding) gives the same valid outputs.
    for i, n in enumerate(x_lengths):
        alone = [o.numpy() for o in enc(x[i : i + 1, :n], x_lengths[i : i + 1])]
        np.testing.assert_allclose(alone[0][0], ref[0][i, :n], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(alone[1][0], ref[1][i, :n], rtol=1e-5, atol=1e-6)


def test_dropout_only_in_training():
    enc = _small_encoder()
    x, x_lengths = _batch(np.random.default_rng(4), [6, 4], 6)
    a = enc(x, x_lengths, training=False)[0].numpy()
    b = enc(x, x_lengths, training=False)[0].numpy()
    c = enc(x, x_lengths, training=True)[0].numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    assert np.all(c[1, 4:] == 0)


# --------------------------------------------------------------------------- config, graphs


def test_get_config_round_trip():
    enc = _small_encoder(window_size=3)
    clone = TextEncoder.from_config(enc.get_config())
    clone.build()
    assert len(clone.weights) == len(enc.weights)
    clone.set_weights(enc.get_weights())
    x, x_lengths = _batch(np.random.default_rng(5), [6, 2], 6)
    for a, b in zip(enc(x, x_lengths), clone(x, x_lengths), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(enc))
    assert isinstance(restored, TextEncoder) and restored.get_config() == enc.get_config()


def test_tf_function_and_xla_match_eager():
    enc = _small_encoder()
    x, x_lengths = _batch(np.random.default_rng(6), [7, 5, 1], 7)
    eager = [o.numpy() for o in enc(x, x_lengths, training=False)]

    @tf.function(jit_compile=True)
    def xla(x, x_lengths):
        return enc(x, x_lengths, training=False)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)
        ]
    )
    def dynamic(x, x_lengths):
        return enc(x, x_lengths, training=False)

    for fn in (xla, dynamic):
        for a, b in zip(eager, fn(x, x_lengths), strict=True):
            np.testing.assert_allclose(b.numpy(), a, rtol=1e-5, atol=1e-6)
    # The traced graph with a `None` time axis also serves other lengths.
    x2, l2 = _batch(np.random.default_rng(7), [3, 1], 3)
    for a, b in zip(enc(x2, l2, training=False), dynamic(x2, l2), strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
    assert dynamic.experimental_get_tracing_count() == 1


# --------------------------------------------------------------------------- gradients


def test_gradients():
    enc = _small_encoder()
    x, x_lengths = _batch(np.random.default_rng(8), [6, 3], 6)
    with tf.GradientTape(persistent=True) as tape:
        mu_x, logw, _ = enc(x, x_lengths, training=True)
        loss = tf.reduce_sum(tf.square(mu_x)) + tf.reduce_sum(tf.square(logw - 1.0))
        loss_w = tf.reduce_sum(tf.square(logw - 1.0))
    grads = tape.gradient(loss, enc.trainable_weights)
    for w, g in zip(enc.trainable_weights, grads, strict=True):
        assert g is not None, w.path
        assert np.isfinite(tf.convert_to_tensor(g).numpy()).all(), w.path

    # logw must not train anything but the duration predictor.
    grads_w = tape.gradient(loss_w, enc.trainable_weights)
    for w, g in zip(enc.trainable_weights, grads_w, strict=True):
        if w.path.startswith(f"{enc.name}/proj_w/"):
            assert g is not None and np.abs(tf.convert_to_tensor(g).numpy()).max() > 0, w.path
        else:
            assert g is None or np.all(tf.convert_to_tensor(g).numpy() == 0), w.path
    assert any(w.path.startswith(f"{enc.name}/prenet/") for w in enc.trainable_weights)


# --------------------------------------------------------------------------- speaker


def test_spk_cond():
    enc = _small_encoder(n_spks=3, spk_emb_dim=4, spk_cond=True)
    assert tuple(enc.proj_m.kernel.shape) == (1, 12, 6)
    assert tuple(enc.proj_w.conv_1.kernel.shape) == (3, 12, 8)
    assert tuple(enc.encoder.attn_layers[0].conv_q.kernel.shape) == (1, 12, 12)
    x, x_lengths = _batch(np.random.default_rng(9), [5, 2], 5)
    spk = np.random.default_rng(9).normal(size=(2, 4)).astype("float32")
    mu_a, logw_a, _ = enc(x, x_lengths, spk_emb=spk)
    mu_b, logw_b, _ = enc(x, x_lengths, spk_emb=spk[::-1].copy())
    assert tuple(mu_a.shape) == (2, 5, 6) and tuple(logw_a.shape) == (2, 5, 1)
    assert np.abs(mu_a.numpy() - mu_b.numpy()).max() > 1e-4
    assert np.all(mu_a.numpy()[1, 2:] == 0)
    with pytest.raises(ValueError, match="spk_emb"):
        enc(x, x_lengths)
