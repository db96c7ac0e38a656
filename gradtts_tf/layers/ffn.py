"""Position-wise convolutional feed-forward block of the Grad-TTS encoder."""

from __future__ import annotations

import keras
import tensorflow as tf

from gradtts_tf.layers.conv_relu_norm import check_odd_kernel


@keras.saving.register_keras_serializable(package="gradtts_tf")
class FFN(keras.layers.Layer):
    """conv -> ReLU -> dropout -> conv, each conv on the masked input, output masked.

    Both convolutions use ``kernel_size`` with "same" padding (PyTorch ``padding=k // 2``).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        filter_channels: Hidden channels.
        kernel_size: Odd kernel size of both convolutions.
        p_dropout: Dropout rate after the ReLU.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        filter_channels: int,
        kernel_size: int,
        p_dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_odd_kernel(kernel_size, "FFN")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.filter_channels = filter_channels
        self.kernel_size = kernel_size
        self.p_dropout = p_dropout

        self.conv_1 = keras.layers.Conv1D(
            filter_channels, kernel_size, padding="same", name="conv_1"
        )
        self.conv_2 = keras.layers.Conv1D(out_channels, kernel_size, padding="same", name="conv_2")
        self.drop = keras.layers.Dropout(p_dropout, name="drop")

    def build(self, input_shape=None):
        self.conv_1.build((None, None, self.in_channels))
        self.conv_2.build((None, None, self.filter_channels))

    def call(self, x, x_mask, training=None):
        """Applies the block.

        Args:
            x: ``[B, T, in_channels]``.
            x_mask: ``[B, T, 1]`` float.
            training: Enables dropout.

        Returns:
            ``[B, T, out_channels]``, zero on padded steps.
        """
        x_mask = tf.cast(x_mask, x.dtype)
        h = tf.nn.relu(self.conv_1(x * x_mask))
        h = self.drop(h, training=training)
        return self.conv_2(h * x_mask) * x_mask

    def compute_output_shape(self, x_shape, x_mask_shape=None):
        return (*x_shape[:-1], self.out_channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "in_channels": self.in_channels,
                "out_channels": self.out_channels,
                "filter_channels": self.filter_channels,
                "kernel_size": self.kernel_size,
                "p_dropout": self.p_dropout,
            }
        )
        return config
