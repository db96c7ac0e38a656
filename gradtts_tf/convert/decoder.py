"""Loads the official PyTorch Grad-TTS decoder weights into ``gradtts_tf`` ``Diffusion``.

Kernel layouts: the official U-Net runs on ``[B, C, F, T]``, ours on ``[B, T, F, C]``
(spatial axes swapped), so a torch ``Conv2d`` weight ``[out, in, kF, kT]`` becomes a Keras
kernel ``[kT, kF, in, out]`` and a torch ``ConvTranspose2d`` weight ``[in, out, kF, kT]``
becomes a Keras ``Conv2DTranspose`` kernel ``[kT, kF, out, in]`` -- both are
``transpose(3, 2, 1, 0)``. ``Linear`` weights ``[out, in]`` are transposed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import keras
import numpy as np

from gradtts_tf.layers.diffusion import Diffusion
from gradtts_tf.layers.score_estimator import GradLogPEstimator2d
from gradtts_tf.layers.unet_blocks import Block, MishMLP, Residual, ResnetBlock


class _Loader:
    """Assigns state-dict entries to variables, recording consumed keys."""

    def __init__(self, state_dict: Mapping[str, np.ndarray]):
        self.state_dict = state_dict
        self.consumed: set[str] = set()

    def assign(
        self,
        variable: keras.Variable,
        key: str,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        if key not in self.state_dict:
            raise KeyError(f"load_decoder_weights: missing key {key!r} in the state dict")
        value = np.asarray(self.state_dict[key], dtype=np.float32)
        if transform is not None:
            value = transform(value)
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"load_decoder_weights: shape mismatch for {key!r}: official "
                f"{tuple(np.shape(self.state_dict[key]))} maps to {tuple(value.shape)}, "
                f"but {variable.path} has {tuple(variable.shape)}"
            )
        variable.assign(value)
        self.consumed.add(key)

    def conv(self, layer: keras.layers.Layer, key: str) -> None:
        """``Conv2d`` / ``ConvTranspose2d`` at ``key`` (weight and optional bias)."""
        self.assign(layer.kernel, f"{key}.weight", lambda w: np.transpose(w, (3, 2, 1, 0)))
        if layer.use_bias:
            self.assign(layer.bias, f"{key}.bias")

    def linear(self, layer: keras.layers.Dense, key: str) -> None:
        self.assign(layer.kernel, f"{key}.weight", np.transpose)
        self.assign(layer.bias, f"{key}.bias")

    def mish_mlp(self, layer: MishMLP, key: str) -> None:
        # Official Sequential(Linear, Mish, Linear): indices 0 and 2.
        self.linear(layer.linear_in, f"{key}.0")
        self.linear(layer.linear_out, f"{key}.2")

    def block(self, layer: Block, key: str) -> None:
        # Official Sequential(Conv2d, GroupNorm, Mish): indices 0 and 1.
        self.conv(layer.conv, f"{key}.block.0")
        self.assign(layer.norm.gamma, f"{key}.block.1.weight")
        self.assign(layer.norm.beta, f"{key}.block.1.bias")

    def resnet(self, layer: ResnetBlock, key: str) -> None:
        # Official mlp is Sequential(Mish, Linear): the Linear is index 1.
        self.linear(layer.mlp, f"{key}.mlp.1")
        self.block(layer.block1, f"{key}.block1")
        self.block(layer.block2, f"{key}.block2")
        if layer.res_conv is not None:
            self.conv(layer.res_conv, f"{key}.res_conv")

    def attention(self, layer: Residual, key: str) -> None:
        # Residual(Rezero(LinearAttention)): fn.g and fn.fn.*.
        rezero = layer.fn
        self.assign(rezero.g, f"{key}.fn.g")
        self.conv(rezero.fn.to_qkv, f"{key}.fn.fn.to_qkv")
        self.conv(rezero.fn.to_out, f"{key}.fn.fn.to_out")

    def estimator(self, est: GradLogPEstimator2d, key: str) -> None:
        if est.spk_mlp is not None:
            self.mish_mlp(est.spk_mlp, f"{key}.spk_mlp")
        self.mish_mlp(est.mlp, f"{key}.mlp")
        for i, (res1, res2, attn, down) in enumerate(est.downs):
            self.resnet(res1, f"{key}.downs.{i}.0")
            self.resnet(res2, f"{key}.downs.{i}.1")
            self.attention(attn, f"{key}.downs.{i}.2")
            if down is not None:
                self.conv(down.conv, f"{key}.downs.{i}.3.conv")
        self.resnet(est.mid_block1, f"{key}.mid_block1")
        self.attention(est.mid_attn, f"{key}.mid_attn")
        self.resnet(est.mid_block2, f"{key}.mid_block2")
        for i, (res1, res2, attn, up) in enumerate(est.ups):
            self.resnet(res1, f"{key}.ups.{i}.0")
            self.resnet(res2, f"{key}.ups.{i}.1")
            self.attention(attn, f"{key}.ups.{i}.2")
            self.conv(up.conv, f"{key}.ups.{i}.3.conv")
        self.block(est.final_block, f"{key}.final_block")
        self.conv(est.final_conv, f"{key}.final_conv")


def load_decoder_weights(
    diffusion: Diffusion,
    state_dict: Mapping[str, np.ndarray],
    prefix: str = "decoder.",
    strict: bool = True,
) -> set[str]:
    """Copies the official decoder weights into ``diffusion`` (built first if needed).

    Args:
        diffusion: The Keras decoder; its constructor arguments must match the checkpoint.
        state_dict: Official ``GradTTS`` state dict as numpy arrays (keys like
            ``decoder.estimator.downs.0.0.block1.block.0.weight``).
        prefix: Key prefix of the decoder inside ``state_dict``.
        strict: Raise if some key under ``prefix`` was not used (e.g. ``spk_mlp`` weights
            given to a single-speaker model).

    Returns:
        The set of consumed keys.

    Raises:
        KeyError: A weight of the model is missing from ``state_dict`` (key named).
        ValueError: A shape mismatch (key and both shapes named), or unused keys when
            ``strict``.
    """
    if not diffusion.built:
        diffusion.build()
    loader = _Loader(state_dict)
    loader.estimator(diffusion.estimator, f"{prefix}estimator")
    if strict:
        unused = sorted(k for k in state_dict if k.startswith(prefix) and k not in loader.consumed)
        if unused:
            raise ValueError(
                f"load_decoder_weights: {len(unused)} unused key(s) under {prefix!r}, "
                f"e.g. {unused[:5]} (does the model configuration match the checkpoint?)"
            )
    return loader.consumed
