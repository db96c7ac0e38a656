"""Shared helpers of the benchmark scripts: threads, timing, machine info, JSON, tables.

Nothing here imports TensorFlow or PyTorch at module level: each script calls
`configure_threads` first (it sets the OpenMP/MKL environment, which native libraries
read only when they load), then imports the frameworks it measures. That also keeps
per-contender subprocesses free of the other framework, so their peak memory is their
own.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_THREADS = 2

# Packages whose versions every result file records (absent ones are "not installed").
VERSIONED_PACKAGES = (
    "tensorflow", "keras", "numpy", "torch", "grad-tts", "monotonic-alignment-search",
    "ai-edge-litert", "einops", "Cython",
)
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def configure_threads(threads: int = DEFAULT_THREADS) -> None:
    """Pins native thread pools to ``threads`` before TF/torch/OpenMP libraries load.

    Sets ``OMP_NUM_THREADS`` & co (OpenMP: torch and the Cython MAS kernel's
    ``prange``). Call `apply_framework_threads` after importing a framework to pin
    its own pools to the same count.
    """
    for name in _THREAD_ENV:
        os.environ[name] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def apply_framework_threads(threads: int, tf: Any = None, torch: Any = None) -> dict[str, Any]:
    """Sets TensorFlow's and/or PyTorch's intra- and inter-op pools to ``threads``.

    Must run before the framework executes its first op.

    Returns:
        The settings as read back from the frameworks (recorded in result files).
    """
    settings: dict[str, Any] = {"threads": threads}
    if tf is not None:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        settings["tf_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
        settings["tf_inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
    if torch is not None:
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # already set (or parallel work started) in this process
            pass
        settings["torch_num_threads"] = torch.get_num_threads()
        settings["torch_interop_threads"] = torch.get_num_interop_threads()
    return settings


def measure(
    fn: Callable[[], Any],
    warmup: int,
    reps: int,
    label: str = "",
    verbose: bool = True,
    after_warmup: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Times ``fn()`` after ``warmup`` untimed calls; returns `summarize` of ``reps`` runs.

    ``fn`` must block until its work is done (return host values, call ``.numpy()``).
    The first warm-up call's time is kept as ``first_s`` (tracing/compilation included).
    ``after_warmup`` runs between the warm-up and the timed calls (e.g. `reset_peak_rss`).
    """
    first = None
    for i in range(warmup):
        start = time.perf_counter()
        fn()
        if i == 0:
            first = time.perf_counter() - start
    if after_warmup is not None:
        after_warmup()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    stats = summarize(times)
    stats["first_s"] = first
    if verbose and label:
        print(f"  {label}: median {stats['median_s'] * 1e3:.2f} ms over {reps} runs", flush=True)
    return stats


def measure_phases(
    fn: Callable[[], dict[str, float]], warmup: int, reps: int
) -> dict[str, dict[str, Any]]:
    """Like `measure` for a ``fn`` that times its own phases.

    ``fn()`` returns ``{phase: seconds}`` (e.g. ``{"mel": ..., "total": ...}``, cumulative
    from the call's start); each phase is summarised over ``reps`` timed calls. The
    first warm-up call's phase times are kept as ``first_s``.
    """
    first: dict[str, float] = {}
    for i in range(warmup):
        out = fn()
        if i == 0:
            first = out
    runs = [fn() for _ in range(reps)]
    stats = {}
    for phase in runs[0] if runs else first:
        stats[phase] = summarize([r[phase] for r in runs])
        stats[phase]["first_s"] = first.get(phase)
    return stats


def summarize(times: Sequence[float]) -> dict[str, Any]:
    """Median, quartiles, min, max and all raw times (seconds) of repeated runs."""
    times = list(times)
    if not times:
        return {"n": 0, "median_s": float("nan"), "times_s": []}
    ordered = sorted(times)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {
        "n": len(times),
        "median_s": statistics.median(ordered),
        "q1_s": q1,
        "q3_s": q3,
        "min_s": ordered[0],
        "max_s": ordered[-1],
        "times_s": times,
    }


