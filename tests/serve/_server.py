"""Helpers of the server's tests: apps on the demo voice, a live uvicorn, the program.

(The demo voice itself, loaded once, is the ``demo_synth`` fixture of
``tests/conftest.py``.)"""

import socket
import threading
import time
from contextlib import contextmanager

import uvicorn

from gradtts_tf import Synthesizer
from gradtts_tf.serve import ServerSettings, create_app

# Two steps keep requests fast; the limits keep fuzzed requests small.
FAST = {"steps": 2}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(app):
    """Runs ``app`` under uvicorn on a free 127.0.0.1 port in a thread; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)


def make_app(synth: Synthesizer, **settings):
    """An app serving ``synth`` as ``demo`` (no warm-up: the tests trace as they go)."""
    return create_app(ServerSettings(warmup=False, **settings), {"demo": synth})


@contextmanager
def serve_process(*args: str, log_path=None):
    """Runs the ``gradtts-serve`` program on a free port; yields ``(url, process)``."""
    import os
    import subprocess
    import sys
    import urllib.request

    port = free_port()
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "gradtts_tf.serve", "--port", str(port), *args],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gradtts-serve exited with {proc.returncode}")
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("gradtts-serve did not start") from None
                time.sleep(0.5)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if log_path:
            log.close()
