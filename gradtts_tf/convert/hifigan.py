"""Loads official HiFi-GAN (jik876/hifi-gan) generator checkpoints into `HiFiGANGenerator`.

An official ``generator_v1`` file is ``{"generator": state_dict}``; its convolutions
carry ``weight_g``/``weight_v`` (weight norm, ``dim=0``) or, after
``remove_weight_norm``, a plain ``weight``. Torch layouts ``Conv1d [out, in, k]`` and
``ConvTranspose1d [in, out, k]`` both become ours by reversing the axes
(``[k, in, out]`` and ``[k, out, in]``), and ``w = g * v / ||v||`` with the norm over
all axes but torch's axis 0.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from gradtts_tf.config import VocoderConfig, vocoder_config_from_official

__all__ = ["hifigan_from_official", "vocoder_config_from_official"]

def _torch_kernel(weights: Mapping[str, np.ndarray], prefix: str) -> tuple[np.ndarray, set[str]]:
    """Folded torch kernel of one convolution and the keys it used."""
    if prefix + "weight" in weights:
        return weights[prefix + "weight"], {prefix + "weight"}
    g_key, v_key = prefix + "weight_g", prefix + "weight_v"
    if g_key not in weights or v_key not in weights:
        raise ValueError(f"checkpoint has no {prefix}weight nor {prefix}weight_g/_v")
    g, v = weights[g_key].astype(np.float64), weights[v_key].astype(np.float64)
    norm = np.sqrt(np.sum(v * v, axis=tuple(range(1, v.ndim)), keepdims=True))  # [d0, 1, 1]
    return (g * v / norm).astype(np.float32), {g_key, v_key}


def load_generator_weights(generator, weights: Mapping[str, np.ndarray]) -> set[str]:
    """Assigns an official generator ``state_dict`` to a built `HiFiGANGenerator`.

    With ``generator.weight_norm`` the checkpoint's ``weight_g``/``weight_v`` are kept
    as ``kernel_g``/``kernel_v`` (for fine-tuning); otherwise kernels are folded.

    Returns:
        The checkpoint keys used.

    Raises:
        ValueError: On a missing key or a shape mismatch.
    """
    names = ["conv_pre"] + [f"ups.{i}" for i in range(len(generator.ups))]
    for n, block in enumerate(generator.resblocks):
        if generator.resblock == "1":
            names += [f"resblocks.{n}.convs1.{j}" for j in range(len(block.convs1))]
            names += [f"resblocks.{n}.convs2.{j}" for j in range(len(block.convs2))]
        else:
            names += [f"resblocks.{n}.convs.{j}" for j in range(len(block.convs))]
    names.append("conv_post")
    layers = generator.conv_layers()
    used: set[str] = set()
    for name, layer in zip(names, layers, strict=True):
        prefix = name + "."
        if generator.weight_norm and prefix + "weight_v" in weights:
            v = np.transpose(weights[prefix + "weight_v"], (2, 1, 0))  # [k, a, b]
            g = weights[prefix + "weight_g"].reshape(-1)  # [b]
            targets = [(layer.kernel_v, v, prefix + "weight_v"),
                       (layer.kernel_g, g, prefix + "weight_g")]
        else:
            kernel, keys = _torch_kernel(weights, prefix)
            kernel = np.transpose(kernel, (2, 1, 0))  # torch [o|i, i|o, k] -> [k, ., .]
            if generator.weight_norm:
                norm = np.sqrt(np.sum(kernel.astype(np.float64) ** 2, axis=(0, 1)))
                targets = [(layer.kernel_v, kernel, prefix + "weight"),
                           (layer.kernel_g, norm.astype(np.float32), prefix + "weight")]
            else:
                targets = [(layer.kernel_raw, kernel, prefix + "weight")]
            used |= keys
        bias_key = prefix + "bias"
        if bias_key not in weights:
            raise ValueError(f"checkpoint has no {bias_key}")
        targets.append((layer.bias, weights[bias_key], bias_key))
        for var, value, key in targets:
            if tuple(var.shape) != tuple(value.shape):
                raise ValueError(
                    f"{key}: checkpoint shape {tuple(value.shape)} (as ours) does not match "
                    f"{var.path} {tuple(var.shape)}: wrong HiFi-GAN config?"
                )
            var.assign(value.astype(np.float32))
            used.add(key)
    return used


def hifigan_from_official(
    state_dict: str | os.PathLike | Mapping[str, Any],
    config: str | os.PathLike | Mapping[str, Any] | VocoderConfig,
    n_mels: int | None = None,
    weight_norm: bool = False,
):
    """Returns a built `HiFiGANGenerator` holding an official generator checkpoint.

    Args:
        state_dict: ``{"generator": state_dict}`` or the bare ``state_dict``, as a
            ``.pt`` file (needs torch), an ``.npz`` of the same keys, or a mapping of
            arrays/tensors.
        config: The official HiFi-GAN JSON config (path or parsed dict) or our
            `VocoderConfig`.
        n_mels: Mel channels; default the config's ``num_mels``, else 80.
        weight_norm: ``False`` (default) folds weight norm into plain kernels for
            inference; ``True`` keeps ``g``/``v`` (to fine-tune).

    Raises:
        ValueError: If a key is missing, a shape differs, or keys are left unused.
    """
    from gradtts_tf.convert import load_state_dict
    from gradtts_tf.layers.hifigan import HiFiGANGenerator

    if isinstance(config, VocoderConfig):
        vcfg, audio = config, {}
    else:
        vcfg, audio = vocoder_config_from_official(config)
    n_mels = n_mels or audio.get("n_mels", 80)
    weights = load_state_dict(state_dict)
    generator = HiFiGANGenerator.from_vocoder_config(vcfg, n_mels=n_mels, weight_norm=weight_norm)
    used = load_generator_weights(generator, weights)
    left = sorted(set(weights) - used)
    if left:
        raise ValueError(
            f"{len(left)} checkpoint keys were not used (model/config mismatch?): {left[:10]}"
        )
    return generator
