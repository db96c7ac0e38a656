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


def _slice_padded(x: tf.Tensor, start, stop, size: int) -> tf.Tensor:
    """``x[:, start:stop]`` zero-padded to the static length ``size`` on axis 1.

    ``stop - start <= size`` by construction of the callers; the zeros leave a
    left-to-right sum unchanged (``a + 0 == a`` exactly).
    """
    part = x[:, start:stop]  # [B, L, ...]
    pads = [[0, 0], [0, size - (stop - start)]] + [[0, 0]] * (x.shape.rank - 2)
    part = tf.pad(part, pads)  # [B, size, ...]
    # An explicit batch: -1 cannot be inferred from a tensor with no elements.
    return tf.reshape(part, [tf.shape(x)[0], size, *x.shape[2:]])  # [B, size, ...]


def _cascade_rows(rows: tf.Tensor, count) -> tf.Tensor:
    """ATen ``multi_row_sum`` over the first ``count`` rows of ``rows`` ``[B, R, K]``.

    Rows are added in chunks of 16 into a first accumulator, each chunk's sum into a
    second, each 16 chunk sums into a third; the leftovers of each level stay in their
    accumulator and the levels are added at the end, lowest first.
    """
    batch, width = tf.shape(rows)[0], rows.shape[-1]
    chunks = count // _LEVEL
    groups = chunks // _LEVEL
    chunk_rows = tf.reshape(rows[:, : chunks * _LEVEL], [batch, chunks, _LEVEL, width])
    chunk_sums = _sequential_sum(chunk_rows, axis=2)  # [B, chunks, K]
    group_rows = tf.reshape(chunk_sums[:, : groups * _LEVEL], [batch, groups, _LEVEL, width])
    group_sums = _sequential_sum(group_rows, axis=2)  # [B, groups, K]
    level0 = _sequential_sum(_slice_padded(rows, chunks * _LEVEL, count, _LEVEL - 1), 1)
    level1 = _sequential_sum(_slice_padded(chunk_sums, groups * _LEVEL, chunks, _LEVEL - 1), 1)
    level2 = _sequential_sum(_slice_padded(group_sums, 0, groups, _LEVEL - 1), 1)
    return _pinned(level0 + level1) + level2  # [B, K]


def torch_cpu_sum(x: tf.Tensor) -> tf.Tensor:
    """Row sums of ``x`` rounded as ``torch.sum(x, -1)`` rounds them on a CPU.

    Args:
        x: float32 ``[B, N]``, ``N < 131072`` (the whole padded row takes part, as in
            the official code, so the result depends on ``N``).

    Returns:
        float32 ``[B]``.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    batch, n = tf.shape(x)[0], tf.shape(x)[1]

    # Rows of 8 or more: 8-lane vectors, read 4 at a time into 4 accumulators.
    vectors = n // _LANES
    rows = vectors // _ILP
    vector_rows = tf.reshape(x[:, : rows * _ILP * _LANES], [batch, rows, _ILP * _LANES])
    acc = _cascade_rows(vector_rows, rows)  # [B, 4 * 8]: accumulator k, lane l at 8k + l
    spare = vectors - rows * _ILP  # vectors after the last full row, added to acc 0
    rest = tf.reshape(x[:, rows * _ILP * _LANES : vectors * _LANES], [batch, spare, _LANES])
    rest = _slice_padded(rest, 0, spare, _ILP - 1)  # [B, 3, 8]
    first = _sequential_sum(tf.concat([acc[:, None, :_LANES], rest], axis=1), 1)  # [B, 8]
    for k in range(1, _ILP):
        first = _pinned(first + acc[:, k * _LANES : (k + 1) * _LANES])  # [B, 8]
    tail = _sequential_sum(_slice_padded(x, vectors * _LANES, n, _LANES - 1), 1)  # [B]
    vector_sum = _sequential_sum(tf.concat([tail[:, None], first], axis=1), 1)  # [B]

    # Rows shorter than one vector: scalars read 4 at a time into 4 accumulators.
    n_short = tf.minimum(n, _LANES - 1)
    short = _slice_padded(x, 0, n_short, _LANES - 1)  # [B, 7]
    scalar_rows = n_short // _ILP
    head = tf.where(scalar_rows > 0, short[:, :_ILP], tf.zeros_like(short[:, :_ILP]))
    leftovers = _slice_padded(short, scalar_rows * _ILP, n_short, _ILP - 1)
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
    middle = tf.round(rest * 65536.0) / 65536.0
    fine = rest - middle
    total, error = _two_sum(tf.cumsum(coarse, axis=1), tf.cumsum(middle, axis=1))
    # error (2**-16 grid, <= half an ulp of total) plus the fine sum is exact, so the
    # last addition is the only rounding of the exact prefix sum.
    return total + _pinned(error + tf.cumsum(fine, axis=1))
