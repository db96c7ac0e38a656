"""The HTTP API and web page: `create_app`.

One `VoiceService` per voice (loaded once, graphs traced once), requests micro-batched
per voice, JSON errors with 4xx codes for anything a client got wrong, 503 with
``Retry-After`` when a queue is full or a request runs out of time. The server keeps
no state between requests, so replicas behind a load balancer need nothing shared.
"""


import logging
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gradtts_tf.serve.audio import MEDIA_TYPES, encode, pcm16, wav_stream_header
from gradtts_tf.serve.batcher import QueueFull
from gradtts_tf.serve.schemas import Error, Health, QueueState, VoiceList, request_models
from gradtts_tf.serve.settings import ServerSettings
from gradtts_tf.serve.voice import ClientGone, RequestError, Timeout, VoiceService, voice_name
from gradtts_tf.solvers import SOLVERS
from gradtts_tf.synthesizer import Synthesizer

log = logging.getLogger(__name__)

# The OpenAI speech API's voice names: /v1/audio/speech speaks them with the default voice.
OPENAI_VOICES = frozenset({"alloy", "ash", "ballad", "coral", "echo", "fable", "nova",
                           "onyx", "sage", "shimmer", "verse"})

ERRORS = {
    400: {"model": Error, "description": "The body is not UTF-8 JSON."},
    422: {"model": Error, "description": "A field is invalid or the text cannot be spoken."},
    503: {"model": Error, "description": "Queue full or out of time; retry after the "
                                         "Retry-After header's seconds."},
}
AUDIO = {200: {"description": "The audio (see `format`); headers X-Seed, X-Sample-Rate, "
                              "X-Audio-Seconds, X-Synthesis-Seconds, X-Real-Time-Factor.",
               "content": {"audio/wav": {}, "application/octet-stream": {}}}}


def load_synthesizers(settings: ServerSettings) -> dict[str, Synthesizer]:
    """Loads each of ``settings.voices`` (names or run folders), keyed by request name.

    Raises:
        ValueError: Two voices with one name.
        FileNotFoundError: A voice that is neither installed nor a run folder.
    """
    synths: dict[str, Synthesizer] = {}
    for voice in settings.voices:
        name = voice_name(voice)
        if name in synths:
            raise ValueError(f"two voices are called {name!r}; give folders distinct names")
        synths[name] = Synthesizer.from_pretrained(voice)
    return synths


