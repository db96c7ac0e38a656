"""HiFi-GAN discriminators: multi-period (MPD) and multi-scale (MSD), channels-last.

As the official ``models.py``: every convolution is followed by LeakyReLU(0.1) and
contributes a feature map; the last (``conv_post``) gives the logits. MPD
sub-discriminators are weight-normalised, MSD's first one is spectrally normalised
and the other two (on 2x and 4x average-pooled audio) weight-normalised.

The official ``DiscriminatorP`` reshapes audio to ``[B, 1, T / p, p]`` and runs 2-D
convolutions with ``(k, 1)`` kernels, i.e. independent 1-D convolutions along each of
the ``p`` phase columns. Here each column is folded into the batch
(``[B * p, T / p, 1]``) and 1-D convolutions are used: same numbers, and a torch
``Conv2d`` weight ``[out, in, k, 1]`` maps to our ``[k, in, out]``. Feature maps are
therefore ``[B * p, T_l, C_l]`` and logits ``[B, p * T_L]`` (torch flattens in
another order; the losses only take means, so they are unaffected).

Channel widths are constructor arguments (defaults: official) so tests and small
CPU runs can shrink the discriminators.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from gradtts_tf.layers.hifigan import LRELU_SLOPE, NormConv1D, get_padding

MPD_CHANNELS = (32, 128, 512, 1024, 1024)
MPD_PERIODS = (2, 3, 5, 7, 11)
MSD_CHANNELS = (128, 128, 256, 512, 1024, 1024, 1024)
MSD_GROUPS = (1, 4, 16, 16, 16, 16, 1)
_MSD_KERNELS = (15, 41, 41, 41, 41, 41, 5)
_MSD_STRIDES = (1, 2, 2, 4, 4, 1, 1)


@keras.saving.register_keras_serializable(package="gradtts_tf")
class DiscriminatorP(keras.layers.Layer):
    """One period sub-discriminator of the MPD.

    Args:
        period: The period ``p``.
        channels: Output channels of the five convolutions (official 32..1024).
        kernel_size: Kernel along time (official 5).
        stride: Stride of the first four convolutions (official 3).
        norm: ``"weight"`` or ``"spectral"``.

    Shapes: audio ``[B, T]`` -> (logits ``[B, p * T_L]``, list of feature maps
    ``[B * p, T_l, C_l]``).
    """

    def __init__(
        self,
        period: int,
        channels: tuple[int, ...] | list[int] = MPD_CHANNELS,
        kernel_size: int = 5,
        stride: int = 3,
        norm: str = "weight",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.period = period
        self.channels = [int(c) for c in channels]
        self.kernel_size = kernel_size
        self.stride = stride
        self.norm = norm
        n = len(self.channels)
        in_ch = 1
        self.convs = []
        for i, ch in enumerate(self.channels):
            # The official last conv has stride 1 and padding 2 (= get_padding(5, 1)).
            self.convs.append(
                NormConv1D(ch, kernel_size, strides=stride if i < n - 1 else 1,
                           padding=get_padding(5, 1), norm=norm, in_channels=in_ch,
                           name=f"convs_{i}")
            )
            in_ch = ch
        self.conv_post = NormConv1D(1, 3, padding=1, norm=norm, in_channels=in_ch,
                                    name="conv_post")

    def build(self, input_shape=None):
        in_ch = 1
        for conv in self.convs:
            conv.build((None, None, in_ch))
            in_ch = conv.filters
        self.conv_post.build((None, None, in_ch))
        self.built = True

    def conv_layers(self) -> list:
        """Convolutions in official ``state_dict`` order."""
        return [*self.convs, self.conv_post]

    def call(self, audio, training=None):
        batch = tf.shape(audio)[0]
        length = tf.shape(audio)[1]
        p = self.period
        n_pad = (p - length % p) % p
        x = tf.pad(audio, [[0, 0], [0, n_pad]], mode="REFLECT")  # [B, T']
        frames = (length + n_pad) // p
        x = tf.reshape(x, [batch, frames, p])  # [B, T' / p, p]
        x = tf.transpose(x, [0, 2, 1])  # [B, p, T' / p]
        x = tf.reshape(x, [batch * p, frames, 1])  # [B * p, T' / p, 1]
        fmap = []
        for conv in self.convs:
            x = tf.nn.leaky_relu(conv(x, training=training), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x, training=training)  # [B * p, T_L, 1]
        fmap.append(x)
        logits = tf.reshape(x, [batch, -1])  # [B, p * T_L]
        return logits, fmap

    def get_config(self):
        config = super().get_config()
        config.update(
            period=self.period,
            channels=self.channels,
            kernel_size=self.kernel_size,
            stride=self.stride,
            norm=self.norm,
        )
        return config


@keras.saving.register_keras_serializable(package="gradtts_tf")
class MultiPeriodDiscriminator(keras.layers.Layer):
    """MPD: one `DiscriminatorP` per period (official periods 2, 3, 5, 7, 11).

    Shapes: audio ``[B, T]`` -> (list of logits, list of lists of feature maps).
    """

    def __init__(
        self,
        periods: tuple[int, ...] | list[int] = MPD_PERIODS,
        channels: tuple[int, ...] | list[int] = MPD_CHANNELS,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.periods = [int(p) for p in periods]
        self.channels = [int(c) for c in channels]
        self.discriminators = [
            DiscriminatorP(p, self.channels, name=f"discriminators_{i}")
            for i, p in enumerate(self.periods)
        ]

    def build(self, input_shape=None):
        for d in self.discriminators:
            d.build((None, None))
        self.built = True

    def call(self, audio, training=None):
        outputs = [d(audio, training=training) for d in self.discriminators]
        return [o[0] for o in outputs], [o[1] for o in outputs]

    def get_config(self):
        config = super().get_config()
        config.update(periods=self.periods, channels=self.channels)
        return config


@keras.saving.register_keras_serializable(package="gradtts_tf")
class DiscriminatorS(keras.layers.Layer):
    """One scale sub-discriminator of the MSD (grouped strided 1-D convolutions).

    Args:
        channels: Output channels of the seven convolutions (official 128..1024).
        groups: Groups of each convolution (official 1, 4, 16, 16, 16, 16, 1).
        norm: ``"weight"`` or ``"spectral"``.

    Shapes: audio ``[B, T]`` -> (logits ``[B, T_L]``, feature maps ``[B, T_l, C_l]``).
    """

    def __init__(
        self,
        channels: tuple[int, ...] | list[int] = MSD_CHANNELS,
        groups: tuple[int, ...] | list[int] = MSD_GROUPS,
        norm: str = "weight",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if len(channels) != len(_MSD_KERNELS) or len(groups) != len(_MSD_KERNELS):
            raise ValueError(
                f"DiscriminatorS: channels and groups need {len(_MSD_KERNELS)} entries"
            )
        self.channels = [int(c) for c in channels]
        self.groups = [int(g) for g in groups]
        self.norm = norm
        in_ch = 1
        self.convs = []
        for i, (ch, k, s, g) in enumerate(
            zip(self.channels, _MSD_KERNELS, _MSD_STRIDES, self.groups, strict=True)
        ):
            self.convs.append(
                NormConv1D(ch, k, strides=s, padding=(k - 1) // 2, groups=g, norm=norm,
                           in_channels=in_ch, name=f"convs_{i}")
            )
            in_ch = ch
        self.conv_post = NormConv1D(1, 3, padding=1, norm=norm, in_channels=in_ch,
                                    name="conv_post")

    def build(self, input_shape=None):
        in_ch = 1
        for conv in self.convs:
            conv.build((None, None, in_ch))
            in_ch = conv.filters
        self.conv_post.build((None, None, in_ch))
        self.built = True

    def conv_layers(self) -> list:
        """Convolutions in official ``state_dict`` order."""
        return [*self.convs, self.conv_post]

    def call(self, audio, training=None):
        x = audio[:, :, tf.newaxis]  # [B, T, 1]
        fmap = []
        for conv in self.convs:
            x = tf.nn.leaky_relu(conv(x, training=training), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x, training=training)  # [B, T_L, 1]
        fmap.append(x)
        return x[:, :, 0], fmap  # [B, T_L]

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, groups=self.groups, norm=self.norm)
        return config


def _avg_pool(audio: tf.Tensor) -> tf.Tensor:
    """Torch ``AvgPool1d(4, 2, padding=2)`` (zeros counted): ``[B, T] -> [B, T // 2 + 1]``."""
    x = tf.pad(audio, [[0, 0], [2, 2]])[:, :, tf.newaxis]  # [B, T + 4, 1]
    return tf.nn.avg_pool1d(x, ksize=4, strides=2, padding="VALID")[:, :, 0]  # [B, T // 2 + 1]


@keras.saving.register_keras_serializable(package="gradtts_tf")
class MultiScaleDiscriminator(keras.layers.Layer):
    """MSD: `DiscriminatorS` on raw, 2x- and 4x-pooled audio (first one spectral-norm).

    Shapes: audio ``[B, T]`` -> (list of logits, list of lists of feature maps).
    """

    def __init__(
        self,
        channels: tuple[int, ...] | list[int] = MSD_CHANNELS,
        groups: tuple[int, ...] | list[int] = MSD_GROUPS,
        n_scales: int = 3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channels = [int(c) for c in channels]
        self.groups = [int(g) for g in groups]
        self.n_scales = n_scales
        self.discriminators = [
            DiscriminatorS(self.channels, self.groups, norm="spectral" if i == 0 else "weight",
                           name=f"discriminators_{i}")
            for i in range(n_scales)
        ]

    def build(self, input_shape=None):
        for d in self.discriminators:
            d.build((None, None))
        self.built = True

    def call(self, audio, training=None):
        logits, fmaps = [], []
        x = audio
        for i, d in enumerate(self.discriminators):
            if i:
                x = _avg_pool(x)
            out, fmap = d(x, training=training)
            logits.append(out)
            fmaps.append(fmap)
        return logits, fmaps

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, groups=self.groups, n_scales=self.n_scales)
        return config
