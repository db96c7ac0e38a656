"""Float32 sums that round exactly like the official PyTorch Grad-TTS on a CPU.

Synthesis turns fractional durations (``ceil(w) * length_scale``) into frames with two
float32 sums, and a frame near a token boundary goes wherever their rounding puts it:

- ``torch.cumsum`` (the alignment path) accumulates in double and rounds each prefix
  once: the correctly rounded prefix sum. `exact_cumsum` computes that with float32
  ops only: each value is split into three parts on fixed grids whose running sums are
  exact in float32 (so the order a runtime's cumsum adds in cannot matter), and the
  three exact sums are combined with one error-free addition and one rounding.
- ``torch.sum`` (the mel length) adds float32 in the fixed order of ATen's CPU
  ``cascade_sum`` with 8-lane vectors (the AVX2 kernel, which PyTorch also dispatches on
  AVX-512 CPUs). `torch_cpu_sum` performs the same additions in the same order: only
  slices, pads, reshapes and elementwise adds, so TFLite and TF.js compute it alike.

Both hold for sequences of up to 131071 values; `exact_cumsum` needs values that are 0
or at least 1/32 (durations at a ``length_scale`` of 1/32 or more), totals under 2**17
frames and at most 7000 tokens.
"""

from __future__ import annotations

import tensorflow as tf

# ATen's float sum: AVX2 vectors of 8 floats, 4 accumulators (instruction-level
# parallelism), cascade levels of 16 rows.
_LANES = 8
_ILP = 4
_LEVEL = 16
# Graph optimisers (Grappler's arithmetic stage, at run time and in the TF.js converter)
# merge chains of additions into one AddN and reorder them; a max with the lowest float
# is an exact no-op that they leave alone, so it pins each addition in place.
_LOWEST = float(tf.float32.min)


def _pinned(x: tf.Tensor) -> tf.Tensor:
    """``x`` unchanged, but opaque to rewrites that reassociate float additions."""
    return tf.maximum(x, _LOWEST)


def _sequential_sum(parts: tf.Tensor, axis: int) -> tf.Tensor:
    """Left-to-right float32 sum over a static-size ``axis`` (zeros pad at the end)."""
    items = tf.unstack(parts, axis=axis)
    total = items[0]
    for item in items[1:]:
        total = _pinned(total + item)
    return total


def _window(x: tf.Tensor, start, size: int, stop) -> tf.Tensor:
    """``x[:, start:start + size]`` of ``x`` ``[B, N]``, entries at ``stop`` and later zeroed.

    ``start <= N``. The window always has the static length ``size`` (``x`` is zero-padded
    first) and is never built from an empty slice: TFLite's UNPACK rejects empty inputs,
    and slicing ``x[:, start:stop]`` and padding it would make some (a short row has no
    full vector, no 16-row chunk). The zeros leave a left-to-right sum unchanged
    (``a + 0 == a`` exactly).
    """
    padded = tf.pad(x, [[0, 0], [0, size]])  # [B, N + size]
    part = tf.slice(padded, [0, start], [-1, size])  # [B, size]
    keep = start + tf.range(size) < stop  # [size]
    part = tf.where(keep[None, :], part, tf.zeros_like(part))
    return tf.reshape(part, [tf.shape(x)[0], size])  # static size for the unstack


def _chunk_sums(x: tf.Tensor, count, width: int) -> tf.Tensor:
    """ATen's sums of 16-row chunks over the first ``count`` values of ``x`` ``[B, N]``,
    read as rows of ``width`` values (``count`` a multiple of ``width``, at most ``N``).

    Returns:
        ``[B, count // (16 * width) + 1, width]``: the left-to-right sum of each full
        chunk, then that of the leftover rows (zeros complete the last chunk, so no
        tensor is empty however short ``x`` is).
    """
    block = _LEVEL * width
    n_chunks = count // block + 1
    padded = tf.pad(x, [[0, 0], [0, block]])  # [B, N + block] >= n_chunks * block
    keep = tf.range(tf.shape(padded)[1]) < count
    padded = tf.where(keep[None, :], padded, tf.zeros_like(padded))
    chunks = tf.reshape(padded[:, : n_chunks * block], [tf.shape(x)[0], n_chunks, _LEVEL, width])
    return _sequential_sum(chunks, axis=2)  # [B, n_chunks, width]


