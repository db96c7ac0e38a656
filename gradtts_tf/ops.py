"""Sequence helpers and monotonic alignment search (MAS) in pure TensorFlow ops.

Everything here runs eagerly, inside ``tf.function`` and under
``tf.function(jit_compile=True)`` (XLA); `maximum_path` always compiles itself with
XLA. Layouts are channels-last: a length-``T`` sequence mask is ``[B, T]`` (add
``[..., None]`` for ``[B, T, 1]``), an alignment is ``[B, T_x, T_y]`` (text tokens x
mel frames).
"""

from __future__ import annotations

import tensorflow as tf

from gradtts_tf.float_sums import exact_cumsum, torch_cpu_sum

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
    # Correctly rounded, as the official torch.cumsum (double accumulation) is.
    cum_duration = exact_cumsum(tf.cast(duration, tf.float32))  # [B, T_x]
    frames = tf.cast(tf.range(t_y), cum_duration.dtype)  # [T_y]
    # covered[b, x, y]: frame y lies before the end of token x.
    # expand_dims, not [:, :, None]: TFLite converts it without Flex when B is unknown.
    ends = tf.expand_dims(cum_duration, -1)  # [B, T_x, 1]
    covered = tf.cast(frames[None, None, :] < ends, mask.dtype)  # [B, T_x, T_y]
    covered_before = tf.pad(covered, [[0, 0], [1, 0], [0, 0]])[:, :-1]  # [B, T_x, T_y]
    return (covered - covered_before) * mask


