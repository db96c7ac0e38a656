"""HiFi-GAN generator (Kong et al. 2020) in Keras, channels-last.

Structure and numbers follow the official ``jik876/hifi-gan`` ``models.py``:
``conv_pre`` (k=7) -> per upsampling stage [LeakyReLU(0.1) -> transposed conv
(stride ``u``, kernel ``k``, torch padding ``(k - u) // 2``) -> mean of the
multi-receptive-field ResBlocks] -> LeakyReLU(0.01) -> ``conv_post`` (k=7) -> tanh.

Weight normalisation: with ``weight_norm=True`` every convolution holds the
official parametrisation ``kernel_v`` / ``kernel_g`` (``w = g * v / ||v||``, the
norm taken per output channel of a convolution and per *input* channel of a
transposed convolution, exactly like ``torch.nn.utils.weight_norm(dim=0)`` on the
torch layouts ``[out, in, k]`` and ``[in, out, k]``). Training uses that form.
For inference `HiFiGANGenerator.fold_weight_norm` returns a copy with plain kernels
(``weight_norm=False``), which is also what a converted official checkpoint is.

Initialisation is torch's default (uniform ``+-1/sqrt(fan_in)`` for kernel and bias,
``g = ||v||``): in the official code ``init_weights`` runs *after* ``weight_norm`` and
only rewrites the derived ``weight`` tensor, which the next forward recomputes from
``weight_g``/``weight_v``, so it has no lasting effect.

Optional ``lengths`` (mel frames per item) make padded batches give exactly the
unbatched result: every activation past an item's valid length is zeroed after each
convolution, which is what the convolutions' own zero padding sees in an unbatched run.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

LRELU_SLOPE = 0.1
_NORMS = ("none", "weight", "spectral")


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    """Symmetric padding keeping the length of a stride-1 dilated convolution."""
    return (kernel_size * dilation - dilation) // 2


def _torch_uniform(bound: float) -> keras.initializers.Initializer:
    return keras.initializers.RandomUniform(-bound, bound)


def _length_mask(lengths: tf.Tensor, max_len: tf.Tensor, dtype) -> tf.Tensor:
    """``[B]`` lengths -> float mask ``[B, max_len, 1]``."""
    return tf.cast(tf.sequence_mask(lengths, max_len), dtype)[:, :, tf.newaxis]  # [B, T, 1]


def _conv_time(x, kernel, padding: int = 0, stride: int = 1, dilation: int = 1, groups: int = 1):
    """Convolution over the time axis (``-2``) of ``[B, T, C]`` or ``[B, 1, T, C]``.

    ``kernel`` is ``[k, in / groups, out]``; ``padding`` zeros are added on each side.
    """
    four_d = x.shape.rank == 4
    if padding:
        pads = [[0, 0]] * (x.shape.rank - 2) + [[padding, padding], [0, 0]]
        x = tf.pad(x, pads)  # [B, (1,) T + 2p, C]

    def conv(xg, kg):
        if four_d:
            return tf.nn.conv2d(xg, kg[None], strides=[1, stride], padding="VALID",
                                dilations=[1, dilation])  # [B, 1, T', out]
        return tf.nn.conv1d(xg, kg, stride=stride, padding="VALID", dilations=dilation)

    if groups == 1:
        return conv(x, kernel)
    # One convolution per group: TF's CPU kernels have no (or, with oneDNN, a
    # memory-corrupting) gradient for grouped convolutions.
    xs = tf.split(x, groups, axis=-1)  # groups x [B, (1,) T, in / groups]
    ks = tf.split(kernel, groups, axis=-1)  # groups x [k, in / g, out / g]
    return tf.concat([conv(xg, kg) for xg, kg in zip(xs, ks, strict=True)], axis=-1)


class _NormKernelMixin:
    """Kernel storage with optional weight or spectral normalisation.

    The kernel layout is ``[k, a, b]`` with the normalisation taken over axes 0 and 1
    (one norm per last-axis index), which matches torch's ``dim=0`` for both
    ``Conv1d`` (``[out, in, k]`` -> ours ``[k, in, out]``) and ``ConvTranspose1d``
    (``[in, out, k]`` -> ours ``[k, out, in]``).
    """

    def _add_kernel(self, shape: tuple[int, int, int], fan_in: int) -> None:
        bound = 1.0 / math.sqrt(fan_in)
        if self.norm == "weight":
            self.kernel_v = self.add_weight(
                name="kernel_v", shape=shape, initializer=_torch_uniform(bound)
            )

            def g_init(shape, dtype=None):
                return ops.sqrt(ops.sum(ops.square(self.kernel_v), axis=(0, 1)))

            self.kernel_g = self.add_weight(name="kernel_g", shape=(shape[-1],), initializer=g_init)
        else:
            self.kernel_raw = self.add_weight(
                name="kernel", shape=shape, initializer=_torch_uniform(bound)
            )
        if self.norm == "spectral":
            rows = shape[0] * shape[1]
            self.sn_u = self.add_weight(
                name="sn_u", shape=(shape[-1],), initializer="random_normal", trainable=False
            )
            self.sn_v = self.add_weight(
                name="sn_v", shape=(rows,), initializer="random_normal", trainable=False
            )
            self.sn_u.assign(self.sn_u / (ops.norm(self.sn_u) + 1e-12))
            self.sn_v.assign(self.sn_v / (ops.norm(self.sn_v) + 1e-12))
        self.bias = self.add_weight(
            name="bias", shape=(self.filters,), initializer=_torch_uniform(bound)
        )

    def compute_kernel(self, training: bool = False) -> tf.Tensor:
        """The effective kernel (weight/spectral normalisation applied)."""
        if self.norm == "weight":
            v = self.kernel_v
            norm = tf.sqrt(tf.reduce_sum(tf.square(v), axis=[0, 1], keepdims=True))  # [1, 1, b]
            return v * (self.kernel_g[tf.newaxis, tf.newaxis, :] / norm)
        w = self.kernel_raw
        if self.norm == "spectral":
            w_mat = tf.reshape(w, [-1, w.shape[-1]])  # [k * a, b]
            u, v = self.sn_u, self.sn_v
            if training:
                # One power iteration per training forward, as torch.nn.utils.spectral_norm.
                w_sg = tf.stop_gradient(w_mat)
                v_new = tf.linalg.matvec(w_sg, u)  # [k * a]
                v_new = v_new / tf.maximum(tf.norm(v_new), 1e-12)
                u_new = tf.linalg.matvec(w_sg, v_new, transpose_a=True)  # [b]
                u_new = u_new / tf.maximum(tf.norm(u_new), 1e-12)
                self.sn_u.assign(u_new)
                self.sn_v.assign(v_new)
                u, v = u_new, v_new
            w_v = tf.linalg.matvec(w_mat, tf.stop_gradient(v), transpose_a=True)  # [b]
            sigma = tf.reduce_sum(u * w_v)
            w = w / sigma
        return w

    @property
    def kernel(self) -> tf.Tensor:
        """The effective kernel in inference mode."""
        return self.compute_kernel(training=False)


@keras.saving.register_keras_serializable(package="gradtts_tf")
class NormConv1D(_NormKernelMixin, keras.layers.Layer):
    """1-D convolution with torch-style symmetric zero padding and optional normalisation.

    Args:
        filters: Output channels.
        kernel_size: Kernel width.
        strides: Stride.
        dilation_rate: Dilation.
        padding: Zeros added on each side (torch ``padding``).
        groups: Grouped convolution (input and output channels divisible by it).
        norm: ``"weight"`` (``kernel_v``/``kernel_g``), ``"spectral"`` or ``"none"``.
        in_channels: Input channels (for `build`).

    Shapes: ``[B, T, in] -> [B, (T + 2p - d(k - 1) - 1) // s + 1, filters]``; a
    ``[B, 1, T, in]`` input gives ``[B, 1, T', filters]`` (see `HiFiGANGenerator`).
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        strides: int = 1,
        dilation_rate: int = 1,
        padding: int = 0,
        groups: int = 1,
        norm: str = "weight",
        in_channels: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if norm not in _NORMS:
            raise ValueError(f"NormConv1D: norm must be one of {_NORMS}, got {norm!r}")
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.dilation_rate = dilation_rate
        self.padding = padding
        self.groups = groups
        self.norm = norm
        self.in_channels = in_channels

    def build(self, input_shape=None):
        in_ch = self.in_channels if self.in_channels is not None else input_shape[-1]
        if in_ch % self.groups or self.filters % self.groups:
            raise ValueError(
                f"NormConv1D {self.name}: channels {in_ch}->{self.filters} not divisible "
                f"by groups={self.groups}"
            )
        self.in_channels = int(in_ch)
        per_group = self.in_channels // self.groups
        self._add_kernel((self.kernel_size, per_group, self.filters), per_group * self.kernel_size)
        self.built = True

    def call(self, x, training=None):
        kernel = self.compute_kernel(bool(training))  # [k, in / groups, filters]
        y = _conv_time(x, kernel, self.padding, self.strides, self.dilation_rate, self.groups)
        return y + self.bias

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            dilation_rate=self.dilation_rate,
            padding=self.padding,
            groups=self.groups,
            norm=self.norm,
            in_channels=self.in_channels,
        )
        return config


@keras.saving.register_keras_serializable(package="gradtts_tf")
class NormConv1DTranspose(_NormKernelMixin, keras.layers.Layer):
    """Torch ``ConvTranspose1d(in, filters, k, stride, padding)`` with optional weight norm.

    Torch's definition: the full transposed convolution (``(T - 1) * stride + k``
    samples) with ``padding`` samples cropped from each end; with ``padding = (k -
    stride) // 2`` and ``k - stride`` even the output has exactly ``T * stride`` samples.
    It is computed in polyphase form: output sample ``q * stride + r`` is a plain
    ``ceil(k / stride)``-tap convolution of the input with the kernel taps ``r, r +
    stride, ...``, so one ordinary convolution with ``stride * filters`` outputs and a
    reshape give every phase at once. The same numbers as ``conv1d_transpose`` (to float
    rounding), and no ``TRANSPOSE_CONV`` op: TFLite runs that op outside XNNPACK when
    the length is dynamic, several times slower than this convolution.

    Kernel layout ``[k, filters, in]`` (``tf.nn.conv1d_transpose``'s); the weight-norm
    ``g`` has one entry per *input* channel, as torch's ``dim=0`` on ``[in, out, k]``.

    Shapes: ``[B, T, in] -> [B, (T - 1) * stride - 2 * padding + k, filters]``.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        strides: int,
        padding: int = 0,
        norm: str = "weight",
        in_channels: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if norm not in ("none", "weight"):
            raise ValueError(f"NormConv1DTranspose: norm must be 'weight' or 'none', got {norm!r}")
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.norm = norm
        self.in_channels = in_channels

    def build(self, input_shape=None):
        in_ch = self.in_channels if self.in_channels is not None else input_shape[-1]
        self.in_channels = int(in_ch)
        # torch computes fan_in from weight.size(1) * k = out_channels * k here.
        self._add_kernel((self.kernel_size, self.filters, self.in_channels),
                         self.filters * self.kernel_size)
        self.built = True

    def call(self, x, training=None):
        s, k, p = self.strides, self.kernel_size, self.padding
        taps = -(-k // s)  # kernel taps per phase
        # Phase blocks past the input's end needed to reach the last kept sample.
        extra = -(-(k - p) // s) - 1
        kernel = self.compute_kernel(bool(training))  # [k, filters, in]
        kernel = tf.pad(kernel, [[0, taps * s - k], [0, 0], [0, 0]])  # [taps * s, filters, in]
        kernel = tf.reshape(kernel, [taps, s, self.filters, self.in_channels])  # tap j = i * s + r
        kernel = tf.transpose(kernel, [0, 3, 1, 2])[::-1]  # [taps, in, s, filters], i reversed
        kernel = tf.reshape(kernel, [taps, self.in_channels, s * self.filters])
        lead = [[0, 0]] * (x.shape.rank - 2)  # batch (and the height-1 axis of 4-D input)
        x = tf.pad(x, lead + [[taps - 1, extra], [0, 0]])  # [B, (1,) T + taps - 1 + extra, in]
        y = _conv_time(x, kernel)  # [B, (1,) T + extra, s * filters]
        batch = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]
        shape = [batch, 1, -1, self.filters] if x.shape.rank == 4 else [batch, -1, self.filters]
        y = tf.reshape(y, shape)  # [B, (1,) (T + extra) * s, filters]
        # Crop p samples in front and what lies past (T - 1) * s + k - p at the end.
        end = (extra + 1) * s - k + p
        y = y[..., p : -end, :] if end else y[..., p:, :]  # [B, (1,) (T-1) * s + k - 2p, filters]
        return y + self.bias

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            norm=self.norm,
            in_channels=self.in_channels,
        )
        return config


def _masked(x: tf.Tensor, mask: tf.Tensor | None) -> tf.Tensor:
    return x if mask is None else x * mask


@keras.saving.register_keras_serializable(package="gradtts_tf")
class ResBlock1(keras.layers.Layer):
    """HiFi-GAN V1/V2 ResBlock: 3 x (LReLU -> dilated conv -> LReLU -> conv, residual).

    Args:
        channels: Channels (in = out).
        kernel_size: Kernel width of all six convolutions.
        dilations: Three dilations of the first conv of each pair.
        weight_norm: Weight-norm parametrisation (training) or plain kernels.

    Shapes: ``[B, T, channels] -> [B, T, channels]``.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        dilations: tuple[int, ...] | list[int] = (1, 3, 5),
        weight_norm: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channels = channels
        self.kernel_size = kernel_size
        self.dilations = list(dilations)
        self.weight_norm = weight_norm
        norm = "weight" if weight_norm else "none"
        self.convs1 = [
            NormConv1D(channels, kernel_size, dilation_rate=d, padding=get_padding(kernel_size, d),
                       norm=norm, in_channels=channels, name=f"convs1_{i}")
            for i, d in enumerate(self.dilations)
        ]
        self.convs2 = [
            NormConv1D(channels, kernel_size, padding=get_padding(kernel_size, 1), norm=norm,
                       in_channels=channels, name=f"convs2_{i}")
            for i in range(len(self.dilations))
        ]

    def build(self, input_shape=None):
        for conv in self.convs1 + self.convs2:
            conv.build((None, None, self.channels))
        self.built = True

    def conv_layers(self) -> list:
        """Convolutions in official ``state_dict`` order."""
        return self.convs1 + self.convs2

    def call(self, x, valid=None, training=None):
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            xt = tf.nn.leaky_relu(x, LRELU_SLOPE)
            xt = _masked(c1(xt, training=training), valid)
            xt = tf.nn.leaky_relu(xt, LRELU_SLOPE)
            xt = _masked(c2(xt, training=training), valid)
            x = xt + x
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            channels=self.channels,
            kernel_size=self.kernel_size,
            dilations=self.dilations,
            weight_norm=self.weight_norm,
        )
        return config


