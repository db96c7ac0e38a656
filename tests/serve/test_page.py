"""The server's web page in real headless Chromium (playwright-core from
``export/web/node_modules``, Debian's ``/usr/bin/chromium``): type, speak, the streamed
audio arrives and plays, the download is the same audio; a screenshot is kept."""

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import require
from tests.serve._server import live_server, make_app

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "export" / "web"
CHROMIUM = "/usr/bin/chromium"
TEXT = "Hello from the server. The second sentence follows."


@pytest.mark.slow
def test_page_speaks_streams_and_downloads(demo_synth, tmp_path):
    node = shutil.which("node")
    require(node is not None, "node not found: run `make web-deps`")
    require((WEB / "node_modules" / "playwright-core").is_dir(),
            "export/web/node_modules missing: run `make web-deps`")
    require(Path(CHROMIUM).is_file(), f"{CHROMIUM} not found: run `make web-deps`")
    screenshot = tmp_path / "server_page.png"
    request = {
        "chromium": CHROMIUM, "user_data_dir": os.fspath(tmp_path / "profile"),
        "screenshot": os.fspath(screenshot), "download": os.fspath(tmp_path / "dl.wav"),
        "text": TEXT, "steps": 4, "seed": 21, "speed": 1.25, "timeout_ms": 90000,
    }
    with live_server(make_app(demo_synth)) as url:
        request["url"] = url + "/"
        (tmp_path / "request.json").write_text(json.dumps(request))
        proc = subprocess.run(
            [node, os.fspath(WEB / "tests" / "serve_page_test.mjs"),
             os.fspath(tmp_path / "request.json")],
            capture_output=True, text=True, timeout=300, cwd=WEB,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    print(f"screenshot: {screenshot}")
    assert summary["voices"] == ["demo"]
    assert summary["page_errors"] == [] and summary["requests_outside"] == []
    assert "Error 422" in summary["refused"] and "cannot be spoken" in summary["refused"]
    result = summary["result"]
    # The audio the page played is what the Synthesizer makes of the same request.
    length_scale = demo_synth.config.inference.length_scale / 1.25
    want, rate = demo_synth.tts(TEXT, steps=4, seed=21, length_scale=length_scale)
    assert result["played"] and result["seed"] == 21 and result["sampleRate"] == rate
    assert result["audioSeconds"] == pytest.approx(len(want) / rate, abs=1e-3)
    assert 1.0 < result["audioSeconds"] < 8.0
    assert 0 < result["firstAudio"] < result["total"]  # the second sentence came later
    assert summary["stats"]["rtf"] and summary["status"].startswith("Done")
    # The download link speaks the same request again as a WAV file: the same audio.
    audio, sr = sf.read(io.BytesIO((tmp_path / "dl.wav").read_bytes()), dtype="float32")
    assert sr == rate and audio.shape == want.shape
    np.testing.assert_allclose(audio, want, atol=2 / 32767)
    assert screenshot.stat().st_size > 10_000
