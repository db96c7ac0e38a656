"""Every registered layer of `gradtts_tf.layers` honours the Keras layer contract.

One tiny case per layer (a few for layers with distinct modes) through `run_layer_test`:
config round trip, eager / graph / symbolic calls, a training step and `.keras`
save/load. `test_every_layer_has_a_case` fails for a new layer without a case here.
"""

from __future__ import annotations

import importlib
import pkgutil

import keras
import numpy as np
import pytest
from conftest import run_layer_test

import gradtts_tf.layers
from gradtts_tf.layers.conv_relu_norm import ConvReluNorm
from gradtts_tf.layers.diffusion import Diffusion
from gradtts_tf.layers.duration_predictor import DurationPredictor
from gradtts_tf.layers.ffn import FFN
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
)
from gradtts_tf.layers.layer_norm import LayerNorm
from gradtts_tf.layers.relative_attention import RelativeMultiHeadAttention
from gradtts_tf.layers.score_estimator import GradLogPEstimator2d
from gradtts_tf.layers.text_encoder import Encoder, TextEncoder
from gradtts_tf.layers.unet_blocks import (
    Block,
    Downsample,
    GroupNorm,
    LinearAttention,
    MishMLP,
    Residual,
    ResnetBlock,
    Rezero,
    SinusoidalPosEmb,
    Upsample,
)

_RNG = np.random.default_rng(0)

def _normal(*shape: int) -> np.ndarray:
    return _RNG.standard_normal(shape).astype("float32")


def _mask(lengths: list[int], frames: int, trailing: int = 1) -> np.ndarray:
    """``[B, frames]`` + ``trailing`` unit axes, 1 on each item's first ``lengths`` frames."""
    valid = np.arange(frames)[None, :] < np.asarray(lengths)[:, None]  # [B, frames]
    return valid.reshape(valid.shape + (1,) * trailing).astype("float32")


def _case(case_id: str, layer_cls, init_kwargs, input_data, marks=(), **options):
    return pytest.param(
        dict(layer_cls=layer_cls, init_kwargs=init_kwargs, input_data=input_data, **options),
        id=case_id,
        marks=marks,
    )


_TOKENS = {"x": np.array([[3, 1, 4, 1, 5], [9, 2, 6, 0, 0]], "int32"),
           "x_lengths": np.array([5, 3], "int32")}
_TEXT_ENCODER = dict(
    n_vocab=10, n_feats=3, n_channels=4, filter_channels=8, filter_channels_dp=4, n_heads=2,
    n_layers=1, kernel_size=3, p_dropout=0.1, window_size=2,
)
_TINY_MSD = dict(channels=[4] * 7, groups=[1, 2, 2, 2, 2, 2, 1])
# Softmax attention's key bias adds one constant to all scores of a query: no gradient.
_KEY_BIAS = ("conv_k/bias",)
_TINY_MPD = [2, 4, 4, 4, 4]

