"""Sequence helpers and monotonic alignment search (MAS) in pure TensorFlow ops.

Everything here runs eagerly, inside ``tf.function`` and under
``tf.function(jit_compile=True)`` (XLA). Layouts are channels-last: a
length-``T`` sequence mask is ``[B, T]`` (add ``[..., None]`` for ``[B, T, 1]``),
an alignment is ``[B, T_x, T_y]`` (text tokens x mel frames).
"""

from __future__ import annotations

import tensorflow as tf

# Score of impossible transitions in the official Cython MAS (a float32 there too).
MAX_NEG_VAL = -1e9


def _dim(x: tf.Tensor, axis: int) -> int | tf.Tensor:
    """Static size of ``x`` along ``axis`` when known, else the dynamic one."""
    static = x.shape[axis]
    return static if static is not None else tf.shape(x)[axis]


def sequence_mask(
    lengths: tf.Tensor, max_length: int | tf.Tensor | None = None, dtype: tf.DType = tf.float32
) -> tf.Tensor:
    """Mask of valid positions, ``mask[b, t] = t < lengths[b]``.

    Args:
        lengths: ``[B]`` lengths (int or float).
        max_length: Mask length ``T``; defaults to ``max(lengths)``.
        dtype: Output dtype; float32 by default (1.0 inside, 0.0 outside). Pass ``tf.bool``
            for the boolean mask of the official ``sequence_mask``.

    Returns:
        ``[B, T]`` mask of ``dtype``.
    """
    lengths = tf.convert_to_tensor(lengths)
    if max_length is None:
        max_length = tf.cast(tf.reduce_max(lengths), tf.int32)
    # Compare in the lengths' dtype, like the official arange(dtype=length.dtype).
    positions = tf.cast(tf.range(max_length), lengths.dtype)  # [T]
    mask = positions[None, :] < lengths[:, None]  # [B, T]
    return mask if dtype == tf.bool else tf.cast(mask, dtype)


def fix_len_compatibility(length, num_downsamplings_in_unet: int = 2):
    """Round a length up to the next multiple of ``2 ** num_downsamplings_in_unet``.

    The U-Net halves the time axis ``num_downsamplings_in_unet`` times, so padded
    mel lengths must be divisible by that power of two.

    Args:
        length: Python/numpy int or an integer tensor (any shape).
        num_downsamplings_in_unet: Number of U-Net downsamplings (2 in Grad-TTS).

    Returns:
        The rounded length, of the same kind (int or tensor) as ``length``.
    """
    factor = 2**num_downsamplings_in_unet
    # Floor division is defined on ints, numpy ints and tensors alike.
    return (length + factor - 1) // factor * factor