def durations_to_path(
    logw: tf.Tensor, x_mask: tf.Tensor, length_scale: float | tf.Tensor = 1.0
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Predicted log-durations to mel lengths and a hard alignment (official synthesis).

    ``ceil(exp(logw)) * length_scale`` frames per token; the length is the float32 total
    truncated (at least 1), the path covers each token's cumulative span. Both sums
    round as the official code's do on a CPU (`torch_cpu_sum`, `exact_cumsum`): with a
    fractional ``length_scale`` any other order can move a length or a boundary by one
    frame.

    Args:
        logw: ``[B, T_x, 1]`` predicted log-durations.
        x_mask: ``[B, T_x, 1]`` float text mask.
        length_scale: Duration multiplier (scalar).

    Returns:
        ``(y_lengths [B] int32, y_mask [B, T_y, 1], attn [B, T_x, T_y])`` with ``T_y`` the
        longest length rounded up by `fix_len_compatibility`.
    """
    w_ceil = tf.math.ceil(tf.exp(logw) * x_mask) * length_scale  # [B, T_x, 1]
    total = torch_cpu_sum(w_ceil[:, :, 0])  # [B]
    y_lengths = tf.cast(tf.maximum(total, 1.0), "int32")
    y_max_padded = fix_len_compatibility(tf.reduce_max(y_lengths))
    # expand_dims, not [:, :, None]: TFLite converts it without Flex when B is unknown.
    y_mask = tf.expand_dims(sequence_mask(y_lengths, y_max_padded), -1)  # [B, T_y, 1]
    attn_mask = x_mask * tf.transpose(y_mask, [0, 2, 1])  # [B, T_x, T_y]
    attn = generate_path(w_ceil[:, :, 0], attn_mask)  # [B, T_x, T_y]
    return y_lengths, y_mask, attn


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

    The official layout; the search itself walks mel frames, so this transposes
    ``value`` first. A caller that can produce the log-likelihoods frame-major (as
    `GradTTS.compute_losses` does) should call `maximum_path_frame_major` and save
    the transpose: a third of this function's time at 16x256x1024 on a CPU, where
    transposes under XLA are slow (``bench/mas.py``).

    It always runs as one XLA cluster (a ``jit_compile=True`` function), also when
    called eagerly or from a graph-mode training step: its two loops over mel frames
    are hundreds of tiny steps, which XLA runs several times faster than the
    TensorFlow executor (``bench/mas.py``). The result does not depend on the mode.

    Args:
        value: ``[B, T_x, T_y]`` float32 log-likelihoods.
        mask: ``[B, T_x, T_y]`` float 0/1, ones inside each item's ``t_x x t_y``.

    Returns:
        ``[B, T_x, T_y]`` float32 0/1 path, zero outside ``mask``.
    """
    return _maximum_path_xla(tf.cast(value, tf.float32), tf.cast(mask, tf.float32))


def maximum_path_frame_major(value: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """`maximum_path` on frame-major tensors: the same path, transposed.

    ``maximum_path_frame_major(v, m) == transpose(maximum_path(transpose(v),
    transpose(m)))`` exactly, without the transposes (``[0, 2, 1]`` each).

    Args:
        value: ``[B, T_y, T_x]`` float32 log-likelihoods (mel frames first).
        mask: ``[B, T_y, T_x]`` float 0/1, ones inside each item's ``t_y x t_x``.

    Returns:
        ``[B, T_y, T_x]`` float32 0/1 path, zero outside ``mask``.
    """
    return _maximum_path_frame_major_xla(tf.cast(value, tf.float32), tf.cast(mask, tf.float32))


def _maximum_path(value: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """`maximum_path` itself (``[B, T_x, T_y]`` float32 in and out)."""
    t_xs = tf.cast(tf.reduce_sum(mask[:, :, 0], axis=1), tf.int32)  # [B]
    t_ys = tf.cast(tf.reduce_sum(mask[:, 0, :], axis=1), tf.int32)  # [B]
    value_t = tf.transpose(value * mask, [0, 2, 1])  # [B, T_y, T_x]
    indices = _mas_token_indices(value_t, t_xs, t_ys)  # [B, T_y]
    # Built by comparison rather than one_hot + transpose (slow under XLA on CPU).
    path = tf.equal(indices[:, None, :], tf.range(_dim(value, 1))[None, :, None])  # [B, T_x, T_y]
    return tf.cast(path, tf.float32) * mask


def _maximum_path_frame_major(value: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """`maximum_path_frame_major` itself (``[B, T_y, T_x]`` float32 in and out)."""
    t_xs = tf.cast(tf.reduce_sum(mask[:, 0, :], axis=1), tf.int32)  # [B]
    t_ys = tf.cast(tf.reduce_sum(mask[:, :, 0], axis=1), tf.int32)  # [B]
    # The mask is applied one frame at a time inside the search, saving a pass.
    indices = _mas_token_indices(value, t_xs, t_ys, mask)  # [B, T_y]
    path = tf.equal(indices[:, :, None], tf.range(_dim(value, 2))[None, None, :])  # [B, T_y, T_x]
    return tf.cast(path, tf.float32) * mask


def _mas_token_indices(
    value: tf.Tensor, t_xs: tf.Tensor, t_ys: tf.Tensor, mask: tf.Tensor | None = None
) -> tf.Tensor:
    """The search: each frame's token on the best path.

    The forward DP is vectorised over batch and text and loops over mel frames,
    reading one contiguous ``[B, T_x]`` column per frame, with float32 arithmetic and
    the official update order, band limits and tie rule (backtracking stays on a
    token unless the cell below is strictly better). Cells outside each item's DP
    band keep ``value`` (masked) just like the in-place Cython buffer, so even
    ``t_x > t_y`` items give the official path. The loop records each cell's
    backtracking decision rather than its score, so the second loop reads a boolean
    per cell and nothing else is kept.

    Args:
        value: ``[B, T_y, T_x]`` float32 log-likelihoods, masked unless ``mask`` is given.
        t_xs: ``[B]`` int32 text lengths.
        t_ys: ``[B]`` int32 mel lengths.
        mask: optional ``[B, T_y, T_x]`` float 0/1 mask to apply to ``value``.

    Returns:
        ``[B, T_y]`` int32 token index per frame, -1 past an item's length (and for
        an empty item).
    """
    batch_size, t_y_max, t_x_max = (_dim(value, i) for i in range(3))
    neg = tf.constant(MAX_NEG_VAL, tf.float32)
    x_idx = tf.range(t_x_max)[None, :]  # [1, T_x]
    not_first_token = x_idx > 0  # [1, T_x]
    below_pad = tf.fill(tf.stack([batch_size, 1]), neg)  # [B, 1]

    def dp_body(y, prev, moves):
        """Column ``y`` of the DP from the final column ``y - 1`` (official update)."""
        cur = value[:, y, :] if mask is None else value[:, y, :] * mask[:, y, :]  # [B, T_x]
        below = tf.concat([below_pad, prev[:, :-1]], axis=1)  # [B, T_x]: prev[x - 1]
        v_cur = tf.where(tf.equal(x_idx, y), neg, prev)
        v_first = tf.where(tf.equal(y, 0), tf.constant(0.0), neg)
        v_prev = tf.where(not_first_token, below, v_first)
        updated = tf.maximum(v_cur, v_prev) + cur
        lo = tf.maximum(0, t_xs + y - t_ys)[:, None]  # [B, 1]
        hi = tf.minimum(t_xs, y + 1)[:, None]  # [B, 1]
        in_band = (x_idx >= lo) & (x_idx < hi)  # [B, T_x]
        # Backtracking at frame y: token x moves to x - 1 iff x != 0 and (x == y or
        # dp[x, y-1] < dp[x-1, y-1]). Frame 0 never moves (only after the last write).
        move = not_first_token & (tf.equal(x_idx, y) | (prev < below))  # [B, T_x]
        return y + 1, tf.where(in_band, updated, cur), moves.write(y, move)

    # Column "-1" is all neg: no cell at frame 0 can come from an earlier frame.
    init_prev = tf.fill(tf.stack([batch_size, t_x_max]), neg)  # [B, T_x]
    moves = tf.TensorArray(tf.bool, size=t_y_max, element_shape=init_prev.shape)
    _, _, moves = tf.while_loop(
        lambda y, *_: y < t_y_max, dp_body, (tf.constant(0), init_prev, moves)
    )
    # Flat, so that each backtracking step is one plain gather of B booleans (a
    # ``batch_dims`` gather costs ~0.5 us a step under XLA on CPU and pads the table).
    moves = tf.reshape(moves.stack(), [-1])  # [T_y * B * T_x]
    item_offsets = tf.range(batch_size) * t_x_max  # [B]

    # Backtracking from the last frame: carry each item's token index, record it
    # per frame (-1 past the item's length or for an empty item).
    def bt_body(y, index, acc):
        active = y < t_ys  # [B]
        acc = acc.write(y, tf.where(active, index, -1))
        safe_index = tf.clip_by_value(index, 0, t_x_max - 1)  # [B]
        move = tf.gather(moves, y * batch_size * t_x_max + item_offsets + safe_index)  # [B]
        return y - 1, tf.where(active & move, index - 1, index), acc

    idx_acc = tf.TensorArray(tf.int32, size=t_y_max, element_shape=t_xs.shape)
    _, _, idx_acc = tf.while_loop(lambda y, *_: y >= 0, bt_body, (t_y_max - 1, t_xs - 1, idx_acc))
    return tf.transpose(idx_acc.stack())  # [B, T_y]


_maximum_path_xla = tf.function(_maximum_path, jit_compile=True, reduce_retracing=True)
_maximum_path_frame_major_xla = tf.function(
    _maximum_path_frame_major, jit_compile=True, reduce_retracing=True
)