def create_app(settings: ServerSettings | None = None,
               synthesizers: dict[str, Synthesizer] | None = None) -> FastAPI:
    """The server's ASGI app.

    Args:
        settings: Limits and batching (default `ServerSettings()`: the demo voice).
        synthesizers: Voices already loaded, by name; ``None`` loads
            ``settings.voices`` (`load_synthesizers`).

    Returns:
        A FastAPI app; its lifespan starts and stops the voices' batchers.
    """
    settings = settings or ServerSettings()
    synths = synthesizers if synthesizers is not None else load_synthesizers(settings)
    names = list(synths)
    max_speaker = max(max(1, s.model.n_spks) for s in synths.values()) - 1
    TTSRequest, SpeechRequest = request_models(settings, names, max_speaker, OPENAI_VOICES)
    services: dict[str, VoiceService] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for name, synth in synths.items():
            services[name] = VoiceService(name, synth, settings)
            await services[name].start()
        log.info("ready: %s", ", ".join(names))
        yield
        log.info("stopping: finishing the requests in flight")
        for service in services.values():
            await service.stop()
        log.info("stopped")

    app = FastAPI(
        title="gradtts-tf", lifespan=lifespan,
        description="Grad-TTS text to speech: WAV or PCM, whole or streamed sentence by "
                    "sentence, and an OpenAI-compatible speech endpoint.",
    )

    # ------------------------------------------------------------ errors

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, e: RequestError):
        return JSONResponse({"detail": str(e)}, status_code=422)

    @app.exception_handler(QueueFull)
    async def _queue_full(request: Request, e: QueueFull):
        return JSONResponse({"detail": f"{e}; retry later"}, status_code=503,
                            headers={"Retry-After": "1"})

    @app.exception_handler(Timeout)
    async def _timeout(request: Request, e: Timeout):
        return JSONResponse({"detail": f"synthesis {e}; retry later or send less text"},
                            status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        headers = dict(e.headers or {})
        if e.status_code == 405:  # list every method of the path, not the first route's
            methods = {m for r in app.routes if getattr(r, "path", None) == request.url.path
                       for m in getattr(r, "methods", None) or ()}
            headers["Allow"] = ", ".join(sorted(methods))
        return JSONResponse({"detail": e.detail}, status_code=e.status_code, headers=headers)

    @app.exception_handler(ClientGone)
    async def _client_gone(request: Request, e: ClientGone):
        return Response(status_code=499)  # nobody reads it: the client has left

    # ------------------------------------------------------------ helpers

    def service(voice: str | None, field: str = "voice") -> VoiceService:
        name = names[0] if voice is None else voice
        if name not in services:
            raise RequestError(field, f"unknown voice {name!r}; GET /api/voices lists "
                                      f"them ({', '.join(names)})")
        return services[name]

    async def speak(request: Request, svc: VoiceService, text: str, fmt: str, seed,
                    **knobs) -> Response:
        settings_ = svc.job_settings(**knobs)
        svc.sentences(text)  # unspeakable text: a 422 before queueing
        spoken = await svc.speak(text, settings_, svc.seed(seed), request.is_disconnected)
        seconds = len(spoken.audio) / svc.sample_rate
        headers = {
            "X-Seed": str(spoken.seed), "X-Sample-Rate": str(svc.sample_rate),
            "X-Audio-Seconds": f"{seconds:.3f}",
            "X-Synthesis-Seconds": f"{spoken.seconds:.3f}",
            "X-Real-Time-Factor": f"{spoken.seconds / max(seconds, 1e-9):.3f}",
        }
        return Response(encode(spoken.audio, svc.sample_rate, fmt),
                        media_type=MEDIA_TYPES[fmt], headers=headers)

    # ------------------------------------------------------------ routes

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return (resources.files("gradtts_tf.serve") / "static" / "index.html").read_text()

    @app.get("/health", response_model=Health, summary="The server is up")
    async def health() -> Health:
        return Health(voices={
            name: QueueState(pending=s.batcher.pending, batches=s.batcher.stats.batches,
                             jobs=s.batcher.stats.jobs, cancelled=s.batcher.stats.cancelled,
                             largest_batch=s.batcher.stats.largest_batch)
            for name, s in services.items()
        })

    @app.get("/api/voices", response_model=VoiceList, summary="Voices and limits")
    async def voices() -> VoiceList:
        return VoiceList(default=names[0], voices=[s.info() for s in services.values()],
                         max_chars=settings.max_chars, max_steps=settings.max_steps,
                         solvers=list(SOLVERS))

    @app.post("/api/tts", responses={**AUDIO, **ERRORS}, response_class=Response,
              summary="Text to speech")
    async def tts(body: TTSRequest, request: Request):
        return await speak(
            request, service(body.voice), body.text, body.format, body.seed,
            steps=body.steps, temperature=body.temperature,
            length_scale=body.length_scale, speaker=body.speaker, solver=body.solver)

    @app.get("/api/tts", responses={**AUDIO, **ERRORS}, response_class=Response,
             summary="Text to speech (query parameters, for simple clients)")
    async def tts_get(query: Annotated[TTSRequest, Query()], request: Request):
        return await tts(query, request)

    @app.post("/api/tts/stream", responses={**AUDIO, **ERRORS}, response_class=Response,
              summary="Text to speech, streamed sentence by sentence")
    async def tts_stream(body: TTSRequest):
        """Sends each sentence's audio as soon as it is ready (chunked): a WAV stream
        (its header states the largest length; players read until the end) or raw PCM.
        Joined, the stream is POST /api/tts's audio for the same seed (up to
        the rounding of batched kernels)."""
        svc = service(body.voice)
        job = svc.job_settings(body.steps, body.temperature, body.length_scale, body.speaker,
                               solver=body.solver)
        pieces = svc.sentences(body.text)
        seed = svc.seed(body.seed)
        chunks = svc.stream(pieces, job, seed)
        first = await anext(chunks)  # queue-full, timeout or bad text: a status code

        async def body_bytes():
            try:
                if body.format == "wav":
                    yield wav_stream_header(svc.sample_rate)
                yield pcm16(first)
                async for chunk in chunks:
                    yield pcm16(chunk)
            except (Timeout, QueueFull, RequestError) as e:
                log.warning("stream ended early: %s", e)  # the status line is gone
            finally:
                await chunks.aclose()

        return StreamingResponse(
            body_bytes(), media_type=MEDIA_TYPES[body.format],
            headers={"X-Seed": str(seed), "X-Sample-Rate": str(svc.sample_rate),
                     "X-Sentences": str(len(pieces))})

    @app.post("/v1/audio/speech", responses={**AUDIO, **ERRORS}, response_class=Response,
              summary="OpenAI-compatible speech")
    async def openai_speech(body: SpeechRequest, request: Request):
        if body.voice in services:
            voice = body.voice
        else:  # one of OpenAI's names, so their clients work unchanged
            voice = body.model if body.model in services else names[0]
        svc = service(voice)
        low, high = settings.length_scale_range
        scale = svc.synthesizer.config.inference.length_scale / body.speed
        return await speak(request, svc, body.input, body.response_format, None,
                           steps=None, temperature=None,
                           length_scale=min(max(scale, low), high), speaker=None)

    return app