def generate_path(duration: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Hard alignment from per-token durations (official ``generate_path``).

    Token ``x`` covers mel frames ``[cumsum(d)[x-1], cumsum(d)[x])``.

    Args:
        duration: ``[B, T_x]`` frame counts per token (float, integer-valued); a
            ``[B, T_x, 1]`` tensor is accepted and squeezed.
        mask: ``[B, T_x, T_y]`` float attention mask (text mask x mel mask).

    Returns:
        ``[B, T_x, T_y]`` 0/1 alignment of ``mask``'s dtype, zero outside ``mask``.
    """
    duration = tf.convert_to_tensor(duration)
    if duration.shape.rank == 3:
        duration = duration[:, :, 0]  # [B, T_x]
    t_y = _dim(mask, 2)
    cum_duration = tf.cumsum(duration, axis=1)  # [B, T_x]
    frames = tf.cast(tf.range(t_y), cum_duration.dtype)  # [T_y]
    # covered[b, x, y]: frame y lies before the end of token x.
    covered = tf.cast(frames[None, None, :] < cum_duration[:, :, None], mask.dtype)  # [B, T_x, T_y]
    covered_before = tf.pad(covered, [[0, 0], [1, 0], [0, 0]])[:, :-1]  # [B, T_x, T_y]
    return (covered - covered_before) * mask


def duration_loss(logw: tf.Tensor, logw_: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
    """Official duration loss: ``sum((logw - logw_) ** 2) / sum(lengths)``.

    Args:
        logw: ``[B, T_x, 1]`` predicted log-durations (masked).
        logw_: ``[B, T_x, 1]`` target log-durations from MAS (masked).
        lengths: ``[B]`` text lengths.

    Returns:
        Scalar loss of ``logw``'s dtype.
    """
    return tf.reduce_sum(tf.square(logw - logw_)) / tf.reduce_sum(tf.cast(lengths, logw.dtype))


def maximum_path(value: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Monotonic alignment search, bit-exact with the official Cython ``maximum_path``.

    For each item, finds the monotonic path through ``value[:t_x, :t_y]`` that
    starts at ``(0, 0)``, ends at ``(t_x - 1, t_y - 1)``, moves one mel frame at a
    time and stays on the same token or advances by one, maximising the sum of
    ``value`` along it. Item lengths come from ``mask`` exactly as in the official
    wrapper: ``t_x = sum(mask[b, :, 0])``, ``t_y = sum(mask[b, 0, :])``.

    The forward DP is vectorised over batch and text and loops over mel frames,
    using float32 arithmetic and the official update order, band limits and tie
    rule (backtracking stays on a token unless the cell below is strictly
    better). Cells outside each item's DP band keep ``value * mask`` just like the
    in-place Cython buffer, so even ``t_x > t_y`` items give the official path.

    Args:
        value: ``[B, T_x, T_y]`` float32 log-likelihoods.
        mask: ``[B, T_x, T_y]`` float 0/1, ones inside each item's ``t_x x t_y``.

    Returns:
        ``[B, T_x, T_y]`` float32 0/1 path, zero outside ``mask``.
    """
    mask = tf.cast(mask, tf.float32)
    value = tf.cast(value, tf.float32) * mask  # [B, T_x, T_y]
    t_x_max = _dim(value, 1)
    t_y_max = _dim(value, 2)
    t_xs = tf.cast(tf.reduce_sum(mask[:, :, 0], axis=1), tf.int32)  # [B]
    t_ys = tf.cast(tf.reduce_sum(mask[:, 0, :], axis=1), tf.int32)  # [B]

    neg = tf.constant(MAX_NEG_VAL, tf.float32)
    x_idx = tf.range(t_x_max)[None, :]  # [1, T_x]
    is_first_token = tf.equal(x_idx, 0)  # [1, T_x]
    # Mel-frame-major so each loop step reads one [B, T_x] column.
    columns = tf.transpose(value, [2, 0, 1])  # [T_y, B, T_x]
    batch_size = _dim(value, 0)

    def shift_down(col: tf.Tensor) -> tf.Tensor:
        """``col[:, x - 1]`` at ``x`` (``neg`` at ``x = 0``)."""
        pad = tf.fill(tf.stack([batch_size, 1]), neg)  # [B, 1]
        return tf.concat([pad, col[:, :-1]], axis=1)  # [B, T_x]

    # Forward DP: carry column y - 1 (after its update), emit column y.
    def dp_body(y, prev, acc):
        cur = columns[y]  # [B, T_x]
        v_cur = tf.where(tf.equal(x_idx, y), neg, prev)  # [B, T_x]
        v_first = tf.where(tf.equal(y, 0), tf.constant(0.0), neg)
        v_prev = tf.where(is_first_token, v_first, shift_down(prev))  # [B, T_x]
        updated = tf.maximum(v_cur, v_prev) + cur
        lo = tf.maximum(0, t_xs + y - t_ys)[:, None]  # [B, 1]
        hi = tf.minimum(t_xs, y + 1)[:, None]  # [B, 1]
        in_band = (x_idx >= lo) & (x_idx < hi)  # [B, T_x]
        new = tf.where(in_band, updated, cur)
        return y + 1, new, acc.write(y, new)

    init_prev = tf.fill(tf.stack([batch_size, t_x_max]), neg)  # [B, T_x]
    acc = tf.TensorArray(tf.float32, size=t_y_max, element_shape=init_prev.shape)
    _, _, acc = tf.while_loop(
        lambda y, *_: y < t_y_max, dp_body, (tf.constant(0), init_prev, acc)
    )
    dp = acc.stack()  # [T_y, B, T_x]

    # Backtracking rule as a per-cell decision, for all cells at once: at frame y,
    # token x moves to x - 1 iff x != 0 and (x == y or dp[x, y-1] < dp[x-1, y-1]).
    # Frame 0 never moves (its move would only matter after the last write).
    dp_prev = tf.concat([tf.fill(tf.shape(dp[:1]), neg), dp[:-1]], axis=0)  # [T_y, B, T_x]
    dp_prev_below = tf.concat(
        [tf.fill(tf.shape(dp_prev[:, :, :1]), neg), dp_prev[:, :, :-1]], axis=2
    )  # [T_y, B, T_x]
    y_idx = tf.range(t_y_max)[:, None, None]  # [T_y, 1, 1]
    moves = tf.logical_not(is_first_token)[None] & (
        tf.equal(x_idx[None], y_idx) | (dp_prev < dp_prev_below)
    )  # [T_y, B, T_x]

    # Backtracking: carry each item's token index, record it per frame.
    def bt_body(y, index, acc):
        active = y < t_ys  # [B]
        acc = acc.write(y, tf.where(active, index, -1))
        safe_index = tf.clip_by_value(index, 0, t_x_max - 1)  # [B]
        move = tf.gather(moves[y], safe_index[:, None], batch_dims=1)[:, 0]  # [B]
        return y - 1, tf.where(active & move, index - 1, index), acc

    idx_acc = tf.TensorArray(tf.int32, size=t_y_max, element_shape=t_xs.shape)
    _, _, idx_acc = tf.while_loop(
        lambda y, *_: y >= 0, bt_body, (t_y_max - 1, t_xs - 1, idx_acc)
    )
    indices = tf.transpose(idx_acc.stack())  # [B, T_y]
    # one_hot of -1 (inactive frame or empty item) is all zeros.
    path = tf.transpose(tf.one_hot(indices, t_x_max, dtype=tf.float32), [0, 2, 1])  # [B, T_x, T_y]
    return path * mask
