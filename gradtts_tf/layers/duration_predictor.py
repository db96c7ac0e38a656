"""Log-duration predictor of the Grad-TTS text encoder."""

from __future__ import annotations

import keras
import tensorflow as tf

from gradtts_tf.layers.conv_relu_norm import check_odd_kernel
from gradtts_tf.layers.layer_norm import LayerNorm


@keras.saving.register_keras_serializable(package="gradtts_tf")
class DurationPredictor(keras.layers.Layer):
    """2 x (conv -> ReLU -> LayerNorm -> dropout), then a 1x1 projection to one channel.

    Note the official order here is ReLU *before* the norm (the prenet has it after).

    Args:
        in_channels: Input channels.
        filter_channels: Hidden channels.
        kernel_size: Odd kernel size of the two convolutions.
        p_dropout: Dropout rate.
    """

    def __init__(
        self, in_channels: int, filter_channels: int, kernel_size: int, p_dropout: float, **kwargs
    ):
        super().__init__(**kwargs)
        check_odd_kernel(kernel_size, "DurationPredictor")
        self.in_channels = in_channels
        self.filter_channels = filter_channels
        self.kernel_size = kernel_size
        self.p_dropout = p_dropout

        self.conv_1 = keras.layers.Conv1D(
            filter_channels, kernel_size, padding="same", name="conv_1"
        )
        self.norm_1 = LayerNorm(filter_channels, name="norm_1")
        self.conv_2 = keras.layers.Conv1D(
            filter_channels, kernel_size, padding="same", name="conv_2"
        )
        self.norm_2 = LayerNorm(filter_channels, name="norm_2")
        self.proj = keras.layers.Conv1D(1, 1, name="proj")
        self.drop = keras.layers.Dropout(p_dropout, name="drop")

    def build(self, input_shape=None):
        self.conv_1.build((None, None, self.in_channels))
        self.norm_1.build((None, None, self.filter_channels))
        self.conv_2.build((None, None, self.filter_channels))
        self.norm_2.build((None, None, self.filter_channels))
        self.proj.build((None, None, self.filter_channels))

    def call(self, x, x_mask, training=None):
        """Predicts log-durations.

        Args:
            x: ``[B, T, in_channels]``.
            x_mask: ``[B, T, 1]`` float.
            training: Enables dropout.

        Returns:
            ``logw`` ``[B, T, 1]``, zero on padded steps.
        """
        x_mask = tf.cast(x_mask, x.dtype)
        h = self.conv_1(x * x_mask)
        h = self.norm_1(tf.nn.relu(h))
        h = self.drop(h, training=training)
        h = self.conv_2(h * x_mask)
        h = self.norm_2(tf.nn.relu(h))
        h = self.drop(h, training=training)
        return self.proj(h * x_mask) * x_mask

    def compute_output_shape(self, x_shape, x_mask_shape=None):
        return (*x_shape[:-1], 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "in_channels": self.in_channels,
                "filter_channels": self.filter_channels,
                "kernel_size": self.kernel_size,
                "p_dropout": self.p_dropout,
            }
        )
        return config
