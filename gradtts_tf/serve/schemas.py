"""The HTTP API's request and response bodies (they make the OpenAPI schema).

Request models are built per server (`request_models`) because their limits (text
length, steps, voices) are the server's settings.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from gradtts_tf.serve.settings import ServerSettings

MAX_SEED = 2**31 - 1
AudioFormat = Literal["wav", "pcm"]


class VoiceInfo(BaseModel):
    """One voice the server speaks with."""

    name: str = Field(description="The name requests use in `voice`.")
    speakers: int = Field(description="Speakers of the model (ids 0 .. speakers - 1).")
    sample_rate: int = Field(description="Samples per second of its audio.")
    steps: int = Field(description="Its default reverse-diffusion steps.")
    temperature: float = Field(description="Its default temperature.")
    length_scale: float = Field(description="Its default length scale.")
    vocoder: str = Field(description="What turns its mels into audio.")


class VoiceList(BaseModel):
    """The voices and the request limits."""

    default: str = Field(description="The voice of requests that name none.")
    voices: list[VoiceInfo]
    max_chars: int = Field(description="Longest text a request may send.")
    max_steps: int = Field(description="Most steps a request may ask for.")


class QueueState(BaseModel):
    """One voice's batcher."""

    pending: int = Field(description="Jobs waiting.")
    batches: int = Field(description="Synthesis calls made.")
    jobs: int = Field(description="Jobs synthesised.")
    cancelled: int = Field(description="Jobs dropped because their client left or timed out.")
    largest_batch: int = Field(description="Most jobs synthesised in one call.")


class Health(BaseModel):
    """The server is up; its voices' queues."""

    status: Literal["ok"] = "ok"
    voices: dict[str, QueueState]


class Error(BaseModel):
    """Why a request was refused."""

    detail: str | list = Field(description="What was wrong and what to do.")


def request_models(settings: ServerSettings, voices: list[str]):
    """The request bodies of a server with ``settings`` and ``voices``.

    Returns:
        ``(TTSRequest, SpeechRequest)``: the native request and the OpenAI-style one.
    """
    low_t, high_t = settings.temperature_range
    low_l, high_l = settings.length_scale_range
    text = Annotated[str, Field(
        min_length=1, max_length=settings.max_chars,
        description=f"English text to speak (at most {settings.max_chars} characters).",
    )]
    strict = ConfigDict(extra="forbid")
    tts = create_model(
        "TTSRequest",
        __config__=strict,
        __doc__="Text to speech with this server's own settings.",
        text=(text, ...),
        voice=(Literal[tuple(voices)] | None, Field(
            None, description=f"A voice of GET /api/voices (default {voices[0]}).")),
        speaker=(int | None, Field(
            None, ge=0, description="Speaker id of a multi-speaker voice (default 0).")),
        steps=(int | None, Field(
            None, ge=1, le=settings.max_steps,
            description="Reverse-diffusion steps (default: the voice's).")),
        temperature=(float | None, Field(
            None, ge=low_t, le=high_t,
            description="Noise divisor of the start sample (default: the voice's).")),
        length_scale=(float | None, Field(
            None, ge=low_l, le=high_l,
            description="> 1 speaks slower (default: the voice's).")),
        seed=(int | None, Field(
            None, ge=0, le=MAX_SEED,
            description="Same seed, same audio; default: a random one (sent back in "
                        "the X-Seed header).")),
        format=(AudioFormat, Field(
            "wav", description="wav: a 16-bit mono WAV file; pcm: raw 16-bit "
                               "little-endian mono samples at the voice's sample rate.")),
    )
    speech = create_model(
        "SpeechRequest",
        __doc__="The OpenAI speech API's request (POST /v1/audio/speech).",
        model=(str, Field(
            "gradtts", max_length=200,
            description="Accepted for compatibility; a voice's name here picks that "
                        "voice when `voice` names none of this server's.")),
        input=(text, ...),
        voice=(str, Field(
            voices[0], max_length=200,
            description=f"A voice of GET /api/voices (one of: {', '.join(voices)}); "
                        "OpenAI's voice names (alloy, echo, ...) speak with the default "
                        "voice.")),
        response_format=(AudioFormat, Field(
            "wav", description="wav or pcm (16-bit little-endian mono samples).")),
        speed=(float, Field(
            1.0, ge=0.25, le=4.0,
            description="Speaking rate: 2 speaks twice as fast (length scale divided "
                        f"by it, kept within {low_l}..{high_l}).")),
    )
    return tts, speech
