"""The HTTP API on the demo voice: audio equal to the Synthesizer's, streaming equal to
whole requests, the OpenAI-style endpoint, micro-batching, and 4xx/503 for bad or
excess requests."""

import io
import json
import threading

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from gradtts_tf.audio import mel_from_config
from gradtts_tf.serve import ServerSettings
from gradtts_tf.serve.audio import pcm16, wav_stream_header
from tests.serve._server import FAST, make_app

TWO = "The sun rose over the hills. Birds began to sing."


@pytest.fixture(scope="module")
def client(demo_synth):
    # Exact batches: each request's audio is what the Synthesizer makes of it alone.
    with TestClient(make_app(demo_synth, max_chars=300, max_steps=12, max_padding=0)) as c:
        yield c


def _pcm(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<i2")


def _concurrently(client: TestClient, bodies: list[dict]) -> list:
    """POSTs every body to /api/tts at once, each from its own thread; the responses."""
    results = [None] * len(bodies)

    def ask(k):
        results[k] = client.post("/api/tts", json=bodies[k])

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """Relative L2 distance. Batched and batch-1 kernels round differently (mels equal
    to ~1e-5), which Griffin-Lim's phase iterations grow to under 1e-2 of the audio;
    another seed's audio is as far away as audio gets (~1)."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_voices_health_and_schema(client, demo_synth):
    voices = client.get("/api/voices").json()
    assert voices["default"] == "demo" and voices["max_chars"] == 300
    (demo,) = voices["voices"]
    defaults = demo_synth.config.inference
    assert demo == {"name": "demo", "speakers": 1, "sample_rate": 22050,
                    "steps": defaults.steps, "temperature": defaults.temperature,
                    "length_scale": defaults.length_scale, "solver": defaults.solver,
                    "vocoder": "GriffinLimVocoder"}
    assert voices["solvers"] == ["euler", "euler-sde", "dpmpp-2m", "ml-sde"]
    assert client.get("/health").json()["status"] == "ok"
    schema = client.get("/openapi.json").json()
    for path in ("/api/tts", "/api/tts/stream", "/api/voices", "/health", "/v1/audio/speech"):
        assert path in schema["paths"]
    fields = schema["components"]["schemas"]["TTSRequest"]["properties"]
    assert fields["text"]["maxLength"] == 300 and fields["steps"]["anyOf"][0]["maximum"] == 12
    assert fields["speaker"]["anyOf"][0]["maximum"] == 0
    assert all(f.get("description") for f in fields.values())
    page = client.get("/")
    assert page.status_code == 200 and "/api/tts/stream" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text


def test_wav_equals_the_synthesizer_and_headers_report_it(client, demo_synth):
    r = client.post("/api/tts", json={"text": TWO, "seed": 11, **FAST})
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    audio, rate = sf.read(io.BytesIO(r.content), dtype="int16")
    want, _ = demo_synth.tts(TWO, seed=11, **FAST)
    assert rate == 22050
    np.testing.assert_array_equal(audio, _pcm(pcm16(want)))
    assert r.headers["x-seed"] == "11" and r.headers["x-sample-rate"] == "22050"
    assert float(r.headers["x-audio-seconds"]) == pytest.approx(len(want) / 22050, abs=1e-3)
    assert float(r.headers["x-real-time-factor"]) > 0
    # GET with query parameters, raw PCM: the same samples.
    g = client.get("/api/tts", params={"text": TWO, "seed": 11, "format": "pcm", **FAST})
    assert g.status_code == 200 and g.headers["content-type"] == "application/octet-stream"
    np.testing.assert_array_equal(_pcm(g.content), audio)
    # No seed: a random one, sent back, that reproduces the audio.
    r1 = client.post("/api/tts", json={"text": "Hello.", "format": "pcm", **FAST})
    r2 = client.post("/api/tts", json={"text": "Hello.", "format": "pcm",
                                       "seed": int(r1.headers["x-seed"]), **FAST})
    assert r1.content == r2.content


@pytest.mark.parametrize("solver", ["dpmpp-2m", "ml-sde"])
def test_a_request_names_its_solver(client, demo_synth, solver):
    r = client.post("/api/tts", json={"text": "Hello there.", "seed": 3, "format": "pcm",
                                      "solver": solver, **FAST})
    assert r.status_code == 200, r.text
    want, _ = demo_synth.tts("Hello there.", seed=3, solver=solver, **FAST)
    euler, _ = demo_synth.tts("Hello there.", seed=3, solver="euler", **FAST)
    np.testing.assert_array_equal(_pcm(r.content), _pcm(pcm16(want)))
    assert not np.array_equal(_pcm(r.content), _pcm(pcm16(euler)))


def test_stream_sends_sentences_that_join_to_the_whole_audio(client):
    whole = client.post("/api/tts", json={"text": TWO, "seed": 4, "format": "pcm", **FAST})
    with client.stream("POST", "/api/tts/stream",
                       json={"text": TWO, "seed": 4, "format": "pcm", **FAST}) as r:
        assert r.status_code == 200 and r.headers["x-sentences"] == "2"
        chunks = [c for c in r.iter_raw() if c]
    assert len(chunks) >= 2  # the sentences arrive separately
    # The same audio: the same pieces, noise and pauses; only the batching differs
    # (the whole request encodes its sentences together), which rounds differently.
    streamed = _pcm(b"".join(chunks)).astype(float)
    want = _pcm(whole.content).astype(float)
    assert streamed.shape == want.shape
    assert _rel(streamed, want) < 2e-2
    wav = client.post("/api/tts/stream", json={"text": TWO, "seed": 4, **FAST})
    assert wav.content[:44] == wav_stream_header(22050)
    assert _rel(_pcm(wav.content[44:]).astype(float), want) < 2e-2


def test_openai_speech_request(client):
    body = {"model": "tts-1", "input": TWO, "voice": "alloy", "response_format": "pcm"}
    normal = client.post("/v1/audio/speech", json=body)
    fast = client.post("/v1/audio/speech", json={**body, "speed": 2.0, "voice": "demo"})
    assert normal.status_code == 200 and fast.status_code == 200
    ratio = len(fast.content) / len(normal.content)
    assert 0.4 < ratio < 0.65  # twice as fast; the sentence pause stays
    unknown = client.post("/v1/audio/speech", json={"model": "tts-1", "input": "Hi.",
                                                     "voice": "someone"})
    assert unknown.status_code == 422 and "'demo'" in unknown.text
    # With one of OpenAI's voice names, a voice's name as the model picks it.
    by_model = client.post("/v1/audio/speech", json={"model": "demo", "input": "Hi.",
                                                      "voice": "nova"})
    assert by_model.status_code == 200 and by_model.content[:4] == b"RIFF"
    assert client.post("/v1/audio/speech", json={**body, "response_format": "mp3"}
                       ).status_code == 422


@pytest.mark.parametrize("body, says", [
    ({"text": ""}, "at least 1 character"),
    ({"text": "😀 !!"}, "text: cannot be spoken"),
    ({"text": "a" * 301}, "at most 300 characters"),
    ({"text": "Hi.", "voice": "nobody"}, "demo"),
    ({"text": "Hi.", "speaker": 1}, "less than or equal to 0"),
    ({"text": "Hi.", "seed": True}, "expected a number, got a boolean"),
    ({"text": "Hi.", "steps": 0}, "greater than or equal to 1"),
    ({"text": "Hi.", "steps": 13}, "less than or equal to 12"),
    ({"text": "Hi.", "steps": "many"}, "valid integer"),
    ({"text": "Hi.", "temperature": 0}, "greater than or equal to 0.1"),
    ({"text": "Hi.", "length_scale": 1e9}, "less than or equal to 4"),
    ({"text": "Hi.", "seed": -1}, "greater than or equal to 0"),
    ({"text": "Hi.", "format": "ogg"}, "'wav' or 'pcm'"),
    ({"text": "Hi.", "solver": "heun"}, "'dpmpp-2m'"),
    ({"text": "Hi.", "volume": 3}, "Extra inputs are not permitted"),
    ({}, "Field required"),
])
def test_bad_requests_get_422_saying_what_was_wrong(client, body, says):
    for path in ("/api/tts", "/api/tts/stream"):
        r = client.post(path, json=body)
        assert r.status_code == 422, (path, r.text)
        assert says in json.dumps(r.json()), r.text


def test_malformed_json_and_wrong_types_are_422(client):
    r = client.post("/api/tts", content=b"{not json", headers={"content-type":
                                                                "application/json"})
    assert r.status_code == 422 and "JSON decode error" in r.text
    assert client.post("/api/tts", json=["Hi."]).status_code == 422
    assert client.get("/api/tts").status_code == 422
    refused = client.post("/api/voices")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET"
    assert client.put("/api/tts", json={}).headers["allow"] == "GET, POST"
    assert client.post("/api/tts", content=b"\xff\xfe", headers={
        "content-type": "application/json"}).status_code in (400, 422)


def test_concurrent_requests_are_batched_and_each_equals_its_own(demo_synth):
    texts = [f"Request number {k} is here." for k in range(4)]
    with TestClient(make_app(demo_synth, batch_wait_ms=300, max_batch=8,
                             max_padding=0)) as c:
        results = _concurrently(c, [{"text": text, "seed": 100 + k, "format": "pcm", **FAST}
                                    for k, text in enumerate(texts)])
        stats = c.get("/health").json()["voices"]["demo"]
    assert stats["largest_batch"] >= 2 and stats["jobs"] == 4 and stats["batches"] < 4
    for k, r in enumerate(results):
        want = demo_synth.tts(texts[k], seed=100 + k, **FAST)[0]
        other = demo_synth.tts(texts[k], seed=99, **FAST)[0]
        got = _pcm(r.content) / 32767.0
        assert got.shape == want.shape
        assert _rel(got, want) < 2e-2 and _rel(other, want) > 0.5, k


def test_full_queue_is_503_with_retry_after_and_slow_requests_time_out(demo_synth):
    long_text = " ".join(["This sentence keeps the voice busy for a while."] * 6)
    with TestClient(make_app(demo_synth, queue_size=1, max_batch=1, batch_wait_ms=0)) as c:
        results = _concurrently(c, [{"text": long_text, **FAST}] * 6)
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) >= 1 and codes.count(503) >= 1, codes
    busy = next(r for r in results if r.status_code == 503)
    assert busy.headers["retry-after"] == "1" and "queued" in busy.json()["detail"]
    with TestClient(make_app(demo_synth, timeout=0.01)) as c:
        r = c.post("/api/tts", json={"text": long_text, **FAST})
    assert r.status_code == 503 and "not finished within 0.01 s" in r.json()["detail"]
    assert "retry-after" in r.headers


def test_padded_batches_are_fuller_and_stay_close(demo_synth):
    texts = ["The garden gate was open.", "The kitchen door was shut tight.",
             "The window by the stairs was open."]
    with TestClient(make_app(demo_synth, batch_wait_ms=300, max_batch=8,
                             max_padding=0.25)) as c:
        results = _concurrently(c, [{"text": text, "seed": k, "format": "pcm", **FAST}
                                    for k, text in enumerate(texts)])
        stats = c.get("/health").json()["voices"]["demo"]
    assert stats["largest_batch"] == 3 and stats["batches"] == 1
    def mel(audio):  # Griffin-Lim's phases differ run to run: compare spectra
        return mel_from_config(audio[None], demo_synth.config.audio).numpy()[0]

    for k, r in enumerate(results):
        alone = demo_synth.tts(texts[k], seed=k, **FAST)[0]
        other = demo_synth.tts(texts[k], seed=k + 50, **FAST)[0]
        got = (_pcm(r.content) / 32767.0).astype(np.float32)
        assert got.shape == alone.shape
        # Padded up to a quarter, the spectrum moves with its batch about as much as
        # with another seed (the voice's temperature makes seeds close).
        assert _rel(mel(got), mel(alone)) < 2 * _rel(mel(other), mel(alone)) < 0.2, k


def test_settings_refuse_bad_values():
    for bad in ({"max_batch": 0}, {"max_padding": -0.1}, {"timeout": 0},
                {"voices": ()}, {"temperature_range": (2.0, 1.0)}):
        with pytest.raises(ValueError):
            ServerSettings(**bad)
