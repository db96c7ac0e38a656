"""Grad-TTS text encoder: embedding, prenet, relative-attention Transformer, heads.

Channels-last port of the official ``model/text_encoder.py`` (itself from glow-tts).

Weight initialisation: the embedding (normal, std ``n_channels**-0.5``), the relative
position embeddings (normal, std ``k_channels**-0.5``), Xavier-uniform q/k/v kernels,
the zero prenet ``proj`` and LayerNorm ones/zeros follow the official code. Every
other convolution uses the Keras defaults (Glorot-uniform kernel, zero bias) instead of
PyTorch's ``U(+-1/sqrt(fan_in))`` kernel and bias.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from gradtts_tf.layers.conv_relu_norm import ConvReluNorm, check_odd_kernel
from gradtts_tf.layers.duration_predictor import DurationPredictor
from gradtts_tf.layers.ffn import FFN
from gradtts_tf.layers.layer_norm import LayerNorm
from gradtts_tf.layers.relative_attention import RelativeMultiHeadAttention


@keras.saving.register_keras_serializable(package="gradtts_tf")
class Encoder(keras.layers.Layer):
    """Post-norm Transformer: ``n_layers`` x (attention + residual + LayerNorm, FFN +
    residual + LayerNorm), masked.

    Args:
        hidden_channels: Channels of the residual stream.
        filter_channels: Hidden channels of the FFNs.
        n_heads: Attention heads.
        n_layers: Number of blocks.
        kernel_size: Odd kernel size of the FFN convolutions.
        p_dropout: Dropout on attention weights, FFN hidden and both residual branches.
        window_size: Relative attention window (``None``: no relative positions).
    """

    def __init__(
        self,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int = 1,
        p_dropout: float = 0.0,
        window_size: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_channels = hidden_channels
        self.filter_channels = filter_channels
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.kernel_size = kernel_size
        self.p_dropout = p_dropout
        self.window_size = window_size

        self.drop = keras.layers.Dropout(p_dropout, name="drop")
        self.attn_layers = []
        self.norm_layers_1 = []
        self.ffn_layers = []
        self.norm_layers_2 = []
        for i in range(n_layers):
            self.attn_layers.append(
                RelativeMultiHeadAttention(
                    hidden_channels, hidden_channels, n_heads, window_size=window_size,
                    p_dropout=p_dropout, name=f"attn_{i}",
                )
            )
            self.norm_layers_1.append(LayerNorm(hidden_channels, name=f"norm_1_{i}"))
            self.ffn_layers.append(
                FFN(
                    hidden_channels, hidden_channels, filter_channels, kernel_size,
                    p_dropout=p_dropout, name=f"ffn_{i}",
                )
            )
            self.norm_layers_2.append(LayerNorm(hidden_channels, name=f"norm_2_{i}"))

    def build(self, input_shape=None):
        shape = (None, None, self.hidden_channels)
        for i in range(self.n_layers):
            self.attn_layers[i].build(shape)
            self.norm_layers_1[i].build(shape)
            self.ffn_layers[i].build(shape)
            self.norm_layers_2[i].build(shape)

    def call(self, x, x_mask, training=None):
        """Encodes a sequence.

        Args:
            x: ``[B, T, hidden_channels]``.
            x_mask: ``[B, T, 1]`` float.
            training: Enables dropout.

        Returns:
            ``[B, T, hidden_channels]``, zero on padded steps.
        """
        x_mask = tf.cast(x_mask, x.dtype)
        for i in range(self.n_layers):
            x = x * x_mask
            y = self.attn_layers[i](x, x_mask, training=training)
            y = self.drop(y, training=training)
            x = self.norm_layers_1[i](x + y)
            y = self.ffn_layers[i](x, x_mask, training=training)
            y = self.drop(y, training=training)
            x = self.norm_layers_2[i](x + y)
        return x * x_mask

    def compute_output_shape(self, x_shape, x_mask_shape=None):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_channels": self.hidden_channels,
                "filter_channels": self.filter_channels,
                "n_heads": self.n_heads,
                "n_layers": self.n_layers,
                "kernel_size": self.kernel_size,
                "p_dropout": self.p_dropout,
                "window_size": self.window_size,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="gradtts_tf")
class TextEncoder(keras.layers.Layer):
    """Token ids -> prior means ``mu_x``, log-durations ``logw`` and the text mask.

    ``emb * sqrt(n_channels)`` -> `ConvReluNorm` prenet (kernel 5, 3 layers, dropout 0.5)
    -> `Encoder` -> ``proj_m`` (1x1 to ``n_feats``); the `DurationPredictor` ``proj_w``
    reads the encoder output through ``stop_gradient`` so the duration loss does not
    train the encoder.

    With ``spk_cond=True`` (needs ``n_spks > 1``) the speaker embedding is broadcast over
    time and concatenated to the prenet output, so the Transformer, ``proj_m`` and
    ``proj_w`` all see ``n_channels + spk_emb_dim`` channels: the layout of the later
    official multi-speaker ``TextEncoder``. The default (``False``) reproduces the
    official code the reference checkpoints come from, whose encoder ignores the speaker.

    Args:
        n_vocab: Number of token ids.
        n_feats: Mel channels of ``mu_x``.
        n_channels: Embedding / prenet channels.
        filter_channels: FFN hidden channels.
        filter_channels_dp: Duration predictor hidden channels.
        n_heads: Attention heads.
        n_layers: Transformer blocks.
        kernel_size: FFN and duration predictor kernel size (odd).
        p_dropout: Transformer and duration predictor dropout.
        window_size: Relative attention window (``None``: no relative positions).
        spk_emb_dim: Speaker embedding size (used only with ``spk_cond``).
        n_spks: Number of speakers.
        spk_cond: Condition the encoder on the speaker embedding.
    """

    def __init__(
        self,
        n_vocab: int,
        n_feats: int,
        n_channels: int,
        filter_channels: int,
        filter_channels_dp: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        p_dropout: float,
        window_size: int | None = None,
        spk_emb_dim: int = 64,
        n_spks: int = 1,
        spk_cond: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_odd_kernel(kernel_size, "TextEncoder")
        if spk_cond and n_spks <= 1:
            raise ValueError("TextEncoder: spk_cond=True needs n_spks > 1")
        self.n_vocab = n_vocab
        self.n_feats = n_feats
        self.n_channels = n_channels
        self.filter_channels = filter_channels
        self.filter_channels_dp = filter_channels_dp
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.kernel_size = kernel_size
        self.p_dropout = p_dropout
        self.window_size = window_size
        self.spk_emb_dim = spk_emb_dim
        self.n_spks = n_spks
        self.spk_cond = spk_cond
        self.hidden_channels = n_channels + (spk_emb_dim if spk_cond else 0)

        self.emb = keras.layers.Embedding(
            n_vocab,
            n_channels,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=n_channels**-0.5),
            name="emb",
        )
        self.prenet = ConvReluNorm(
            n_channels, n_channels, n_channels, kernel_size=5, n_layers=3, p_dropout=0.5,
            name="prenet",
        )
        self.encoder = Encoder(
            self.hidden_channels, filter_channels, n_heads, n_layers, kernel_size, p_dropout,
            window_size=window_size, name="encoder",
        )
        self.proj_m = keras.layers.Conv1D(n_feats, 1, name="proj_m")
        self.proj_w = DurationPredictor(
            self.hidden_channels, filter_channels_dp, kernel_size, p_dropout, name="proj_w"
        )

    def build(self, input_shape=None):
        """Creates all weights from the constructor arguments (``input_shape`` is unused)."""
        self.emb.build((None, None))
        self.prenet.build((None, None, self.n_channels))
        self.encoder.build((None, None, self.hidden_channels))
        self.proj_m.build((None, None, self.hidden_channels))
        self.proj_w.build((None, None, self.hidden_channels))

    def call(self, x, x_lengths, spk_emb=None, training=None):
        """Encodes token ids.

        Args:
            x: Token ids ``[B, T_x]`` (int), anything past ``x_lengths`` is ignored.
            x_lengths: ``[B]`` int.
            spk_emb: ``[B, spk_emb_dim]`` speaker embeddings; required iff ``spk_cond``.
            training: Enables dropout.

        Returns:
            ``(mu_x [B, T_x, n_feats], logw [B, T_x, 1], x_mask [B, T_x, 1])``, the first
            two zero on padded steps.
        """
        if self.spk_cond and spk_emb is None:
            raise ValueError("TextEncoder was built with spk_cond=True: pass spk_emb")
        length = tf.shape(x)[1]
        h = self.emb(x) * math.sqrt(self.n_channels)  # [B, T, C]
        x_mask = tf.sequence_mask(tf.cast(x_lengths, "int32"), length, dtype=h.dtype)
        x_mask = x_mask[:, :, None]  # [B, T, 1]

        h = self.prenet(h, x_mask, training=training)
        if self.spk_cond:
            spk = tf.cast(spk_emb, h.dtype)[:, None, :]  # [B, 1, spk_emb_dim]
            spk = tf.tile(spk, [1, length, 1])  # [B, T, spk_emb_dim]
            h = tf.concat([h, spk], axis=-1)  # [B, T, n_channels + spk_emb_dim]
        h = self.encoder(h, x_mask, training=training)
        mu_x = self.proj_m(h) * x_mask
        logw = self.proj_w(tf.stop_gradient(h), x_mask, training=training)
        return mu_x, logw, x_mask

    def compute_output_shape(self, x_shape, x_lengths_shape=None, spk_emb_shape=None):
        batch, length = x_shape[0], x_shape[1]
        return (batch, length, self.n_feats), (batch, length, 1), (batch, length, 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "n_vocab": self.n_vocab,
                "n_feats": self.n_feats,
                "n_channels": self.n_channels,
                "filter_channels": self.filter_channels,
                "filter_channels_dp": self.filter_channels_dp,
                "n_heads": self.n_heads,
                "n_layers": self.n_layers,
                "kernel_size": self.kernel_size,
                "p_dropout": self.p_dropout,
                "window_size": self.window_size,
                "spk_emb_dim": self.spk_emb_dim,
                "n_spks": self.n_spks,
                "spk_cond": self.spk_cond,
            }
        )
        return config
