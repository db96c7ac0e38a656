"""`gradtts_tf.runtime`: oneDNN's precision of convolutions and matmuls on CPU; memory release."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradtts_tf.config import ConfigError, load_config
from gradtts_tf.runtime import cpu_has_bf16, release_free_memory, set_cpu_math
from gradtts_tf.training import callbacks

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh process: oneDNN fixes its precision at the first primitive.
_CONV_SCRIPT = """
import json, sys
import numpy as np
from gradtts_tf.runtime import set_cpu_math
set_cpu_math(sys.argv[1])
import tensorflow as tf
rng = np.random.default_rng(0)
x = rng.normal(size=(1, 24, 20, 32)).astype(np.float32)  # [B, T, F, C]
k = rng.normal(size=(3, 3, 32, 16)).astype(np.float32)
y = tf.nn.conv2d(x, k, 1, "SAME").numpy()  # [B, T, F, 16]
pad = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
ref = sum(
    np.einsum("btfc,cd->btfd", pad[:, i:i + 24, j:j + 20], k[i, j].astype(np.float64))
    for i in range(3) for j in range(3)
)
print(json.dumps({"rel": float(np.abs(y - ref).max() / np.abs(ref).max())}))
"""


def _conv_error(mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _CONV_SCRIPT, mode], cwd=ROOT, capture_output=True,
        text=True, timeout=300, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["rel"]


@pytest.mark.skipif(not cpu_has_bf16(), reason="CPU without AMX (oneDNN ignores the mode)")
def test_bfloat16_math_rounds_convolution_inputs_and_float32_stays_exact():
    exact, fast = _conv_error("float32"), _conv_error("bfloat16")
    assert exact < 1e-6
    # bfloat16 keeps 8 significant bits: errors of a few 1e-3 of the output range.
    assert 1e-4 < fast < 2e-2


def test_bad_mode_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="float32, bfloat16.*'fp8'"):
        set_cpu_math("fp8")


def test_late_call_warns_and_sets_the_environment(monkeypatch):
    import tensorflow as tf

    tf.constant(1.0)  # TensorFlow has started in this process
    monkeypatch.setenv("ONEDNN_DEFAULT_FPMATH_MODE", "STRICT")
    with pytest.warns(RuntimeWarning, match="after TensorFlow started"):
        set_cpu_math("bfloat16")
    import os

    assert os.environ["ONEDNN_DEFAULT_FPMATH_MODE"] == "BF16"


def test_no_warning_when_the_mode_is_already_set(monkeypatch, recwarn):
    monkeypatch.setenv("ONEDNN_DEFAULT_FPMATH_MODE", "STRICT")
    set_cpu_math("float32")
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    amx, plain = tmp_path / "amx", tmp_path / "plain"
    amx.write_text("flags\t\t: fpu avx512f amx_bf16 amx_tile\n")
    plain.write_text("flags\t\t: fpu avx2 avx512f\n")
    # AVX512-BF16 without AMX: oneDNN ignores the mode there (results stay float32).
    avx512_bf16 = tmp_path / "avx512_bf16"
    avx512_bf16.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_has_bf16(amx) and not cpu_has_bf16(plain) and not cpu_has_bf16(avx512_bf16)
    assert not cpu_has_bf16(tmp_path / "missing")


def test_config_key_is_validated(tmp_path):
    assert load_config(None, ["train.cpu_math=bfloat16"]).train.cpu_math == "bfloat16"
    with pytest.raises(ConfigError, match="train.cpu_math"):
        load_config(None, ["train.cpu_math=half"])


def test_freeze_matches_the_live_graph_and_keeps_the_weights_it_read():
    import keras
    import numpy as np
    import tensorflow as tf

    from gradtts_tf.runtime import freeze

    layer = keras.layers.Conv1D(3, 3, padding="same", name="conv")
    layer.build((None, None, 2))
    fn = lambda x, n: {"y": layer(x) * tf.cast(n, tf.float32)[:, None, None]}  # noqa: E731
    spec = [tf.TensorSpec([None, None, 2], tf.float32), tf.TensorSpec([None], tf.int32)]
    frozen = freeze(fn, spec)
    x = np.random.default_rng(0).normal(size=(2, 7, 2)).astype(np.float32)  # [B, T, C]
    n = np.array([1, 2], np.int32)
    live = fn(tf.constant(x), tf.constant(n))["y"].numpy()
    out = frozen(x, n)  # numpy in, the function's structure out
    np.testing.assert_allclose(out["y"].numpy(), live, rtol=1e-6, atol=1e-6)
    # Dynamic dims stay dynamic: another length and batch, no retracing.
    assert frozen(x[:1, :4], n[:1])["y"].shape == (1, 4, 3)
    assert frozen.experimental_get_tracing_count() == 1
    # Weights were read once: changing the variables does not change the frozen graph.
    layer.kernel.assign(layer.kernel * 0.0)
    np.testing.assert_allclose(frozen(x, n)["y"].numpy(), live, rtol=1e-6, atol=1e-6)
    assert not np.allclose(fn(tf.constant(x), tf.constant(n))["y"].numpy(), live)


def _rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_trim")
def test_release_free_memory_hands_back_freed_heap_pages():
    """Blocks freed between live ones stay resident until `release_free_memory`."""
    blocks = [b"\x01" * 16384 for _ in range(10000)]  # 156 MiB of heap blocks, touched
    survivors = blocks[::16]  # keep every 16th: the freed ones are not at the heap's top
    del blocks
    before = _rss_mib()
    assert release_free_memory()
    after = _rss_mib()
    del survivors  # alive until here: they pin the freed blocks between them
    assert before - after > 100, (before, after)


def test_release_tracing_memory_runs_once_per_phase(monkeypatch):
    calls = []
    monkeypatch.setattr(callbacks, "release_free_memory", lambda: calls.append(1))
    callback = callbacks.ReleaseTracingMemory()
    for batch in range(3):
        callback.on_train_batch_end(batch)
    assert len(calls) == 1
    callback.on_test_end()
    callback.on_test_end()
    assert len(calls) == 2
