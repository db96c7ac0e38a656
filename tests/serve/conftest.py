"""The server's fixtures: the demo voice loaded once, apps on it, a live uvicorn."""

import socket
import threading
import time
from contextlib import contextmanager

import pytest
import uvicorn

from gradtts_tf import Synthesizer
from gradtts_tf.serve import ServerSettings, create_app

# Two steps keep requests fast; the limits keep fuzzed requests small.
FAST = {"steps": 2}


@pytest.fixture(scope="session")
def demo_synth() -> Synthesizer:
    return Synthesizer.from_pretrained("demo")


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
