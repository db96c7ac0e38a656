"""A bound on how long a process may take to exit after an interrupted training run.

`arm_exit_deadline` is what ``train.py`` calls once its Ctrl-C checkpoint is on disk.
"""

from __future__ import annotations

import ctypes
import faulthandler
import sys


class _SigevThread(ctypes.Structure):
    _fields_ = [("function", ctypes.c_void_p), ("attributes", ctypes.c_void_p)]


class _SigevFields(ctypes.Union):
    # struct sigevent is 64 bytes on Linux (glibc and musl); the union pads it.
    _fields_ = [
        ("pad", ctypes.c_int * ((64 - 2 * ctypes.sizeof(ctypes.c_int)
                                 - ctypes.sizeof(ctypes.c_void_p)) // ctypes.sizeof(ctypes.c_int))),
        ("thread", _SigevThread),
    ]


class _Sigevent(ctypes.Structure):
    _fields_ = [("value", ctypes.c_void_p), ("signo", ctypes.c_int), ("notify", ctypes.c_int),
                ("fields", _SigevFields)]


class _Timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("interval", _Timespec), ("value", _Timespec)]


_SIGEV_THREAD = 2  # Linux's values
_CLOCK_MONOTONIC = 1
_exit_timers: list = []  # armed timers stay referenced for the life of the process


def _arm_exit_timer(seconds: float, status: int) -> bool:
    """A POSIX timer whose expiry calls the C library's ``_exit(status)`` on a thread of
    its own (``SIGEV_THREAD``); False where there is no such timer (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if not hasattr(libc, "timer_create"):  # glibc before 2.34 keeps it in librt
            libc = ctypes.CDLL("librt.so.1", use_errno=True)
        exit_fn = ctypes.cast(libc._exit, ctypes.c_void_p).value
        timer_create, timer_settime = libc.timer_create, libc.timer_settime
    except (OSError, AttributeError):
        return False
    # The thread function receives the sigval union, whose int member is the status.
    event = _Sigevent(value=status, notify=_SIGEV_THREAD)
    event.fields.thread.function = exit_fn
    timer = ctypes.c_void_p()
    timer_create.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    if timer_create(_CLOCK_MONOTONIC, ctypes.byref(event), ctypes.byref(timer)) != 0:
        return False
    whole = int(seconds)
    spec = _Itimerspec(value=_Timespec(whole, int((seconds - whole) * 1e9)))
    timer_settime.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    if timer_settime(timer, 0, ctypes.byref(spec), None) != 0:
        return False
    _exit_timers.append(timer)
    return True


def arm_exit_deadline(seconds: float, status: int = 130) -> str:
    """Ends the process with exit ``status`` if it is still running ``seconds`` from now.

    The command line arms it once its Ctrl-C checkpoint is on disk: whatever still
    blocks the way out then (an input-pipeline thread stuck in a read that never
    returns and the iterator's destructor waiting for it, a thread that never ends)
    costs ``seconds`` instead of a process that never exits. Python's tracebacks are
    written to stderr a second before (while faulthandler still runs: not for a hang
    late in interpreter finalisation), so the log shows what was blocking; stdout and
    stderr are flushed now, since the exit skips Python's own flushing.

    The deadline is a C-level timer, not a Python watchdog thread: once interpreter
    shutdown has begun, Python ends every other thread the moment it asks for the GIL,
    and the objects still alive (tf.data iterators among them) are destroyed after that
    point, so a Python thread could not end a hang there. Where the C library has no
    ``SIGEV_THREAD`` timer, faulthandler's watchdog thread (also free of the GIL) ends
    the process instead, with status 1.

    Returns:
        What will end the process: ``"timer"``, ``"faulthandler"`` or ``"none"``.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    armed = _arm_exit_timer(seconds, status)
    try:
        faulthandler.dump_traceback_later(
            max(seconds - 1.0, 0.1) if armed else seconds, exit=not armed,
            file=sys.__stderr__,
        )
    except (AttributeError, OSError, ValueError, RuntimeError):
        # No file descriptor behind stderr: no tracebacks (and no fallback exit).
        return "timer" if armed else "none"
    return "timer" if armed else "faulthandler"