def memory_kib() -> dict[str, int]:
    """This process's current (``VmRSS``) and peak (``VmHWM``) resident memory in KiB."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out["rss_kib" if key == "VmRSS" else "peak_rss_kib"] = int(value.split()[0])
    except OSError:  # not Linux
        out["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return out


def reset_peak_rss() -> dict[str, int]:
    """Restarts the peak (``VmHWM``) count from the current RSS; returns the values before.

    Linux only (``/proc/self/clear_refs``); elsewhere the peak is left as it is.
    """
    before = memory_kib()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return before


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> list[str]:
    """The SIMD flags that decide kernel choice (AVX2/AVX-512/AMX)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "sse4")))
    except OSError:
        pass
    return []


def _memory_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
            timeout=10, check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    """Installed versions of the measured stacks."""
    out = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """CPU model, cores, memory, load, OS, versions, date, commit and thread settings."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "logical_cores": os.cpu_count(),
        "cores_usable": affinity,
        "memory_gib": _memory_total_gib(),
        # A loaded machine makes every timing meaningless: the load is recorded with them.
        "load_average_1_5_15": list(os.getloadavg()),
        "platform": platform.platform(),
        "versions": versions(),
        "git_commit": _git_commit(),
        "threads": threads,
        "thread_env": {k: os.environ.get(k) for k in (*_THREAD_ENV, "TF_ENABLE_ONEDNN_OPTS")},
        "command": " ".join([os.path.relpath(sys.executable, ROOT), "-m", *_module_argv()]),
    }


def _module_argv() -> list[str]:
    script = Path(sys.argv[0]).resolve()
    try:
        module = ".".join(script.relative_to(ROOT).with_suffix("").parts)
    except ValueError:
        module = str(script)
    return [module, *sys.argv[1:]]


def write_json(path: str | os.PathLike | None, payload: dict[str, Any]) -> None:
    """Writes ``payload`` as indented JSON (no-op for ``None``)."""
    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    print(f"wrote {path}")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    return str(obj)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain fixed-width text table of ``rows`` (dicts) over ``columns``."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            if value != value:  # NaN
                return "-"
            return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
        return str(value)

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(b[i]) for b in body)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)


def print_header(title: str, info: dict[str, Any]) -> None:
    """Prints the benchmark title and the machine it runs on."""
    v = info["versions"]
    print(f"== {title} ==")
    print(
        f"{info['date_utc']}  {info['cpu_model']}  {info['cores_usable']} cores usable "
        f"({info['logical_cores']} logical)  load {info['load_average_1_5_15'][0]:.2f}"
    )
    print(
        f"python {v['python']}  tensorflow {v['tensorflow']}  keras {v['keras']}  "
        f"torch {v['torch']}  numpy {v['numpy']}  threads {info['threads']}"
    )
    if info["load_average_1_5_15"][0] > 0.5 * (info["cores_usable"] or 1):
        print("WARNING: the machine is busy (load average above half the cores): timings are "
              "not representative")


def run_worker(
    module: str, args: Sequence[str], timeout: float | None = None
) -> dict[str, Any]:
    """Runs ``python -m module args --worker-out FILE`` and returns the JSON it wrote.

    Each contender runs in its own process so that its peak memory and thread pools
    are its own. The worker's output is streamed through.

    Raises:
        RuntimeError: If the worker fails or writes no result.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gradtts_bench_") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", module, *args, "--worker-out", str(out)]
        proc = subprocess.run(cmd, cwd=ROOT, timeout=timeout)
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"worker failed ({proc.returncode}): {' '.join(cmd)}")
        return json.loads(out.read_text())


def add_common_args(parser: Any, reps: int | None, warmup: int) -> None:
    """The flags every script shares: threads, repetitions (unless None), warm-up, JSON."""
    parser.add_argument(
        "--threads", type=int, default=DEFAULT_THREADS,
        help="intra/inter-op threads of every framework, and OMP_NUM_THREADS (default 2)",
    )
    if reps is not None:
        parser.add_argument("--reps", type=int, default=reps, help=f"timed runs (default {reps})")
    parser.add_argument(
        "--warmup", type=int, default=warmup, help=f"untimed runs first (default {warmup})"
    )
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