def _cascade_rows(x: tf.Tensor, count) -> tf.Tensor:
    """ATen ``multi_row_sum`` over the first ``count`` rows of 32 values of ``x`` ``[B, N]``.

    Rows are added in chunks of 16 into a first accumulator, each chunk's sum into a
    second, each 16 chunk sums into a third; the leftovers of each level stay in their
    accumulator and the levels are added at the end, lowest first.

    Returns:
        ``[B, 32]``: accumulator ``k``, lane ``l`` at ``8 k + l``.
    """
    width = _ILP * _LANES
    batch = tf.shape(x)[0]
    chunks = count // _LEVEL
    groups = chunks // _LEVEL  # < 16 for N < 131072: one chunk of group sums
    chunk_sums = _chunk_sums(x, count * width, width)  # [B, chunks + 1, 32]
    group_sums = _chunk_sums(tf.reshape(chunk_sums, [batch, -1]), chunks * width, width)
    top = _chunk_sums(tf.reshape(group_sums, [batch, -1]), groups * width, width)
    level0, level1, level2 = chunk_sums[:, -1], group_sums[:, -1], top[:, -1]  # [B, 32]
    return _pinned(level0 + level1) + level2  # [B, 32]


def torch_cpu_sum(x: tf.Tensor) -> tf.Tensor:
    """Row sums of ``x`` rounded as ``torch.sum(x, -1)`` rounds them on a CPU.

    Args:
        x: float32 ``[B, N]``, ``1 <= N < 131072`` (the whole padded row takes part, as
            in the official code, so the result depends on ``N``).

    Returns:
        float32 ``[B]``.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    batch, n = tf.shape(x)[0], tf.shape(x)[1]

    # Rows of 8 or more: 8-lane vectors, read 4 at a time into 4 accumulators.
    vectors = n // _LANES
    rows = vectors // _ILP
    acc = _cascade_rows(x, rows)  # [B, 4 * 8]: accumulator k, lane l at 8k + l
    # Vectors after the last full row (at most 3), added to accumulator 0.
    rest = _window(x, rows * _ILP * _LANES, (_ILP - 1) * _LANES, vectors * _LANES)
    rest = tf.reshape(rest, [batch, _ILP - 1, _LANES])  # [B, 3, 8]
    first = _sequential_sum(tf.concat([acc[:, None, :_LANES], rest], axis=1), 1)  # [B, 8]
    for k in range(1, _ILP):
        first = _pinned(first + acc[:, k * _LANES : (k + 1) * _LANES])  # [B, 8]
    tail = _sequential_sum(_window(x, vectors * _LANES, _LANES - 1, n), 1)  # [B]
    vector_sum = _sequential_sum(tf.concat([tail[:, None], first], axis=1), 1)  # [B]

    # Rows shorter than one vector: scalars read 4 at a time into 4 accumulators.
    n_short = tf.minimum(n, _LANES - 1)
    short = _window(x, 0, _LANES - 1, n_short)  # [B, 7]
    scalar_rows = n_short // _ILP
    head = tf.where(scalar_rows > 0, short[:, :_ILP], tf.zeros_like(short[:, :_ILP]))
    leftovers = _window(short, scalar_rows * _ILP, _ILP - 1, n_short)  # [B, 3]
    lead = _sequential_sum(tf.concat([head[:, :1], leftovers], axis=1), 1)
    scalar_sum = _sequential_sum(tf.concat([lead[:, None], head[:, 1:]], axis=1), 1)  # [B]

    return tf.where(n >= _LANES, vector_sum, scalar_sum)


def _two_sum(a: tf.Tensor, b: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``(s, e)`` with ``s = fl(a + b)`` and ``s + e == a + b`` exactly (Knuth)."""
    s = _pinned(a + b)
    b_virtual = _pinned(s - a)
    a_virtual = _pinned(s - b_virtual)
    return s, _pinned(a - a_virtual) + _pinned(b - b_virtual)


def exact_cumsum(x: tf.Tensor) -> tf.Tensor:
    """Correctly rounded float32 prefix sums along axis 1 (``torch.cumsum`` on a CPU).

    Args:
        x: float32 ``[B, N]`` of zeros and values in ``[1/32, 2**17)``.

    Returns:
        float32 ``[B, N]``: each prefix sum computed exactly, then rounded once.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    # x = coarse + middle + fine, each part's sums exact in float32 in any order:
    # coarse on a 2**-6 grid (totals < 2**17), middle on 2**-16 (|.| <= 2**-7 a value),
    # fine |.| <= 2**-17 on the grid of the values' own last bit (>= 2**-28).
    coarse = tf.round(x * 64.0) / 64.0
    rest = x - coarse
    # 2**16 as two pinned factors of 256: a float16 export (TF.js --quantize float16
    # converts every constant) cannot hold 65536, and a folded 256 * 256 would be it.
    middle = tf.round(_pinned(rest * 256.0) * 256.0)
    middle = _pinned(middle / 256.0) / 256.0
    fine = rest - middle
    total, error = _two_sum(tf.cumsum(coarse, axis=1), tf.cumsum(middle, axis=1))
    # error (2**-16 grid, <= half an ulp of total) plus the fine sum is exact, so the
    # last addition is the only rounding of the exact prefix sum.
    return total + _pinned(error + tf.cumsum(fine, axis=1))
