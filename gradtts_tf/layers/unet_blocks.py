"""Building blocks of the Grad-TTS U-Net score estimator (official ``model/diffusion.py``).

Layout: every 4-D tensor here is ``[B, T, F, C]`` -- width-major "image" with time as the
first spatial axis, mel bins as the second and channels last. The official (PyTorch) U-Net
works on ``[B, C, F, T]``; convolutions, GroupNorm and the linear attention treat both
spatial axes alike, so swapping them only changes how kernels are stored (see
``gradtts_tf.convert.decoder``). Masks are ``[B, T, 1, 1]`` (broadcast over F and C).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops


def _mish_factor(x):
    """``(tanh(softplus(x)), e^x, n)`` from one ``exp``: ``n = e^x (e^x + 2)``.

    ``tanh(log(1 + e)) = n / (n + 2)`` exactly; ``x`` is clipped at 20 inside the
    exponential, where the factor is 1 in float32 (and ``n`` stays finite).
    """
    e = ops.exp(ops.minimum(x, 20.0))
    n = e * (e + 2.0)
    return n / (n + 2.0), e, n


def _mish_derivative(x):
    """d mish(x) / dx = r + x (1 - r^2) sigmoid(x), with ``r = tanh(softplus(x))``.

    ``1 - r^2 = (1 - r)(1 + r) = 2 (1 + r) / (n + 2)``, exact near ``r = 1``.
    """
    r, e, n = _mish_factor(x)
    return r + x * (2.0 * (1.0 + r) / (n + 2.0)) * (e / (1.0 + e))


@ops.custom_gradient
def _mish_recomputed(x):
    """Mish whose gradient keeps only ``x`` for the backward pass."""

    def grad(*args, upstream=None):
        upstream = args[0] if upstream is None else upstream
        # Recomputed from x (cheap) rather than kept: a training step holds one tensor
        # per Mish instead of four (autodiff of this form) or three (the textbook form).
        return upstream * _mish_derivative(x)

    if keras.backend.standardize_dtype(x.dtype) == "bfloat16":
        # TensorFlow's bfloat16 elementwise kernels convert each operand: three ops
        # (the textbook form) beat the seven of `_mish_factor` for a bfloat16 decoder.
        return x * ops.tanh(ops.softplus(x)), grad
    return x * _mish_factor(x)[0], grad


def mish(x):
    """Mish activation ``x * tanh(softplus(x))`` (elementwise, any shape).

    In float32, TensorFlow's ``Softplus`` kernel is slow on CPU; here
    ``tanh(softplus(x))`` is ``n / (n + 2)`` with ``n = e^x (e^x + 2)``, one ``exp``
    and within 1e-6 relative of the textbook form, to speed up synthesis on CPU
    (BENCHMARKS.md). The backward pass recomputes the factor from ``x``
    and keeps only ``x`` (the textbook form's autodiff keeps three tensors per call).
    float16 keeps the textbook form without custom gradient (``e^20`` overflows it).
    """
    if keras.backend.standardize_dtype(x.dtype) == "float16":
        return x * ops.tanh(ops.softplus(x))
    return _mish_recomputed(x)


def _conv_shape(channels: int) -> tuple:
    """Build shape of a channels-last 2-D convolution input with unknown T and F."""
    return (None, None, None, channels)


def _group_mean(channel_mean, groups: int):
    """``[B, C]`` per-channel means -> ``[B, 1, 1, C]``, each channel its group's mean."""
    channels = channel_mean.shape[-1]
    per_group = channels // groups
    # Static reshapes and broadcasts only (no repeat/tile, no None-indexing): the
    # TFLite graph then stays in one XNNPACK partition around each GroupNorm.
    spread = ops.ones((1, 1, per_group), "float32")
    g = ops.reshape(channel_mean, (-1, groups, per_group))  # [B, G, C/G]
    g = ops.mean(g, axis=-1, keepdims=True) * spread  # [B, G, C/G]
    return ops.reshape(g, (-1, 1, 1, channels))  # [B, 1, 1, C]


def _group_statistics(x, groups: int, epsilon: float):
    """Group mean and ``1 / sqrt(variance + epsilon)`` of float32 ``[B, T, F, C]``.

    Two passes, as `keras.layers.GroupNormalization`; returns two ``[B, 1, 1, C]``.
    """
    mean = _group_mean(_mean_over_positions(x), groups)  # [B, 1, 1, C]
    variance = _group_mean(_mean_over_positions(ops.square(x - mean)), groups)
    return mean, ops.rsqrt(variance + epsilon)


def _mean_over_positions(x):
    """Per-channel mean of float32 ``[B, T, F, C]`` over ``T`` and ``F`` -> ``[B, C]``.

    Frequencies first, then frames. TensorFlow's CPU kernel reduces both axes at once
    by adding one position after another, so the padded frames of a short item in a
    batch (one equal value per channel, thousands of times) pile up rounding errors in
    one direction: the statistics then moved the normalised output by ~3e-5 relative
    against the official (cascade-summed, float64-accurate) GroupNorm. Two short
    reductions keep each running sum short; both are plain means over one static axis,
    which TFLite's XNNPACK delegate runs inside the surrounding partition.
    """
    per_frame = ops.mean(x, axis=2, keepdims=True)  # [B, T, 1, C]
    return ops.mean(per_frame, axis=(1, 2))  # [B, C]


def group_norm_mish(x, gamma, beta, groups: int, epsilon: float):
    """``mish(GroupNorm(x))`` whose backward pass keeps only ``x``.

    Autodiff of the two would keep three full-size tensors per call (``x``,
    ``x - mean`` and the normalised output); here the backward pass recomputes the
    normalised output and Mish's derivative from ``x`` and the ``[B, 1, 1, C]``
    statistics, in float32. The forward values are exactly those of `GroupNorm` then
    `mish` in ``x``'s dtype. The U-Net's 25 ``Block``s each call it, to lower a
    training step's peak memory (BENCHMARKS.md, "Training step").

    Args:
        x: ``[B, T, F, C]``.
        gamma: ``[C]`` scale.
        beta: ``[C]`` offset.
        groups: Groups (divides ``C``).
        epsilon: Added to the variance.

    Returns:
        ``[B, T, F, C]`` in ``x``'s dtype.
    """
    dtype = x.dtype

    @ops.custom_gradient
    def forward(x, gamma, beta):
        xf = ops.cast(x, "float32")
        mean, inv_std = _group_statistics(xf, groups, epsilon)  # [B, 1, 1, C] each
        scale = inv_std * gamma
        shift = beta - mean * scale

        def grad(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream
            xf = ops.cast(x, "float32")
            dy = ops.cast(upstream, "float32") * _mish_derivative(xf * scale + shift)
            x_hat = (xf - mean) * inv_std
            d_hat = dy * gamma
            # GroupNorm's input gradient: every position of a group shares its statistics.
            d_mean = _group_mean(ops.mean(d_hat, axis=(1, 2)), groups)
            d_corr = _group_mean(ops.mean(d_hat * x_hat, axis=(1, 2)), groups)
            dx = inv_std * (d_hat - d_mean - x_hat * d_corr)
            return (
                ops.cast(dx, dtype),
                ops.sum(dy * x_hat, axis=(0, 1, 2)),
                ops.sum(dy, axis=(0, 1, 2)),
            )

        return mish(ops.cast(xf * scale + shift, dtype)), grad

    return forward(x, ops.cast(gamma, "float32"), ops.cast(beta, "float32"))


@keras.saving.register_keras_serializable(package="gradtts_tf")
class GroupNorm(keras.layers.GroupNormalization):
    """GroupNorm over ``[B, T, F, C]`` (channels last), the weights and maths of
    `keras.layers.GroupNormalization` (two-pass mean and variance, float32 statistics).

    Keras reduces a ``[B, T, F, G, C/G]`` view over three non-adjacent axes, which
    TensorFlow runs slowly on CPU. Here each channel is first summed over ``T`` and
    ``F`` (``[B, C]``), then the channels of a group are combined: faster, and the same
    result to float32 rounding.
    """

    def call(self, inputs):
        """Normalises ``[B, T, F, C]`` per item and group; returns the same shape."""
        x = ops.cast(inputs, "float32")
        mean, scale = _group_statistics(x, self.groups, self.epsilon)  # [B, 1, 1, C] each
        if self.scale:
            scale = scale * ops.cast(self.gamma, "float32")
        shift = mean * scale
        shift = ops.cast(self.beta, "float32") - shift if self.center else -shift
        return ops.cast(x * scale + shift, self.compute_dtype)

    def call_mish(self, inputs):
        """``mish(self(inputs))`` through `group_norm_mish` (lighter backward pass)."""
        if not (self.scale and self.center):
            raise ValueError(f"{self.name}: call_mish needs scale=True and center=True")
        return group_norm_mish(
            ops.cast(inputs, self.compute_dtype), self.gamma, self.beta, self.groups, self.epsilon
        )


@keras.saving.register_keras_serializable(package="gradtts_tf")
class Block(keras.layers.Layer):
    """conv3x3 -> GroupNorm -> Mish on the masked input, output masked (official ``Block``).

    GroupNorm statistics include the padded frames (they hold the conv bias after the
    masked input), exactly as in the official model.

    Args:
        dim: Input channels.
        dim_out: Output channels (a multiple of ``groups``).
        groups: GroupNorm groups.
    """

    def __init__(self, dim: int, dim_out: int, groups: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.dim_out = dim_out
        self.groups = groups
        self.conv = keras.layers.Conv2D(
            dim_out, 3, padding="same", name="conv", dtype=self.dtype_policy
        )
        # torch.nn.GroupNorm's default eps.
        self.norm = GroupNorm(groups=groups, epsilon=1e-5, name="norm", dtype=self.dtype_policy)

    def build(self, input_shape=None):
        self.conv.build(_conv_shape(self.dim))
        self.norm.build(_conv_shape(self.dim_out))

    def call(self, x, mask):
        """Applies the block.

        Args:
            x: ``[B, T, F, dim]``.
            mask: ``[B, T, 1, 1]`` float.

        Returns:
            ``[B, T, F, dim_out]``, zero on padded frames.
        """
        mask = ops.cast(mask, x.dtype)
        return self.norm.call_mish(self.conv(x * mask)) * mask

    def compute_output_shape(self, x_shape, mask_shape=None):
        return (*x_shape[:-1], self.dim_out)

    def get_config(self):
        config = super().get_config()
        config.update({"dim": self.dim, "dim_out": self.dim_out, "groups": self.groups})
        return config


@keras.saving.register_keras_serializable(package="gradtts_tf")
class MishMLP(keras.layers.Layer):
    """Linear -> Mish -> Linear (the official time ``mlp`` and speaker ``spk_mlp``).

    Args:
        in_dim: Input features.
        hidden_dim: Hidden features.
        out_dim: Output features.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.in_dim = in_dim
        self.hidden_dim = hidden_dim
        self.out_dim = out_dim
        self.linear_in = keras.layers.Dense(hidden_dim, name="linear_in", dtype=self.dtype_policy)
        self.linear_out = keras.layers.Dense(out_dim, name="linear_out", dtype=self.dtype_policy)

    def build(self, input_shape=None):
        self.linear_in.build((None, self.in_dim))
        self.linear_out.build((None, self.hidden_dim))

    def call(self, x):
        """Maps ``[B, in_dim]`` to ``[B, out_dim]``."""
        return self.linear_out(mish(self.linear_in(x)))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.out_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"in_dim": self.in_dim, "hidden_dim": self.hidden_dim, "out_dim": self.out_dim}
        )
        return config


@keras.saving.register_keras_serializable(package="gradtts_tf")
class ResnetBlock(keras.layers.Layer):
    """Two ``Block``s with the time embedding added in between, plus a residual path.

    ``h = block1(x); h += Linear(Mish(time_emb)) per channel; h = block2(h);
    out = h + res_conv(x * mask)`` where ``res_conv`` is a 1x1 conv when
    ``dim != dim_out`` and the identity otherwise (official ``ResnetBlock``).
    The output is not masked (as official).

    Args:
        dim: Input channels.
        dim_out: Output channels.
        time_emb_dim: Features of the time embedding.
        groups: GroupNorm groups.
    """

    def __init__(self, dim: int, dim_out: int, time_emb_dim: int, groups: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.dim_out = dim_out
        self.time_emb_dim = time_emb_dim
        self.groups = groups
        self.mlp = keras.layers.Dense(dim_out, name="mlp", dtype=self.dtype_policy)
        self.block1 = Block(dim, dim_out, groups=groups, name="block1", dtype=self.dtype_policy)
        self.block2 = Block(dim_out, dim_out, groups=groups, name="block2", dtype=self.dtype_policy)
        if dim != dim_out:
            self.res_conv = keras.layers.Conv2D(
                dim_out, 1, name="res_conv", dtype=self.dtype_policy
            )
        else:
            self.res_conv = None

    def build(self, input_shape=None):
        self.mlp.build((None, self.time_emb_dim))
        self.block1.build(_conv_shape(self.dim))
        self.block2.build(_conv_shape(self.dim_out))
        if self.res_conv is not None:
            self.res_conv.build(_conv_shape(self.dim))

    def call(self, x, mask, time_emb):
        """Applies the block.

        Args:
            x: ``[B, T, F, dim]``.
            mask: ``[B, T, 1, 1]`` float.
            time_emb: ``[B, time_emb_dim]``.

        Returns:
            ``[B, T, F, dim_out]``.
        """
        mask = ops.cast(mask, x.dtype)
        h = self.block1(x, mask)
        t = self.mlp(mish(time_emb))  # [B, dim_out]
        h = h + ops.reshape(ops.cast(t, h.dtype), (-1, 1, 1, self.dim_out))  # [B, T, F, dim_out]
        h = self.block2(h, mask)
        res = x * mask
        if self.res_conv is not None:
            res = self.res_conv(res)
        return h + res

    def compute_output_shape(self, x_shape, mask_shape=None, time_emb_shape=None):
        return (*x_shape[:-1], self.dim_out)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "dim": self.dim,
                "dim_out": self.dim_out,
                "time_emb_dim": self.time_emb_dim,
                "groups": self.groups,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="gradtts_tf")
class LinearAttention(keras.layers.Layer):
    """Linear attention over all T x F positions (official ``LinearAttention``).

    Per head: ``k`` is softmaxed over positions, ``context = k^T v`` ``[D, D]`` and
    ``out = q context``; heads are concatenated and mixed by a 1x1 conv. Written with
    matmul/transpose (no einsum) and 4-D tensors only, for TFLite / TF.js.

    Args:
        dim: Input and output channels.
        heads: Attention heads.
        dim_head: Channels per head.
    """

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.heads = heads
        self.dim_head = dim_head
        hidden = heads * dim_head
        self.to_qkv = keras.layers.Conv2D(
            3 * hidden, 1, use_bias=False, name="to_qkv", dtype=self.dtype_policy
        )
        self.to_out = keras.layers.Conv2D(dim, 1, name="to_out", dtype=self.dtype_policy)

    def build(self, input_shape=None):
        self.to_qkv.build(_conv_shape(self.dim))
        self.to_out.build(_conv_shape(self.heads * self.dim_head))

    def _split_heads(self, x, batch):
        """``[B, T, F, H*D]`` -> ``[B, H, T*F, D]``."""
        x = ops.reshape(x, (batch, -1, self.heads, self.dim_head))  # [B, N, H, D]
        return ops.transpose(x, (0, 2, 1, 3))  # [B, H, N, D]

    def call(self, x):
        """Maps ``[B, T, F, dim]`` to ``[B, T, F, dim]`` (no masking, as official)."""
        shape = ops.shape(x)
        batch, n_f = shape[0], shape[2]
        # Channel order of to_qkv is (qkv, heads, dim_head), as the official rearrange.
        q, k, v = ops.split(self.to_qkv(x), 3, axis=-1)  # each [B, T, F, H*D]
        q = self._split_heads(q, batch)  # [B, H, N, D]
        k = self._split_heads(k, batch)  # [B, H, N, D]
        v = self._split_heads(v, batch)  # [B, H, N, D]
        k = ops.softmax(k, axis=2)
        context = ops.matmul(ops.transpose(k, (0, 1, 3, 2)), v)  # [B, H, D, D]
        out = ops.matmul(q, context)  # [B, H, N, D]
        out = ops.transpose(out, (0, 2, 1, 3))  # [B, N, H, D]
        # -1 for T: with static B and F (exported graphs) the shape is a constant.
        out = ops.reshape(out, (batch, -1, n_f, self.heads * self.dim_head))  # [B, T, F, H*D]
        return self.to_out(out)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"dim": self.dim, "heads": self.heads, "dim_head": self.dim_head})
        return config


@keras.saving.register_keras_serializable(package="gradtts_tf")
class Rezero(keras.layers.Layer):
    """``fn(x) * g`` with a learned scalar gate ``g`` initialised to 0 (official ``Rezero``).

    A wrapper layer: ``fn`` is a layer (serialised in ``get_config``, like Keras wrappers).

    Args:
        fn: The wrapped single-input layer.
    """

    def __init__(self, fn: keras.layers.Layer, **kwargs):
        super().__init__(**kwargs)
        self.fn = fn

    def build(self, input_shape=None):
        if not self.fn.built:
            self.fn.build(input_shape)
        self.g = self.add_weight(shape=(1,), initializer="zeros", name="g")

    def call(self, x):
        """Returns ``fn(x) * g``, same shape as ``fn(x)``.

        The backward pass recomputes ``fn(x) * g`` from ``x`` instead of keeping its
        intermediate tensors: the U-Net's linear attention makes several full-size
        copies (``q``, ``k``, ``v``, their transposes, the softmax); recomputing it
        trades a little of the step's time for a lower peak resident memory
        (BENCHMARKS.md, "Training step"). Values and gradients are unchanged.
        """

        def gated(x):
            y = self.fn(x)
            return y * ops.cast(self.g, y.dtype)

        return tf.recompute_grad(gated)(x)

    def compute_output_shape(self, input_shape):
        return self.fn.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"fn": keras.saving.serialize_keras_object(self.fn)})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["fn"] = keras.saving.deserialize_keras_object(config["fn"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="gradtts_tf")
class Residual(keras.layers.Layer):
    """``fn(x) + x`` (official ``Residual``); ``fn`` is a layer, serialised in the config.

    Args:
        fn: The wrapped single-input layer (output shape equal to its input shape).
    """

    def __init__(self, fn: keras.layers.Layer, **kwargs):
        super().__init__(**kwargs)
        self.fn = fn

    def build(self, input_shape=None):
        if not self.fn.built:
            self.fn.build(input_shape)

    def call(self, x):
        """Returns ``fn(x) + x``."""
        return self.fn(x) + x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"fn": keras.saving.serialize_keras_object(self.fn)})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["fn"] = keras.saving.deserialize_keras_object(config["fn"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="gradtts_tf")
class Downsample(keras.layers.Layer):
    """Conv 3x3, stride 2, zero padding 1 on both spatial axes (official ``Downsample``).

    Padding is explicit: Keras "same" with stride 2 pads only after (0/1) on even sizes,
    while PyTorch ``padding=1`` pads 1 on both sides.

    Args:
        dim: Input and output channels.
    """

    def __init__(self, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.conv = keras.layers.Conv2D(
            dim, 3, strides=2, padding="valid", name="conv", dtype=self.dtype_policy
        )

    def build(self, input_shape=None):
        self.conv.build(_conv_shape(self.dim))

    def call(self, x):
        """Maps ``[B, T, F, dim]`` to ``[B, ceil(T/2), ceil(F/2), dim]``."""
        x = ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))  # [B, T+2, F+2, dim]
        return self.conv(x)

    def compute_output_shape(self, input_shape):
        def half(n):
            return None if n is None else (n + 1) // 2

        return (input_shape[0], half(input_shape[1]), half(input_shape[2]), self.dim)

    def get_config(self):
        config = super().get_config()
        config.update({"dim": self.dim})
        return config


@keras.saving.register_keras_serializable(package="gradtts_tf")
class Upsample(keras.layers.Layer):
    """Transposed conv 4x4, stride 2, padding 1 (official ``Upsample``): doubles T and F.

    The weights are a Keras ``Conv2DTranspose(padding="same")``'s (kernel 4 / stride 2
    crops one row on each side of the full ``2n + 2`` output, which is exactly
    PyTorch's ``padding=1``; checked numerically against a direct implementation in
    ``tests/layers/test_diffusion.py``), but the call computes it in polyphase form: each of
    the 2 x 2 output phases is a 2 x 2 convolution of the input with every other kernel
    tap, so one ordinary convolution with ``4 * dim`` outputs and a depth-to-space
    give all four. Same numbers to float rounding, and no ``TRANSPOSE_CONV`` in TFLite,
    which LiteRT runs outside XNNPACK when the length is dynamic (several times slower).

    Args:
        dim: Input and output channels.
    """

    def __init__(self, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.conv = keras.layers.Conv2DTranspose(
            dim, 4, strides=2, padding="same", name="conv", dtype=self.dtype_policy
        )

    def build(self, input_shape=None):
        self.conv.build(_conv_shape(self.dim))

    def call(self, x):
        """Maps ``[B, T, F, dim]`` to ``[B, 2T, 2F, dim]``."""
        kernel = ops.cast(self.conv.kernel, x.dtype)  # [4, 4, out, in]: taps (a, b)
        # Tap a = 2 * i + r along T, b = 2 * j + c along F; phase (r, c), tap (i, j).
        kernel = ops.reshape(kernel, (2, 2, 2, 2, self.dim, self.dim))  # [i, r, j, c, out, in]
        kernel = ops.transpose(kernel, (0, 2, 5, 1, 3, 4))  # [i, j, in, r, c, out]
        # A convolution correlates: taps reversed.
        kernel = ops.reshape(kernel[::-1, ::-1], (2, 2, self.dim, 4 * self.dim))
        x = ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))  # [B, T + 2, F + 2, dim]
        z = ops.conv(x, kernel, strides=1, padding="valid")  # [B, T + 1, F + 1, 4 * dim]
        y = tf.nn.depth_to_space(z, 2)  # [B, 2T + 2, 2F + 2, dim]: phase (r, c) at (2h+r, 2w+c)
        y = y[:, 1:-1, 1:-1]  # [B, 2T, 2F, dim]: padding 1 cropped on each side
        return y + ops.cast(self.conv.bias, y.dtype)

    def compute_output_shape(self, input_shape):
        def double(n):
            return None if n is None else 2 * n

        return (input_shape[0], double(input_shape[1]), double(input_shape[2]), self.dim)

    def get_config(self):
        config = super().get_config()
        config.update({"dim": self.dim})
        return config


@keras.saving.register_keras_serializable(package="gradtts_tf")
class SinusoidalPosEmb(keras.layers.Layer):
    """Sinusoidal embedding of the diffusion time (official ``SinusoidalPosEmb``).

    ``emb = [sin(scale * t * w), cos(scale * t * w)]`` with
    ``w_i = exp(-i * log(10000) / (dim/2 - 1))``. Always computed in float32: with
    ``scale = 1000`` a float16 ``scale * t`` would be off by up to 0.5 rad, so this
    layer does not autocast its input (``autocast=False`` by default).

    Args:
        dim: Embedding size (even, >= 4).
    """

    def __init__(self, dim: int, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if dim % 2 or dim < 4:
            raise ValueError(f"SinusoidalPosEmb: dim must be even and >= 4, got {dim}")
        self.dim = dim

    def call(self, t, scale: float = 1000.0):
        """Embeds times.

        Args:
            t: ``[B]`` diffusion times.
            scale: Multiplier of ``t`` (the model's ``pe_scale``).

        Returns:
            ``[B, dim]`` float32.
        """
        half = self.dim // 2
        step = math.log(10000) / (half - 1)
        freqs = ops.exp(ops.arange(half, dtype="float32") * -step)  # [dim/2]
        # Same multiplication order as official: (scale * t) * w.
        arg = (scale * ops.cast(t, "float32"))[:, None] * freqs[None, :]  # [B, dim/2]
        return ops.concatenate([ops.sin(arg), ops.cos(arg)], axis=-1)  # [B, dim]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self):
        config = super().get_config()
        config.update({"dim": self.dim})
        return config
