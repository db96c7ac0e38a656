"""Convolutional prenet of the Grad-TTS text encoder."""

from __future__ import annotations

import keras
import tensorflow as tf

from gradtts_tf.layers.layer_norm import LayerNorm


def check_odd_kernel(kernel_size: int, owner: str) -> None:
    """Raises if ``kernel_size`` is even.

    PyTorch ``padding=k // 2`` and Keras ``padding="same"`` agree only for odd kernels
    (an even kernel would also change the sequence length in the official code).
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"{owner}: kernel_size must be odd and positive, got {kernel_size}")


@keras.saving.register_keras_serializable(package="gradtts_tf")
class ConvReluNorm(keras.layers.Layer):
    """``n_layers`` x (conv -> LayerNorm -> ReLU -> dropout), then a residual 1x1 ``proj``.

    Order as the official ``ConvReluNorm``: each conv sees the masked input, the
    normalisation comes before the ReLU, and ``proj`` is zero-initialised so the block
    starts as the identity. Output is ``(x + proj(h)) * x_mask``.

    Args:
        in_channels: Input channels (must equal ``out_channels`` for the residual).
        hidden_channels: Channels of the convolutions.
        out_channels: Output channels.
        kernel_size: Odd convolution kernel size.
        n_layers: Number of conv blocks.
        p_dropout: Dropout rate after each ReLU.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        kernel_size: int,
        n_layers: int,
        p_dropout: float,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_odd_kernel(kernel_size, "ConvReluNorm")
        if n_layers < 1:
            raise ValueError(f"ConvReluNorm: n_layers must be >= 1, got {n_layers}")
        if in_channels != out_channels:
            raise ValueError(
                "ConvReluNorm: the residual needs in_channels == out_channels, "
                f"got {in_channels} and {out_channels}"
            )
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.n_layers = n_layers
        self.p_dropout = p_dropout

        self.conv_layers = [
            keras.layers.Conv1D(hidden_channels, kernel_size, padding="same", name=f"conv_{i}")
            for i in range(n_layers)
        ]
        self.norm_layers = [LayerNorm(hidden_channels, name=f"norm_{i}") for i in range(n_layers)]
        self.drop = keras.layers.Dropout(p_dropout, name="drop")
        self.proj = keras.layers.Conv1D(
            out_channels, 1, kernel_initializer="zeros", bias_initializer="zeros", name="proj"
        )

    def build(self, input_shape=None):
        channels = self.in_channels
        for conv, norm in zip(self.conv_layers, self.norm_layers, strict=True):
            conv.build((None, None, channels))
            norm.build((None, None, self.hidden_channels))
            channels = self.hidden_channels
        self.proj.build((None, None, self.hidden_channels))

    def call(self, x, x_mask, training=None):
        """Applies the prenet.

        Args:
            x: ``[B, T, in_channels]``.
            x_mask: ``[B, T, 1]`` float, 1 on valid steps.
            training: Enables dropout.

        Returns:
            ``[B, T, out_channels]``, zero on padded steps.
        """
        x_mask = tf.cast(x_mask, x.dtype)
        h = x
        for conv, norm in zip(self.conv_layers, self.norm_layers, strict=True):
            h = conv(h * x_mask)
            h = norm(h)
            h = tf.nn.relu(h)
            h = self.drop(h, training=training)
        return (x + self.proj(h)) * x_mask

    def compute_output_shape(self, x_shape, x_mask_shape=None):
        return (*x_shape[:-1], self.out_channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "in_channels": self.in_channels,
                "hidden_channels": self.hidden_channels,
                "out_channels": self.out_channels,
                "kernel_size": self.kernel_size,
                "n_layers": self.n_layers,
                "p_dropout": self.p_dropout,
            }
        )
        return config
