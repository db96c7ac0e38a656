"""Multi-head self-attention with windowed relative position embeddings (Shaw et al. 2018).

Follows the glow-tts / Grad-TTS ``MultiHeadAttention`` exactly, channels-last. The
relative <-> absolute index conversions are the usual pad/reshape "skewing" tricks,
written with pad/reshape/slice/matmul only (no einsum, no gather) so that the layer
runs under XLA and converts to TFLite / TF.js.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

_MASK_FILL = -1e4  # The official fill value; also representable in float16.


def get_relative_embeddings(embeddings, length, window_size: int):
    """Selects the embeddings of relative positions ``-(length-1) .. length-1``.

    Positions outside ``[-window_size, window_size]`` get zero vectors.

    Args:
        embeddings: ``[H_rel, 2 * window_size + 1, D]``, index ``window_size`` is offset 0.
        length: Sequence length ``T`` (int or scalar tensor).
        window_size: Half-width of the window.

    Returns:
        ``[H_rel, 2T - 1, D]``; entry ``j`` is relative offset ``j - (T - 1)``.
    """
    # Padding by T on both sides always suffices and makes the slice start constant:
    # offset r = j - (T - 1) lives at padded index r + window_size + T = j + window_size + 1.
    padded = tf.pad(embeddings, [[0, 0], [length, length], [0, 0]])  # [H_rel, 2w + 1 + 2T, D]
    return padded[:, window_size + 1 : window_size + 2 * length]  # [H_rel, 2T - 1, D]


def relative_to_absolute(x):
    """Turns relative-position logits into absolute ones.

    Args:
        x: ``[B, H, T, 2T - 1]``, last axis indexed by relative offset ``+ (T - 1)``.

    Returns:
        ``[B, H, T, T]`` with ``out[..., i, j] = x[..., i, j - i + T - 1]``.
    """
    heads = x.shape[1]
    length = tf.shape(x)[2]
    x = tf.pad(x, [[0, 0], [0, 0], [0, 0], [0, 1]])  # [B, H, T, 2T]
    x = tf.reshape(x, [-1, heads, 2 * length * length])  # [B, H, 2T^2]
    x = tf.pad(x, [[0, 0], [0, 0], [0, length - 1]])  # [B, H, (T + 1) * (2T - 1)]
    x = tf.reshape(x, [-1, heads, length + 1, 2 * length - 1])  # [B, H, T + 1, 2T - 1]
    return x[:, :, :length, length - 1 :]  # [B, H, T, T]


def absolute_to_relative(x):
    """Inverse skew of `relative_to_absolute`.

    Args:
        x: ``[B, H, T, T]`` (e.g. attention weights).

    Returns:
        ``[B, H, T, 2T - 1]`` with ``out[..., i, j - i + T - 1] = x[..., i, j]``, zeros
        elsewhere.
    """
    heads = x.shape[1]
    length = tf.shape(x)[2]
    x = tf.pad(x, [[0, 0], [0, 0], [0, 0], [0, length - 1]])  # [B, H, T, 2T - 1]
    x = tf.reshape(x, [-1, heads, length * (2 * length - 1)])  # [B, H, T * (2T - 1)]
    x = tf.pad(x, [[0, 0], [0, 0], [length, 0]])  # [B, H, 2T^2]
    x = tf.reshape(x, [-1, heads, length, 2 * length])  # [B, H, T, 2T]
    return x[:, :, :, 1:]  # [B, H, T, 2T - 1]


@keras.saving.register_keras_serializable(package="gradtts_tf")
class RelativeMultiHeadAttention(keras.layers.Layer):
    """Masked multi-head self-attention with relative position embeddings.

    ``scores = (q k^T + q E_k^T) / sqrt(d)`` with ``E_k`` the relative key embeddings,
    masked with -1e4 where query or key is padding, softmax, dropout, then
    ``out = p v + p_rel E_v``. q/k/v/o are 1x1 convolutions; q/k/v use Xavier-uniform
    kernels as the official code.

    Args:
        channels: Input channels (divisible by ``n_heads``).
        out_channels: Output channels of ``conv_o``.
        n_heads: Number of heads.
        window_size: Relative window half-width; ``None`` disables relative positions.
        heads_share: One set of relative embeddings for all heads (official default).
        p_dropout: Dropout on the attention weights.
        proximal_bias: Adds ``-log(1 + |i - j|)`` to the scores (off in Grad-TTS).
    """

    def __init__(
        self,
        channels: int,
        out_channels: int,
        n_heads: int,
        window_size: int | None = None,
        heads_share: bool = True,
        p_dropout: float = 0.0,
        proximal_bias: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if channels % n_heads != 0:
            raise ValueError(
                f"RelativeMultiHeadAttention: channels ({channels}) must be divisible by "
                f"n_heads ({n_heads})"
            )
        self.channels = channels
        self.out_channels = out_channels
        self.n_heads = n_heads
        self.window_size = window_size
        self.heads_share = heads_share
        self.p_dropout = p_dropout
        self.proximal_bias = proximal_bias
        self.k_channels = channels // n_heads

        self.conv_q = keras.layers.Conv1D(
            channels, 1, kernel_initializer="glorot_uniform", name="conv_q"
        )
        self.conv_k = keras.layers.Conv1D(
            channels, 1, kernel_initializer="glorot_uniform", name="conv_k"
        )
        self.conv_v = keras.layers.Conv1D(
            channels, 1, kernel_initializer="glorot_uniform", name="conv_v"
        )
        self.conv_o = keras.layers.Conv1D(out_channels, 1, name="conv_o")
        self.drop = keras.layers.Dropout(p_dropout, name="drop")

    def build(self, input_shape=None):
        for conv in (self.conv_q, self.conv_k, self.conv_v, self.conv_o):
            conv.build((None, None, self.channels))
        if self.window_size is not None:
            n_heads_rel = 1 if self.heads_share else self.n_heads
            shape = (n_heads_rel, 2 * self.window_size + 1, self.k_channels)
            init = keras.initializers.RandomNormal(stddev=self.k_channels**-0.5)
            self.emb_rel_k = self.add_weight(name="emb_rel_k", shape=shape, initializer=init)
            self.emb_rel_v = self.add_weight(name="emb_rel_v", shape=shape, initializer=init)

    def _split_heads(self, x):
        """``[B, T, C]`` -> ``[B, H, T, D]`` (channel ``c = h * D + d`` as the official view)."""
        length = tf.shape(x)[1]
        x = tf.reshape(x, [-1, length, self.n_heads, self.k_channels])  # [B, T, H, D]
        return tf.transpose(x, [0, 2, 1, 3])  # [B, H, T, D]

    def _per_head_matmul(self, x, emb, transpose_b=False):
        """``x @ emb[h]`` for each head ``h``, without a broadcasting batch matmul.

        TensorFlow's CPU batch matmul corrupts memory when it broadcasts one operand
        over a batch of 2 or more with a single head (a crash at some lengths), so
        shared embeddings are applied as one 2-D matmul and per-head ones as a batch
        matmul over heads.

        Args:
            x: ``[B, H, T, K]``.
            emb: ``[H_rel, N, K]`` if ``transpose_b`` else ``[H_rel, K, N]``, ``H_rel``
                1 (shared) or ``H``.
            transpose_b: Multiplies by ``emb[h]`` transposed.

        Returns:
            ``[B, H, T, N]``.
        """
        shape = tf.shape(x)
        depth = x.shape[-1] if x.shape[-1] is not None else shape[3]  # K
        out_dim = tf.shape(emb)[1 if transpose_b else 2]
        if self.heads_share:
            flat = tf.reshape(x, [-1, depth])  # [B * H * T, K]
            out = tf.matmul(flat, emb[0], transpose_b=transpose_b)  # [B * H * T, N]
            return tf.reshape(out, [shape[0], shape[1], shape[2], out_dim])  # [B, H, T, N]
        per_head = tf.transpose(x, [1, 0, 2, 3])  # [H, B, T, K]
        per_head = tf.reshape(per_head, [shape[1], -1, depth])  # [H, B * T, K]
        out = tf.matmul(per_head, emb, transpose_b=transpose_b)  # [H, B * T, N]
        out = tf.reshape(out, [shape[1], shape[0], shape[2], out_dim])  # [H, B, T, N]
        return tf.transpose(out, [1, 0, 2, 3])  # [B, H, T, N]

    def call(self, x, x_mask, training=None):
        """Self-attention over the valid steps.

        Args:
            x: ``[B, T, channels]``.
            x_mask: ``[B, T, 1]`` float, 1 on valid steps.
            training: Enables dropout on the attention weights.

        Returns:
            ``[B, T, out_channels]`` (padded query rows are not zeroed here; the encoder
            masks them).
        """
        length = tf.shape(x)[1]
        x_mask = tf.cast(x_mask, x.dtype)
        scale = 1.0 / math.sqrt(self.k_channels)
        query = self._split_heads(self.conv_q(x))  # [B, H, T, D]
        key = self._split_heads(self.conv_k(x))  # [B, H, T, D]
        value = self._split_heads(self.conv_v(x))  # [B, H, T, D]

        scores = tf.matmul(query, key, transpose_b=True) * scale  # [B, H, T, T]
        if self.window_size is not None:
            rel_k = get_relative_embeddings(
                tf.cast(self.emb_rel_k, x.dtype), length, self.window_size
            )  # [H_rel, 2T - 1, D]
            rel_logits = self._per_head_matmul(query, rel_k, transpose_b=True)  # [B, H, T, 2T - 1]
            scores = scores + relative_to_absolute(rel_logits) * scale
        if self.proximal_bias:
            pos = tf.cast(tf.range(length), x.dtype)
            diff = pos[None, :] - pos[:, None]  # [T, T]
            scores = scores + (-tf.math.log1p(tf.abs(diff)))[None, None]

        attn_mask = x_mask[:, None, :, :] * tf.transpose(x_mask, [0, 2, 1])[:, None]
        # attn_mask: [B, 1, T, 1] * [B, 1, 1, T] -> [B, 1, T, T]
        scores = tf.where(attn_mask > 0, scores, tf.cast(_MASK_FILL, scores.dtype))
        p_attn = tf.nn.softmax(tf.cast(scores, "float32"), axis=-1)
        p_attn = self.drop(tf.cast(p_attn, x.dtype), training=training)  # [B, H, T, T]

        out = tf.matmul(p_attn, value)  # [B, H, T, D]
        if self.window_size is not None:
            rel_v = get_relative_embeddings(
                tf.cast(self.emb_rel_v, x.dtype), length, self.window_size
            )  # [H_rel, 2T - 1, D]
            out = out + self._per_head_matmul(absolute_to_relative(p_attn), rel_v)  # [B, H, T, D]
        out = tf.transpose(out, [0, 2, 1, 3])  # [B, T, H, D]
        out = tf.reshape(out, [-1, length, self.channels])  # [B, T, C]
        return self.conv_o(out)

    def compute_output_shape(self, x_shape, x_mask_shape=None):
        return (*x_shape[:-1], self.out_channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "channels": self.channels,
                "out_channels": self.out_channels,
                "n_heads": self.n_heads,
                "window_size": self.window_size,
                "heads_share": self.heads_share,
                "p_dropout": self.p_dropout,
                "proximal_bias": self.proximal_bias,
            }
        )
        return config