@keras.saving.register_keras_serializable(package="gradtts_tf")
class ResBlock2(keras.layers.Layer):
    """HiFi-GAN V3 ResBlock: 2 x (LReLU -> dilated conv, residual).

    Args:
        channels: Channels (in = out).
        kernel_size: Kernel width.
        dilations: Two dilations.
        weight_norm: Weight-norm parametrisation (training) or plain kernels.

    Shapes: ``[B, T, channels] -> [B, T, channels]``.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        dilations: tuple[int, ...] | list[int] = (1, 3),
        weight_norm: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channels = channels
        self.kernel_size = kernel_size
        self.dilations = list(dilations)
        self.weight_norm = weight_norm
        norm = "weight" if weight_norm else "none"
        self.convs = [
            NormConv1D(channels, kernel_size, dilation_rate=d, padding=get_padding(kernel_size, d),
                       norm=norm, in_channels=channels, name=f"convs_{i}")
            for i, d in enumerate(self.dilations)
        ]

    def build(self, input_shape=None):
        for conv in self.convs:
            conv.build((None, None, self.channels))
        self.built = True

    def conv_layers(self) -> list:
        """Convolutions in official ``state_dict`` order."""
        return list(self.convs)

    def call(self, x, valid=None, training=None):
        for c in self.convs:
            xt = tf.nn.leaky_relu(x, LRELU_SLOPE)
            xt = _masked(c(xt, training=training), valid)
            x = xt + x
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            channels=self.channels,
            kernel_size=self.kernel_size,
            dilations=self.dilations,
            weight_norm=self.weight_norm,
        )
        return config


@keras.saving.register_keras_serializable(package="gradtts_tf")
class HiFiGANGenerator(keras.Model):
    """HiFi-GAN generator: log-mel ``[B, T, n_mels]`` -> waveform ``[B, T * hop]`` (tanh).

    Args (the official JSON config keys, plus ``n_mels`` and ``weight_norm``):
        n_mels: Mel channels (official ``num_mels``; the official code hard-codes 80).
        resblock: ``"1"`` (V1/V2) or ``"2"`` (V3).
        upsample_rates: Stride of each transposed convolution; product = hop length.
        upsample_kernel_sizes: Kernel of each transposed convolution.
        upsample_initial_channel: Channels after ``conv_pre``; halved at every stage.
        resblock_kernel_sizes: Kernel of each parallel ResBlock.
        resblock_dilation_sizes: Dilations of each parallel ResBlock.
        weight_norm: ``True`` for the training parametrisation, ``False`` for plain
            (folded) kernels.
    """

    def __init__(
        self,
        n_mels: int = 80,
        resblock: str = "1",
        upsample_rates: list[int] | tuple[int, ...] = (8, 8, 2, 2),
        upsample_kernel_sizes: list[int] | tuple[int, ...] = (16, 16, 4, 4),
        upsample_initial_channel: int = 512,
        resblock_kernel_sizes: list[int] | tuple[int, ...] = (3, 7, 11),
        resblock_dilation_sizes: list | tuple = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        weight_norm: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        resblock = str(resblock)
        if resblock not in ("1", "2"):
            raise ValueError(f"HiFiGANGenerator: resblock must be '1' or '2', got {resblock!r}")
        if len(upsample_rates) != len(upsample_kernel_sizes):
            raise ValueError(
                "HiFiGANGenerator: upsample_rates/upsample_kernel_sizes lengths differ"
            )
        if len(resblock_kernel_sizes) != len(resblock_dilation_sizes):
            raise ValueError(
                "HiFiGANGenerator: resblock_kernel_sizes/resblock_dilation_sizes lengths differ"
            )
        for u, k in zip(upsample_rates, upsample_kernel_sizes, strict=True):
            if (k - u) % 2 or k < u:
                # Otherwise torch's padding (k - u) // 2 does not give exactly T * u samples.
                raise ValueError(
                    f"HiFiGANGenerator: upsample kernel {k} and rate {u} need k >= u, k - u even"
                )
        self.n_mels = n_mels
        self.resblock = resblock
        self.upsample_rates = [int(u) for u in upsample_rates]
        self.upsample_kernel_sizes = [int(k) for k in upsample_kernel_sizes]
        self.upsample_initial_channel = upsample_initial_channel
        self.resblock_kernel_sizes = [int(k) for k in resblock_kernel_sizes]
        self.resblock_dilation_sizes = [[int(d) for d in ds] for ds in resblock_dilation_sizes]
        self.weight_norm = weight_norm
        self.num_kernels = len(self.resblock_kernel_sizes)
        norm = "weight" if weight_norm else "none"
        block_cls = ResBlock1 if resblock == "1" else ResBlock2

        self.conv_pre = NormConv1D(upsample_initial_channel, 7, padding=3, norm=norm,
                                   in_channels=n_mels, name="conv_pre")
        self.ups = []
        self.resblocks = []
        ch = upsample_initial_channel
        for i, (u, k) in enumerate(zip(self.upsample_rates, self.upsample_kernel_sizes,
                                       strict=True)):
            self.ups.append(NormConv1DTranspose(ch // 2, k, u, padding=(k - u) // 2, norm=norm,
                                                in_channels=ch, name=f"ups_{i}"))
            ch = ch // 2
            for j, (rk, rd) in enumerate(zip(self.resblock_kernel_sizes,
                                             self.resblock_dilation_sizes, strict=True)):
                self.resblocks.append(block_cls(ch, rk, rd, weight_norm=weight_norm,
                                                name=f"resblocks_{i * self.num_kernels + j}"))
        self.conv_post = NormConv1D(1, 7, padding=3, norm=norm, in_channels=ch, name="conv_post")

    @property
    def hop_length(self) -> int:
        """Output samples per mel frame: ``prod(upsample_rates)``."""
        return int(math.prod(self.upsample_rates))

    @classmethod
    def from_vocoder_config(cls, vocoder, n_mels: int = 80, weight_norm: bool = True, **kwargs):
        """Builds (weights created) from a `gradtts_tf.config.VocoderConfig`."""
        gen = cls(
            n_mels=n_mels,
            resblock=vocoder.resblock,
            upsample_rates=vocoder.upsample_rates,
            upsample_kernel_sizes=vocoder.upsample_kernel_sizes,
            upsample_initial_channel=vocoder.upsample_initial_channel,
            resblock_kernel_sizes=vocoder.resblock_kernel_sizes,
            resblock_dilation_sizes=vocoder.resblock_dilation_sizes,
            weight_norm=weight_norm,
            **kwargs,
        )
        gen.build((None, None, n_mels))
        return gen

    def build(self, input_shape=None):
        self.conv_pre.build((None, None, self.n_mels))
        ch = self.upsample_initial_channel
        for i, up in enumerate(self.ups):
            up.build((None, None, ch))
            ch //= 2
            for block in self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]:
                block.build((None, None, ch))
        self.conv_post.build((None, None, ch))
        self.built = True

    def conv_layers(self) -> list:
        """Every convolution in official ``state_dict`` order (pre, ups, blocks, post)."""
        layers = [self.conv_pre, *self.ups]
        for block in self.resblocks:
            layers += block.conv_layers()
        return [*layers, self.conv_post]

    def call(self, mel, lengths=None, training=None):
        """Generates audio.

        Args:
            mel: float log-mel ``[B, T, n_mels]``.
            lengths: Optional int ``[B]`` valid frames per item; activations past them
                are zeroed so padding cannot leak into the valid samples.
            training: Keras training flag.

        Returns:
            float32 waveform ``[B, T * hop_length]`` in ``(-1, 1)``.
        """
        # Height-1 images inside ([B, 1, T, C], 2-D convolutions): TFLite then has no
        # expand / squeeze between layers, which with a dynamic length would split the
        # graph into one XNNPACK partition per convolution.
        mel = mel[:, None]  # [B, 1, T, n_mels]
        mask = None
        if lengths is not None:
            lengths = tf.cast(lengths, tf.int32)
            mask = _length_mask(lengths, tf.shape(mel)[2], mel.dtype)[:, None]  # [B, 1, T, 1]
            mel = mel * mask
        x = _masked(self.conv_pre(mel, training=training), mask)  # [B, 1, T, C0]
        for i, up in enumerate(self.ups):
            x = tf.nn.leaky_relu(x, LRELU_SLOPE)
            x = up(x, training=training)  # [B, 1, T * u_0..u_i, C_i]
            if mask is not None:
                lengths = lengths * self.upsample_rates[i]
                mask = _length_mask(lengths, tf.shape(x)[2], x.dtype)[:, None]  # [B, 1, T', 1]
                x = x * mask
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            xs = blocks[0](x, valid=mask, training=training)
            for block in blocks[1:]:
                xs = xs + block(x, valid=mask, training=training)
            x = xs / float(self.num_kernels)
        x = tf.nn.leaky_relu(x, 0.01)  # torch's default slope, as the official code
        x = self.conv_post(x, training=training)  # [B, 1, T * hop, 1]
        x = tf.tanh(x)
        x = _masked(x, mask)
        return x[:, 0, :, 0]  # [B, T * hop]

    def fold_weight_norm(self) -> HiFiGANGenerator:
        """Returns a plain-kernel copy (``weight_norm=False``) computing the same function."""
        folded = HiFiGANGenerator(**{**self._layout(), "weight_norm": False}, name=self.name)
        folded.build((None, None, self.n_mels))
        for src, dst in zip(self.conv_layers(), folded.conv_layers(), strict=True):
            dst.kernel_raw.assign(src.kernel)
            dst.bias.assign(src.bias)
        return folded

    def _layout(self) -> dict:
        return dict(
            n_mels=self.n_mels,
            resblock=self.resblock,
            upsample_rates=self.upsample_rates,
            upsample_kernel_sizes=self.upsample_kernel_sizes,
            upsample_initial_channel=self.upsample_initial_channel,
            resblock_kernel_sizes=self.resblock_kernel_sizes,
            resblock_dilation_sizes=self.resblock_dilation_sizes,
        )

    def get_config(self):
        config = super().get_config()
        config.update(self._layout(), weight_norm=self.weight_norm)
        return config