CASES = [
    # Text encoder.
    _case("LayerNorm", LayerNorm, {"channels": 4}, _normal(2, 5, 4),
          expected_output_shape=(2, 5, 4)),
    _case("ConvReluNorm", ConvReluNorm,
          dict(in_channels=4, hidden_channels=6, out_channels=4, kernel_size=3, n_layers=2,
               p_dropout=0.1),
          (_normal(2, 5, 4), _mask([5, 3], 5)),
          expected_output_shape=(2, 5, 4), perturb_zero_weights=True),
    _case("FFN", FFN, dict(in_channels=4, out_channels=3, filter_channels=8, kernel_size=3,
                           p_dropout=0.1),
          (_normal(2, 5, 4), _mask([5, 3], 5)),
          expected_output_shape=(2, 5, 3)),
    _case("DurationPredictor", DurationPredictor,
          dict(in_channels=4, filter_channels=6, kernel_size=3, p_dropout=0.1),
          (_normal(2, 5, 4), _mask([5, 3], 5)),
          expected_output_shape=(2, 5, 1)),
    _case("RelativeMultiHeadAttention", RelativeMultiHeadAttention,
          dict(channels=4, out_channels=6, n_heads=2, window_size=2, heads_share=False,
               proximal_bias=True),
          (_normal(2, 5, 4), _mask([5, 3], 5)),
          expected_output_shape=(2, 5, 6), no_gradient_weights=_KEY_BIAS),
    _case("Encoder", Encoder,
          dict(hidden_channels=4, filter_channels=8, n_heads=2, n_layers=1, kernel_size=3,
               p_dropout=0.1, window_size=2),
          (_normal(2, 5, 4), _mask([5, 3], 5)),
          expected_output_shape=(2, 5, 4), no_gradient_weights=_KEY_BIAS),
    _case("TextEncoder", TextEncoder, _TEXT_ENCODER, _TOKENS,
          expected_output_shape=((2, 5, 3), (2, 5, 1), (2, 5, 1)), perturb_zero_weights=True,
          no_gradient_weights=_KEY_BIAS),
    _case("TextEncoder-spk_cond", TextEncoder,
          {**_TEXT_ENCODER, "n_spks": 2, "spk_emb_dim": 2, "spk_cond": True},
          {**_TOKENS, "spk_emb": _normal(2, 2)},
          expected_output_shape=((2, 5, 3), (2, 5, 1), (2, 5, 1)),
          # The weights of the case above, wider: its training step (3 s) adds nothing.
          run_training_check=False),
    # U-Net blocks: [B, T, F, C] images, [B, T, 1, 1] masks.
    _case("GroupNorm", GroupNorm, {"groups": 2}, _normal(2, 4, 3, 4),
          expected_output_shape=(2, 4, 3, 4)),
    _case("Block", Block, dict(dim=4, dim_out=4, groups=2),
          (_normal(2, 4, 3, 4), _mask([4, 2], 4, trailing=2)),
          expected_output_shape=(2, 4, 3, 4)),
    _case("MishMLP", MishMLP, dict(in_dim=3, hidden_dim=6, out_dim=5), _normal(2, 3),
          expected_output_shape=(2, 5)),
    _case("ResnetBlock", ResnetBlock, dict(dim=4, dim_out=6, time_emb_dim=3, groups=2),
          (_normal(2, 4, 3, 4), _mask([4, 2], 4, trailing=2), _normal(2, 3)),
          expected_output_shape=(2, 4, 3, 6)),
    _case("LinearAttention", LinearAttention, dict(dim=4, heads=2, dim_head=3),
          _normal(2, 4, 3, 4), expected_output_shape=(2, 4, 3, 4)),
    _case("Rezero", Rezero, {"fn": LinearAttention(4, heads=2, dim_head=3)},
          _normal(2, 4, 3, 4), expected_output_shape=(2, 4, 3, 4), perturb_zero_weights=True),
    _case("Residual", Residual, {"fn": LinearAttention(4, heads=2, dim_head=3)},
          _normal(2, 4, 3, 4), expected_output_shape=(2, 4, 3, 4)),
    _case("Downsample", Downsample, {"dim": 4}, _normal(2, 5, 3, 4),
          expected_output_shape=(2, 3, 2, 4)),
    _case("Upsample", Upsample, {"dim": 4}, _normal(2, 3, 2, 4),
          expected_output_shape=(2, 6, 4, 4)),
    # No weights at all: nothing to train.
    _case("SinusoidalPosEmb", SinusoidalPosEmb, {"dim": 8},
          _RNG.uniform(0, 1, 3).astype("float32"),
          expected_output_shape=(3, 8), run_training_check=False),
    # Decoder. T and F are multiples of 2 ** (levels - 1).
    # Multi-speaker, one level (no down/up sampling: the training step's graph builds in
    # half the time). Diffusion (below) holds a single-speaker three-level estimator.
    _case("GradLogPEstimator2d", GradLogPEstimator2d,
          dict(dim=8, dim_mults=(1,), groups=4, n_spks=2, spk_emb_dim=3, n_feats=4),
          {"x": _normal(2, 4, 4), "mask": _mask([4, 2], 4), "mu": _normal(2, 4, 4),
           "t": _RNG.uniform(0, 1, 2).astype("float32"), "spk_emb": _normal(2, 3)},
          expected_output_shape=(2, 4, 4), perturb_zero_weights=True),
    # Calling `Diffusion` samples (reverse diffusion); it trains through `compute_loss`
    # (tests/layers/test_diffusion.py), and TensorFlow cannot differentiate the sampling loop: the
    # `tf.recompute_grad` of `Rezero` inside a while loop fails in graph mode. Two ODE
    # steps reach values ~30, where graph-mode rounding exceeds 1e-5 relative.
    _case("Diffusion", Diffusion, dict(n_feats=8, dim=8, seed=1),
          {"z": _normal(2, 8, 8), "mask": _mask([8, 5], 8), "mu": _normal(2, 8, 8)},
          call_kwargs={"n_timesteps": 2}, expected_output_shape=(2, 8, 8),
          run_training_check=False, rtol=1e-4, atol=1e-5),
    # HiFi-GAN generator.
    _case("NormConv1D-weight", NormConv1D, dict(filters=4, kernel_size=3, padding=1),
          _normal(2, 6, 3), expected_output_shape=(2, 6, 4)),
    _case("NormConv1D-spectral-strided-grouped", NormConv1D,
          dict(filters=6, kernel_size=5, strides=2, padding=2, groups=2, norm="spectral"),
          _normal(2, 7, 4), expected_output_shape=(2, 4, 6)),
    _case("NormConv1D-plain-dilated-4d", NormConv1D,
          dict(filters=4, kernel_size=3, dilation_rate=2, padding=2, norm="none"),
          _normal(2, 1, 6, 3), expected_output_shape=(2, 1, 6, 4)),
    _case("NormConv1DTranspose-weight", NormConv1DTranspose,
          dict(filters=3, kernel_size=4, strides=2, padding=1), _normal(2, 5, 4),
          expected_output_shape=(2, 10, 3)),
    _case("NormConv1DTranspose-plain-4d", NormConv1DTranspose,
          dict(filters=3, kernel_size=5, strides=3, padding=1, norm="none"),
          _normal(2, 1, 4, 2), expected_output_shape=(2, 1, 12, 3)),
    _case("ResBlock1", ResBlock1, dict(channels=4, kernel_size=3, dilations=(1, 3, 5)),
          (_normal(2, 6, 4), _mask([6, 4], 6)), expected_output_shape=(2, 6, 4)),
    _case("ResBlock2", ResBlock2,
          dict(channels=4, kernel_size=3, dilations=(1, 3), weight_norm=False),
          (_normal(2, 6, 4), _mask([6, 4], 6)), expected_output_shape=(2, 6, 4)),
    _case("HiFiGANGenerator", HiFiGANGenerator,
          dict(n_mels=4, resblock="1", upsample_rates=[2, 2], upsample_kernel_sizes=[4, 4],
               upsample_initial_channel=8, resblock_kernel_sizes=[3],
               resblock_dilation_sizes=[[1, 3, 5]]),
          {"mel": _normal(2, 5, 4), "lengths": np.array([5, 3], "int32")},
          expected_output_shape=(2, 20)),
    # HiFi-GAN discriminators: (logits, feature maps) per sub-discriminator.
    _case("DiscriminatorP", DiscriminatorP, dict(period=3, channels=_TINY_MPD),
          _normal(2, 40)),
    _case("MultiPeriodDiscriminator", MultiPeriodDiscriminator,
          dict(periods=[2], channels=_TINY_MPD), _normal(2, 40)),
    _case("DiscriminatorS", DiscriminatorS, {**_TINY_MSD, "norm": "spectral"}, _normal(2, 64)),
    # Ungrouped: grouped convolutions (one per group) are covered above and slow to trace.
    _case("MultiScaleDiscriminator", MultiScaleDiscriminator,
          dict(channels=[4] * 7, groups=[1] * 7, n_scales=2), _normal(2, 64)),
]


