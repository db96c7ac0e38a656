"""Loads the official PyTorch ``TextEncoder`` weights into `TextEncoder`.

Layout changes: ``Conv1d.weight`` ``[out, in, k]`` -> Keras ``Conv1D.kernel``
``[k, in, out]``; embeddings, biases, LayerNorm ``gamma``/``beta`` and the relative
position embeddings ``[H_rel, 2w + 1, D]`` keep their shapes.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np

from gradtts_tf.layers.layer_norm import LayerNorm
from gradtts_tf.layers.text_encoder import TextEncoder


class _Loader:
    """Assigns arrays from a state_dict, checking shapes and remembering used keys."""

    def __init__(self, state_dict: Mapping[str, np.ndarray]):
        self.state_dict = state_dict
        self.used: set[str] = set()

    def assign(self, variable, key: str, transpose: tuple[int, ...] | None = None) -> None:
        if key not in self.state_dict:
            raise KeyError(f"state_dict has no key {key!r} (needed for {variable.path})")
        value = np.asarray(self.state_dict[key])
        if transpose is not None:
            if value.ndim != len(transpose):
                raise ValueError(
                    f"{key}: expected a {len(transpose)}-d array, got shape {value.shape}"
                )
            value = np.transpose(value, transpose)
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"{key}: shape {tuple(value.shape)} (after layout conversion) does not match "
                f"{variable.path} {tuple(variable.shape)}"
            )
        variable.assign(value.astype(variable.dtype))
        self.used.add(key)

    def conv(self, layer: keras.layers.Conv1D, key: str) -> None:
        self.assign(layer.kernel, f"{key}.weight", transpose=(2, 1, 0))
        self.assign(layer.bias, f"{key}.bias")

    def norm(self, layer: LayerNorm, key: str) -> None:
        self.assign(layer.gamma, f"{key}.gamma")
        self.assign(layer.beta, f"{key}.beta")


def load_encoder_weights(
    encoder: TextEncoder, state_dict: Mapping[str, np.ndarray], prefix: str = "encoder."
) -> set[str]:
    """Copies the official text encoder weights into a built `TextEncoder`.

    Args:
        encoder: The target; must be built (``encoder.build()``) with the matching
            configuration.
        state_dict: Official ``state_dict`` as numpy arrays (e.g. a whole ``GradTTS``
            checkpoint).
        prefix: Key prefix of the text encoder inside ``state_dict``.

    Returns:
        The keys that were consumed (all start with ``prefix``).

    Raises:
        ValueError: If the encoder is not built or a shape does not match.
        KeyError: If a needed key is missing.
    """
    if not encoder.built:
        raise ValueError("load_encoder_weights: build the encoder first (encoder.build())")
    p = prefix
    loader = _Loader(state_dict)
    loader.assign(encoder.emb.embeddings, f"{p}emb.weight")

    prenet = encoder.prenet
    for i, (conv, norm) in enumerate(zip(prenet.conv_layers, prenet.norm_layers, strict=True)):
        loader.conv(conv, f"{p}prenet.conv_layers.{i}")
        loader.norm(norm, f"{p}prenet.norm_layers.{i}")
    loader.conv(prenet.proj, f"{p}prenet.proj")

    stack = encoder.encoder
    for i in range(stack.n_layers):
        key = f"{p}encoder.attn_layers.{i}"
        attn = stack.attn_layers[i]
        if attn.window_size is not None:
            loader.assign(attn.emb_rel_k, f"{key}.emb_rel_k")
            loader.assign(attn.emb_rel_v, f"{key}.emb_rel_v")
        for name in ("conv_q", "conv_k", "conv_v", "conv_o"):
            loader.conv(getattr(attn, name), f"{key}.{name}")
        loader.norm(stack.norm_layers_1[i], f"{p}encoder.norm_layers_1.{i}")
        loader.conv(stack.ffn_layers[i].conv_1, f"{p}encoder.ffn_layers.{i}.conv_1")
        loader.conv(stack.ffn_layers[i].conv_2, f"{p}encoder.ffn_layers.{i}.conv_2")
        loader.norm(stack.norm_layers_2[i], f"{p}encoder.norm_layers_2.{i}")

    loader.conv(encoder.proj_m, f"{p}proj_m")
    dp = encoder.proj_w
    loader.conv(dp.conv_1, f"{p}proj_w.conv_1")
    loader.norm(dp.norm_1, f"{p}proj_w.norm_1")
    loader.conv(dp.conv_2, f"{p}proj_w.conv_2")
    loader.norm(dp.norm_2, f"{p}proj_w.norm_2")
    loader.conv(dp.proj, f"{p}proj_w.proj")
    return loader.used
