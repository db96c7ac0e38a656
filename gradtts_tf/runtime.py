"""Process-wide CPU settings of the TensorFlow runtime.

TensorFlow runs convolutions and matrix products on x86 CPUs through oneDNN. oneDNN can
compute float32 layers with bfloat16 inputs and float32 accumulation ("fpmath mode"),
which CPUs with AMX units run faster (BENCHMARKS.md, ``keras-bf16``). Everything else
(weights, activations, GroupNorm, the ODE state) stays float32, so it is a precision
choice of the convolutions and matmuls only, like TF32 on NVIDIA GPUs. On a CPU with
AVX512-BF16 but no AMX, TensorFlow 2.16's oneDNN ignores the mode (its results stay
exactly float32). oneDNN reads the setting once, when the process creates its first
primitive: it must be chosen before any layer runs.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

CPU_MATH = ("float32", "bfloat16")
# The synthesis tools' --cpu-math help: the mode also picks `Synthesizer`'s decoder_dtype.
CPU_MATH_SYNTHESIS_HELP = (
    "float32 (exact) or bfloat16: convolutions and matmuls from bfloat16 inputs with "
    "float32 accumulation, and the diffusion U-Net's activations in bfloat16; faster on "
    "AMX CPUs"
)
_ONEDNN_ENV = "ONEDNN_DEFAULT_FPMATH_MODE"
_ENV_VALUE = {"float32": "STRICT", "bfloat16": "BF16"}


def cpu_has_bf16(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """Whether oneDNN's bfloat16 math mode takes effect here: a CPU with AMX units.

    AVX512-BF16 alone is not enough: on such a CPU (no AMX) TensorFlow 2.16's oneDNN
    computes convolutions and matmuls exactly as in float32 under the mode.
    """
    try:
        flags = Path(cpuinfo).read_text()
    except OSError:
        return False
    return "amx_bf16" in flags


def release_free_memory() -> bool:
    """Collects Python garbage and hands the C heap's free pages back to the system.

    Tracing and optimising a training step's graph allocates several hundred MiB of
    short-lived objects; once freed, glibc keeps most of their pages in its heaps,
    scattered between live blocks, so the process's resident memory stays that much
    higher for the whole run. ``malloc_trim`` returns those pages, which lowers the
    peak memory of a training run (BENCHMARKS.md, "Training step"). The
    trainer calls this once after the first training step and after the first
    validation (`gradtts_tf.training.callbacks.ReleaseTracingMemory`).

    Returns:
        True if glibc's ``malloc_trim`` ran and released memory; False if it released
        nothing or the C library has no ``malloc_trim`` (not glibc).
    """
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        malloc_trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    malloc_trim.argtypes = [ctypes.c_size_t]
    return bool(malloc_trim(0))


def _tensorflow_started() -> bool:
    """Best effort: True once TensorFlow's eager context exists (ops may have run)."""
    from gradtts_tf.keras_internals import eager_context_started

    return eager_context_started()


def set_cpu_math(mode: str) -> None:
    """Chooses the precision of oneDNN convolutions and matmuls for this process.

    Call it before any TensorFlow layer runs (the command-line tools do, from their
    ``--cpu-math`` flag and ``train.cpu_math``); later calls have no effect on
    primitives oneDNN already made, and a warning says so.

    Args:
        mode: ``"float32"`` (exact float32, the default of TensorFlow) or
            ``"bfloat16"`` (float32 layers computed from bfloat16-rounded inputs with
            float32 accumulation: faster on CPUs with AMX, about 3
            significant digits per product).

    Raises:
        ValueError: If ``mode`` is not one of `CPU_MATH`.
    """
    if mode not in CPU_MATH:
        raise ValueError(f"cpu math: expected one of {', '.join(CPU_MATH)}, got {mode!r}")
    value = _ENV_VALUE[mode]
    if os.environ.get(_ONEDNN_ENV, "STRICT").upper() == value:
        return
    if _tensorflow_started():
        warnings.warn(
            f"cpu math {mode!r} requested after TensorFlow started running ops: oneDNN "
            "keeps the precision it started with; choose it before building the model "
            f"(or set {_ONEDNN_ENV}={value} in the environment)",
            RuntimeWarning,
            stacklevel=2,
        )
    if mode == "bfloat16" and not cpu_has_bf16():
        warnings.warn(
            "cpu math 'bfloat16': this CPU has no AMX units, so oneDNN ignores the "
            "mode (float32 results) and it will not be faster",
            RuntimeWarning,
            stacklevel=2,
        )
    os.environ[_ONEDNN_ENV] = value


def freeze(fn: Callable, input_signature: Sequence[Any]) -> Callable:
    """``fn`` traced once as a graph whose variables are constants (for inference).

    TensorFlow's oneDNN convolutions keep a converted copy of a *constant* filter
    between calls but convert a variable's filter on every call, so inference graphs
    run faster with the weights frozen in (BENCHMARKS.md measures synthesis this way).
    The weights are read once, here: later changes to the
    variables are not seen by the returned function.

    Args:
        fn: A function of tensors, returning a tensor or a nest of tensors.
        input_signature: One `tf.TensorSpec` per argument (``None`` dims stay dynamic).

    Returns:
        A callable with ``fn``'s arguments and output structure (and a tf.function's
        ``experimental_get_tracing_count``).
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    specs = list(input_signature)
    traced = tf.function(fn, input_signature=specs)
    concrete = traced.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    structure = concrete.structured_outputs

    def call(*args):
        # A frozen function takes tensors only (a tf.function also converts arrays).
        tensors = [tf.convert_to_tensor(a, s.dtype) for a, s in zip(args, specs, strict=True)]
        return tf.nest.pack_sequence_as(structure, frozen(*tensors), expand_composites=True)

    # Same introspection as a tf.function: how often it was traced (once).
    call.experimental_get_tracing_count = traced.experimental_get_tracing_count
    return call