@pytest.mark.parametrize("case", CASES)
def test_layer_contract(case, tmp_path):
    run_layer_test(**case, tmp_path=tmp_path)


def _layer_classes() -> dict[type, bool]:
    """Every layer class defined in `gradtts_tf.layers` -> whether Keras has it registered."""
    classes = {}
    for info in pkgutil.iter_modules(gradtts_tf.layers.__path__):
        module = importlib.import_module(f"gradtts_tf.layers.{info.name}")
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, keras.layers.Layer)
                and obj.__module__ == module.__name__
            ):
                name = keras.saving.get_registered_name(obj)
                classes[obj] = keras.saving.get_registered_object(name) is obj
    return classes


def test_every_layer_has_a_case():
    classes = _layer_classes()
    unregistered = sorted(cls.__name__ for cls, registered in classes.items() if not registered)
    # Unregistered layers cannot be loaded from a `.keras` file.
    assert not unregistered, f"not registered for serialisation: {unregistered}"
    covered = {param.values[0]["layer_cls"] for param in CASES}
    missing = sorted(cls.__name__ for cls in classes if cls not in covered)
    assert not missing, f"layers without a case in CASES: {missing}"
    # The walk found the layer modules at all.
    assert {LayerNorm, GroupNorm, Diffusion, HiFiGANGenerator} <= set(classes)
