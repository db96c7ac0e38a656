"""Channel LayerNorm of the Grad-TTS text encoder (glow-tts style, eps 1e-4)."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="gradtts_tf")
class LayerNorm(keras.layers.Layer):
    """Normalises each time step over its channels: ``(x - mean) / sqrt(var + eps) * gamma + beta``.

    Matches the official ``LayerNorm`` (biased variance, ``eps`` inside the square root),
    which differs from `keras.layers.LayerNormalization` only by the default ``eps``.

    Args:
        channels: Number of channels ``C`` (last axis).
        eps: Added to the variance.
    """

    def __init__(self, channels: int, eps: float = 1e-4, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.eps = eps

    def build(self, input_shape=None):
        self.gamma = self.add_weight(
            name="gamma", shape=(self.channels,), initializer="ones", trainable=True
        )
        self.beta = self.add_weight(
            name="beta", shape=(self.channels,), initializer="zeros", trainable=True
        )

    def call(self, x):
        """Normalises ``x``.

        Args:
            x: ``[..., C]``.

        Returns:
            ``[..., C]`` in the dtype of ``x``.
        """
        # Statistics in float32 so that mixed_float16 does not lose the small variances.
        x32 = tf.cast(x, "float32")
        mean = tf.reduce_mean(x32, axis=-1, keepdims=True)
        variance = tf.reduce_mean(tf.square(x32 - mean), axis=-1, keepdims=True)
        y = (x32 - mean) * tf.math.rsqrt(variance + self.eps)
        y = y * tf.cast(self.gamma, "float32") + tf.cast(self.beta, "float32")
        return tf.cast(y, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "eps": self.eps})
        return config
