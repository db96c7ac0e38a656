"""Tests for gradtts_tf.ops: MAS bit-exact with the official Cython code, and helpers."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import REF

from gradtts_tf.ops import (
    duration_loss,
    fix_len_compatibility,
    generate_path,
    maximum_path,
    maximum_path_frame_major,
    sequence_mask,
)

_SPEC = tf.TensorSpec([None, None, None], tf.float32)
MAS_GRAPH = tf.function(maximum_path, input_signature=[_SPEC, _SPEC])  # T_x, T_y unknown
MAS_XLA = tf.function(maximum_path, jit_compile=True)

@tf.function(input_signature=[_SPEC, _SPEC])
def _frame_major_graph(value, mask):
    """`maximum_path_frame_major` in the official layout, for the same checks."""
    swap = [0, 2, 1]  # [B, T_x, T_y] <-> [B, T_y, T_x]
    path = maximum_path_frame_major(tf.transpose(value, swap), tf.transpose(mask, swap))
    return tf.transpose(path, swap)


MODES = {
    "eager": maximum_path, "graph": MAS_GRAPH, "xla": MAS_XLA,
    "frame-major": _frame_major_graph,
}


def oracle_maximum_path(value: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Line-by-line port of the official Cython ``maximum_path`` (float32 scalars)."""
    value = (value * mask).astype(np.float32)
    path = np.zeros(value.shape, np.float32)
    t_xs = mask.sum(1)[:, 0].astype(np.int32)
    t_ys = mask.sum(2)[:, 0].astype(np.int32)
    max_neg_val = np.float32(-1e9)
    for b in range(value.shape[0]):
        val, t_x, t_y = value[b], int(t_xs[b]), int(t_ys[b])
        for y in range(t_y):
            for x in range(max(0, t_x + y - t_y), min(t_x, y + 1)):
                v_cur = max_neg_val if x == y else val[x, y - 1]
                if x == 0:
                    v_prev = np.float32(0.0) if y == 0 else max_neg_val
                else:
                    v_prev = val[x - 1, y - 1]
                val[x, y] = max(v_cur, v_prev) + val[x, y]
        index = t_x - 1
        for y in range(t_y - 1, -1, -1):
            path[b, index, y] = 1.0
            # At y == 0 the Cython code reads column -1, but the move it decides
            # comes after the last write; stop there instead.
            if y > 0 and index != 0 and (index == y or val[index, y - 1] < val[index - 1, y - 1]):
                index -= 1
    return path


def make_mask(t_xs, t_ys, t_x_max: int, t_y_max: int) -> np.ndarray:
    """``[B, T_x, T_y]`` float32 ones inside each item's ``t_x x t_y``."""
    x_mask = np.arange(t_x_max)[None, :] < np.asarray(t_xs)[:, None]  # [B, T_x]
    y_mask = np.arange(t_y_max)[None, :] < np.asarray(t_ys)[:, None]  # [B, T_y]
    return (x_mask[:, :, None] & y_mask[:, None, :]).astype(np.float32)  # [B, T_x, T_y]


def check_path_properties(path: np.ndarray, mask: np.ndarray) -> None:
    """Monotonic, one token per valid frame, >= 1 frame per token, zero outside the mask."""
    assert set(np.unique(path)) <= {0.0, 1.0}
    assert np.all(path[mask == 0] == 0)
    t_xs = mask.sum(1)[:, 0].astype(int)
    t_ys = mask.sum(2)[:, 0].astype(int)
    for b, (t_x, t_y) in enumerate(zip(t_xs, t_ys, strict=True)):
        p = path[b, :t_x, :t_y]
        np.testing.assert_array_equal(p.sum(0), np.ones(t_y))  # one token per frame
        np.testing.assert_array_equal(p.sum(1) >= 1, np.ones(t_x, bool))  # every token used
        tokens = p.argmax(0)
        assert tokens[0] == 0 and tokens[-1] == t_x - 1
        assert set(np.diff(tokens)) <= {0, 1}  # monotonic, one token at a time


@pytest.mark.parametrize("mode", list(MODES))
def test_maximum_path_matches_official_fixture(mode):
    cases = np.load(REF / "mas_cases.npz")
    for i in range(5):
        value, mask = cases[f"case{i}_value"], cases[f"case{i}_mask"]
        expected = cases[f"case{i}_path"]
        path = MODES[mode](value, mask)
        assert path.dtype == tf.float32 and path.shape == expected.shape
        assert np.array_equal(path.numpy(), expected), f"case {i} ({mode})"
        assert np.array_equal(oracle_maximum_path(value, mask), expected), f"oracle, case {i}"
        check_path_properties(path.numpy(), mask)


def _random_batches(seed: int = 0):
    """30 batches over a few fixed array shapes (one XLA compile each), varied lengths."""
    rng = np.random.default_rng(seed)
    shapes = [(4, 12, 40), (3, 1, 9), (2, 10, 10), (5, 6, 64)]
    for i in range(30):
        b, t_x_max, t_y_max = shapes[i % len(shapes)]
        t_xs = rng.integers(1, t_x_max + 1, size=b)
        t_ys = np.array([rng.integers(t_x, t_y_max + 1) for t_x in t_xs])
        t_xs[0], t_ys[0] = t_x_max, t_y_max  # one item fills the array
        if t_x_max == t_y_max:
            t_ys = t_xs.copy()  # T_x == T_y: only the diagonal path exists
        kind = i % 3
        if kind == 0:  # continuous log-likelihoods
            value = rng.normal(scale=3.0, size=(b, t_x_max, t_y_max)) - 5.0
        elif kind == 1:  # small integers: many exact ties
            value = rng.integers(-2, 1, size=(b, t_x_max, t_y_max))
        else:  # all equal: every path ties
            value = np.full((b, t_x_max, t_y_max), -1.0)
        # Garbage outside the mask must not matter.
        mask = make_mask(t_xs, t_ys, t_x_max, t_y_max)
        value = np.where(mask > 0, value, rng.normal(scale=1e3, size=value.shape))
        yield value.astype(np.float32), mask


