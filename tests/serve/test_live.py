"""The server as a program on a real socket: a client leaving mid-stream frees its
work, SIGTERM finishes requests in flight, and a property-based fuzz of the OpenAPI
schema finds no server error."""

import http.client
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.serve._server import FAST, live_server, make_app, serve_process

SENTENCES = " ".join(f"This is sentence number {k}, spoken in turn." for k in range(8))


def _health(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/health", timeout=10) as r:
        return json.load(r)["voices"]["demo"]


def test_client_leaving_a_stream_frees_its_work(demo_synth):
    with live_server(make_app(demo_synth)) as url:
        host, port = url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("POST", "/api/tts/stream", json.dumps(
            {"text": SENTENCES, "seed": 1, "format": "pcm", **FAST}),
            {"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("X-Sentences") == "8"
        assert len(response.read1(4096)) > 0  # the first sentence has arrived
        conn.sock.close()  # the client leaves
        conn.close()
        time.sleep(3)  # long enough for all eight sentences, had they been queued
        stats = _health(url)
    # One sentence is sent, one more synthesised ahead, perhaps a third started:
    # the other five are never synthesised.
    assert stats["jobs"] <= 3, stats
    assert stats["pending"] == 0


def test_client_leaving_before_its_turn_frees_its_work(demo_synth):
    with live_server(make_app(demo_synth, max_batch=1, batch_wait_ms=0)) as url:
        host, port = url.removeprefix("http://").split(":")
        busy = threading.Thread(target=urllib.request.urlopen, args=(urllib.request.Request(
            f"{url}/api/tts", json.dumps({"text": SENTENCES, **FAST}).encode(),
            {"Content-Type": "application/json"}),), kwargs={"timeout": 120})
        busy.start()  # keeps the voice's worker busy
        time.sleep(0.5)
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("POST", "/api/tts", json.dumps({"text": "Never mind.", **FAST}),
                     {"Content-Type": "application/json"})
        time.sleep(0.5)  # queued behind the busy request
        conn.sock.close()  # the client leaves before its turn
        conn.close()
        busy.join(120)
        time.sleep(1.0)
        stats = _health(url)
    assert stats["jobs"] == 1 and stats["cancelled"] == 1, stats


@pytest.mark.slow
def test_sigterm_finishes_requests_in_flight_then_exits(tmp_path):
    with serve_process("--no-warmup", log_path=tmp_path / "server.log") as (url, proc):
        result = {}

        def ask():
            body = json.dumps({"text": SENTENCES, "seed": 2, "format": "pcm", **FAST})
            req = urllib.request.Request(f"{url}/api/tts", body.encode(),
                                         {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=120) as r:
                result["status"], result["audio"] = r.status, r.read()
                result["seconds"] = float(r.headers["X-Audio-Seconds"])

        client = threading.Thread(target=ask)
        client.start()
        time.sleep(1.0)  # the request is queued or running
        proc.send_signal(signal.SIGTERM)
        client.join(120)
        # uvicorn shuts down gracefully, then re-raises the signal (exit status -15),
        # as service managers expect of a program stopped by SIGTERM.
        assert proc.wait(60) in (0, -signal.SIGTERM)
        log = (tmp_path / "server.log").read_text()
        assert "stopping: finishing the requests in flight" in log and "stopped" in log
    assert result["status"] == 200
    samples = len(result["audio"]) // 2
    assert samples / 22050 == pytest.approx(result["seconds"], abs=1e-3) and samples > 8 * 22050


@pytest.mark.slow
def test_schema_fuzz_finds_no_server_error(tmp_path):
    """Schemathesis sends schema-valid and schema-violating requests to every
    operation. Every check runs but one: "positive data acceptance" expects every
    schema-valid request to succeed, while a TTS request can be valid JSON yet
    unspeakable (emoji, control characters), which the server rightly refuses with 422.
    """
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if st is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    log = tmp_path / "server.log"
    with serve_process("--max-chars", "60", "--max-steps", "3", log_path=log) as (url, proc):
        run = subprocess.run(
            [st, "run", f"{url}/openapi.json", "--checks", "all",
             "--exclude-checks", "positive_data_acceptance", "--max-examples", "6",
             "--seed", "1", "--max-time", "100", "--generation-database", "none",
             "--no-color", "--request-timeout", "120",
             # the first request at a new step count traces its graph (seconds)
             "--max-response-time", "120"],
            capture_output=True, text=True, cwd=tmp_path, timeout=600,
        )
        assert proc.poll() is None, "the server stopped"
        stats = _health(url)
    report = run.stdout + run.stderr
    (tmp_path / "schemathesis.txt").write_text(report)
    assert run.returncode == 0, report[-4000:]
    assert "generated" in report and stats["jobs"] > 10
    assert "Traceback" not in log.read_text()
