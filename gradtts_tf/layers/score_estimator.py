"""U-Net score estimator of the Grad-TTS decoder (official ``GradLogPEstimator2d``).

The mel-spectrogram is treated as a one-channel image. Internal layout is
``[B, T, F, C]`` (time, mel bins, channels; see ``gradtts_tf.layers.unet_blocks``).
T and F must both be multiples of ``2 ** (len(dim_mults) - 1)`` (4 for the default
``dim_mults``): the official model pads mel lengths with ``fix_len_compatibility``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from gradtts_tf.layers.unet_blocks import (
    Block,
    Downsample,
    LinearAttention,
    MishMLP,
    Residual,
    ResnetBlock,
    Rezero,
    SinusoidalPosEmb,
    Upsample,
)


def _attention(dim: int, name: str, dtype) -> Residual:
    """``Residual(Rezero(LinearAttention(dim)))`` with readable sublayer names."""
    attn = LinearAttention(dim, name="attn", dtype=dtype)
    return Residual(Rezero(attn, name="rezero", dtype=dtype), name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="gradtts_tf")
class GradLogPEstimator2d(keras.layers.Layer):
    """Noise/score estimator ``s(x_t, mu, t[, spk])`` of Grad-TTS: a 2-D U-Net.

    Input channels are ``mu``, ``x`` (and, with ``n_spks > 1``, the speaker MLP output
    broadcast over time). Downsampling masks take every second frame
    (``mask[:, ::2]``); the skip connection of the first level is unused, as official.

    Mixed precision: this layer does not autocast its inputs (``autocast=False`` by
    default) so the time embedding is computed from float32 ``t``; ``x``, ``mu`` and the
    mask are cast to the compute dtype here, and sublayers autocast as usual. The output
    is in the compute dtype.

    Args:
        dim: Base channels of the U-Net (``dec_dim``).
        dim_mults: Channel multipliers of the resolution levels.
        groups: GroupNorm groups of every block (the official class ignores its
            ``groups`` argument and always uses 8, the default here).
        n_spks: Number of speakers; ``> 1`` adds ``spk_mlp`` and a third input channel.
        spk_emb_dim: Speaker embedding size.
        n_feats: Mel bins.
        pe_scale: Scale of ``t`` in the sinusoidal time embedding.
    """

    def __init__(
        self,
        dim: int,
        dim_mults: Sequence[int] = (1, 2, 4),
        groups: int = 8,
        n_spks: int | None = 1,
        spk_emb_dim: int = 64,
        n_feats: int = 80,
        pe_scale: float = 1000,
        **kwargs,
    ):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.dim = dim
        self.dim_mults = tuple(dim_mults)
        self.groups = groups
        self.n_spks = 1 if n_spks is None else n_spks
        self.spk_emb_dim = spk_emb_dim
        self.n_feats = n_feats
        self.pe_scale = pe_scale
        policy = self.dtype_policy

        if self.n_spks > 1:
            self.spk_mlp = MishMLP(
                spk_emb_dim, 4 * spk_emb_dim, n_feats, name="spk_mlp", dtype=policy
            )
        else:
            self.spk_mlp = None
        self.time_pos_emb = SinusoidalPosEmb(dim, name="time_pos_emb", dtype=policy)
        self.mlp = MishMLP(dim, 4 * dim, dim, name="mlp", dtype=policy)

        dims = [2 + (1 if self.n_spks > 1 else 0), *(dim * m for m in self.dim_mults)]
        self._in_out = list(zip(dims[:-1], dims[1:], strict=True))
        n_levels = len(self._in_out)

        # Each level: [resnet1, resnet2, attention, downsample (None on the last level)].
        self.downs = []
        for i, (d_in, d_out) in enumerate(self._in_out):
            is_last = i >= n_levels - 1
            self.downs.append(
                [
                    ResnetBlock(
                        d_in, d_out, dim, groups=groups, name=f"downs_{i}_resnet1", dtype=policy
                    ),
                    ResnetBlock(
                        d_out, d_out, dim, groups=groups, name=f"downs_{i}_resnet2", dtype=policy
                    ),
                    _attention(d_out, name=f"downs_{i}_attn", dtype=policy),
                    None if is_last else Downsample(d_out, name=f"downs_{i}_down", dtype=policy),
                ]
            )

        mid = dims[-1]
        self.mid_block1 = ResnetBlock(mid, mid, dim, groups=groups, name="mid_block1", dtype=policy)
        self.mid_attn = _attention(mid, name="mid_attn", dtype=policy)
        self.mid_block2 = ResnetBlock(mid, mid, dim, groups=groups, name="mid_block2", dtype=policy)

        # Each level: [resnet1, resnet2, attention, upsample].
        self.ups = []
        for i, (d_in, d_out) in enumerate(reversed(self._in_out[1:])):
            self.ups.append(
                [
                    ResnetBlock(
                        2 * d_out, d_in, dim, groups=groups, name=f"ups_{i}_resnet1", dtype=policy
                    ),
                    ResnetBlock(
                        d_in, d_in, dim, groups=groups, name=f"ups_{i}_resnet2", dtype=policy
                    ),
                    _attention(d_in, name=f"ups_{i}_attn", dtype=policy),
                    Upsample(d_in, name=f"ups_{i}_up", dtype=policy),
                ]
            )
        self.final_block = Block(dim, dim, groups=groups, name="final_block", dtype=policy)
        self.final_conv = keras.layers.Conv2D(1, 1, name="final_conv", dtype=policy)

    def build(self, input_shape=None):
        def conv_shape(c):
            return (None, None, None, c)

        if self.spk_mlp is not None:
            self.spk_mlp.build((None, self.spk_emb_dim))
        self.time_pos_emb.build((None,))
        self.mlp.build((None, self.dim))
        for (d_in, d_out), (res1, res2, attn, down) in zip(self._in_out, self.downs, strict=True):
            res1.build(conv_shape(d_in))
            res2.build(conv_shape(d_out))
            attn.build(conv_shape(d_out))
            if down is not None:
                down.build(conv_shape(d_out))
        mid = self._in_out[-1][1]
        self.mid_block1.build(conv_shape(mid))
        self.mid_attn.build(conv_shape(mid))
        self.mid_block2.build(conv_shape(mid))
        ups_in_out = list(reversed(self._in_out[1:]))
        for (d_in, d_out), (res1, res2, attn, up) in zip(ups_in_out, self.ups, strict=True):
            res1.build(conv_shape(2 * d_out))
            res2.build(conv_shape(d_in))
            attn.build(conv_shape(d_in))
            up.build(conv_shape(d_in))
        self.final_block.build(conv_shape(self.dim))
        self.final_conv.build(conv_shape(self.dim))

    def call(self, x, mask, mu, t, spk_emb=None):
        """Estimates the noise-scaled score.

        Args:
            x: ``[B, T, n_feats]`` noisy mel ``x_t``.
            mask: ``[B, T, 1]`` float mel mask.
            mu: ``[B, T, n_feats]`` aligned encoder output.
            t: ``[B]`` diffusion times in ``[0, 1]``.
            spk_emb: ``[B, spk_emb_dim]`` speaker embedding vectors (required iff
                ``n_spks > 1``).

        Returns:
            ``[B, T, n_feats]`` in the compute dtype, zero on padded frames.
        """
        dtype = self.compute_dtype
        x = ops.cast(x, dtype)
        mu = ops.cast(mu, dtype)
        mask = ops.cast(mask, dtype)

        t_emb = self.mlp(self.time_pos_emb(t, scale=float(self.pe_scale)))  # [B, dim]

        if self.n_spks > 1:
            if spk_emb is None:
                raise ValueError("GradLogPEstimator2d: spk_emb is required when n_spks > 1")
            s = ops.cast(self.spk_mlp(spk_emb), dtype)  # [B, n_feats]
            s = ops.broadcast_to(s[:, None, :], ops.shape(x))  # [B, T, n_feats]
            h = ops.stack([mu, x, s], axis=-1)  # [B, T, n_feats, 3]
        else:
            h = ops.stack([mu, x], axis=-1)  # [B, T, n_feats, 2]
        mask = mask[:, :, :, None]  # [B, T, 1, 1]

        hiddens = []
        masks = [mask]
        for res1, res2, attn, down in self.downs:
            mask_down = masks[-1]
            h = res1(h, mask_down, t_emb)
            h = res2(h, mask_down, t_emb)
            h = attn(h)
            hiddens.append(h)
            h = h * mask_down
            if down is not None:
                h = down(h)
            masks.append(mask_down[:, ::2])  # [B, ceil(T/2), 1, 1]

        masks = masks[:-1]
        mask_mid = masks[-1]
        h = self.mid_block1(h, mask_mid, t_emb)
        h = self.mid_attn(h)
        h = self.mid_block2(h, mask_mid, t_emb)

        for res1, res2, attn, up in self.ups:
            mask_up = masks.pop()
            h = ops.concatenate([h, hiddens.pop()], axis=-1)  # [B, T', F', 2 * C]
            h = res1(h, mask_up, t_emb)
            h = res2(h, mask_up, t_emb)
            h = attn(h)
            h = up(h * mask_up)

        h = self.final_block(h, mask)
        out = self.final_conv(h * mask) * mask  # [B, T, n_feats, 1]
        return ops.squeeze(out, axis=-1)  # [B, T, n_feats]

    def compute_output_shape(self, x_shape, *args, **kwargs):
        return tuple(x_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "dim": self.dim,
                "dim_mults": list(self.dim_mults),
                "groups": self.groups,
                "n_spks": self.n_spks,
                "spk_emb_dim": self.spk_emb_dim,
                "n_feats": self.n_feats,
                "pe_scale": self.pe_scale,
            }
        )
        return config