@pytest.mark.parametrize("mode", list(MODES))
def test_maximum_path_random_exact(mode):
    for i, (value, mask) in enumerate(_random_batches()):
        expected = oracle_maximum_path(value, mask)
        path = MODES[mode](value, mask).numpy()
        assert np.array_equal(path, expected), f"batch {i} ({mode})"
        check_path_properties(path, mask)


def test_maximum_path_more_tokens_than_frames():
    # Not a valid alignment, but the Cython semantics are still reproduced.
    rng = np.random.default_rng(1)
    mask = make_mask([7, 3], [4, 5], 7, 5)
    value = rng.normal(size=mask.shape).astype(np.float32)
    np.testing.assert_array_equal(MAS_XLA(value, mask), oracle_maximum_path(value, mask))


def test_maximum_path_empty_item_gives_zero_path():
    mask = make_mask([3, 0], [5, 0], 3, 5)
    value = np.random.default_rng(2).normal(size=mask.shape).astype(np.float32)
    path = MAS_GRAPH(value, mask).numpy()
    assert path[1].sum() == 0
    np.testing.assert_array_equal(path[0], oracle_maximum_path(value[:1], mask[:1])[0])


def test_sequence_mask():
    lengths = tf.constant([3, 0, 5])
    expected = (np.arange(5)[None, :] < np.array([3, 0, 5])[:, None]).astype(np.float32)
    mask = sequence_mask(lengths)
    assert mask.dtype == tf.float32
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(sequence_mask(lengths, 7)[:, :5], expected)
    assert sequence_mask(lengths, 7).shape == (3, 7)
    np.testing.assert_array_equal(sequence_mask(lengths, dtype=tf.bool), expected > 0)
    # Float lengths compare as floats, like the official arange(dtype=length.dtype).
    np.testing.assert_array_equal(sequence_mask(tf.constant([2.5]), 4), [[1, 1, 1, 0]])


def test_fix_len_compatibility():
    expected = [0, 4, 4, 4, 4, 8, 8, 8, 8, 12]
    assert [fix_len_compatibility(n) for n in range(10)] == expected
    assert isinstance(fix_len_compatibility(5), int)
    assert fix_len_compatibility(np.int64(13)) == 16
    assert fix_len_compatibility(9, num_downsamplings_in_unet=3) == 16
    assert fix_len_compatibility(173) == 176
    np.testing.assert_array_equal(fix_len_compatibility(tf.range(10)), expected)
    compiled = tf.function(fix_len_compatibility, jit_compile=True)
    assert int(compiled(tf.constant(21))) == 24


def _loop_generate_path(duration: np.ndarray, mask: np.ndarray) -> np.ndarray:
    path = np.zeros(mask.shape, np.float32)
    for b in range(duration.shape[0]):
        start = 0
        for x, d in enumerate(duration[b].astype(int)):
            path[b, x, start : start + d] = 1.0
            start += d
    return path * mask


@pytest.mark.parametrize("compiled", [False, True])
def test_generate_path_matches_loop(compiled):
    rng = np.random.default_rng(3)
    t_xs = np.array([6, 4, 1])
    duration = rng.integers(0, 4, size=(3, 6)) * (np.arange(6)[None] < t_xs[:, None])
    duration = duration.astype(np.float32)
    t_ys = duration.sum(1).astype(int)
    t_y_max = fix_len_compatibility(int(t_ys.max()))
    mask = make_mask(t_xs, t_ys, 6, t_y_max)
    fn = tf.function(generate_path, jit_compile=True) if compiled else generate_path
    path = fn(duration, mask).numpy()
    np.testing.assert_array_equal(path, _loop_generate_path(duration, mask))
    np.testing.assert_array_equal(path.sum(2), duration)  # frames per token
    # Channels-last [B, T_x, 1] durations are accepted too.
    np.testing.assert_array_equal(generate_path(duration[:, :, None], mask), path)


def test_generate_path_truncates_at_mask():
    duration = np.array([[3.0, 4.0]], np.float32)
    mask = make_mask([2], [5], 2, 8)
    path = generate_path(duration, mask).numpy()
    np.testing.assert_array_equal(path[0, 0], [1, 1, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(path[0, 1], [0, 0, 0, 1, 1, 0, 0, 0])


def test_duration_loss():
    rng = np.random.default_rng(4)
    logw = rng.normal(size=(3, 7, 1)).astype(np.float32)
    logw_ = rng.normal(size=(3, 7, 1)).astype(np.float32)
    lengths = np.array([7, 5, 2], np.int32)
    loss = duration_loss(tf.constant(logw), tf.constant(logw_), tf.constant(lengths))
    expected = np.sum((logw - logw_) ** 2) / lengths.sum()
    assert loss.shape == ()
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)
