"""The HTTP API's request and response bodies (they make the OpenAPI schema).

Request models are built per server (`request_models`) because their limits (text
length, steps, voices) are the server's settings.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from gradtts_tf.serve.settings import ServerSettings
from gradtts_tf.solvers import SOLVERS

MAX_SEED = 2**31 - 1
AudioFormat = Literal["wav", "pcm"]


def _not_bool(value):
    # JSON true/false are not numbers (pydantic would read them as 1/0).
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    return value


def _number(kind: type, low, high):
    """``kind`` within ``[low, high]``, JSON booleans refused."""
    return Annotated[kind, Field(ge=low, le=high), BeforeValidator(_not_bool)]


class VoiceInfo(BaseModel):
    """One voice the server speaks with."""

    name: str = Field(description="The name requests use in `voice`.")
    speakers: int = Field(description="Speakers of the model (ids 0 .. speakers - 1).")
    sample_rate: int = Field(description="Samples per second of its audio.")
    steps: int = Field(description="Its default reverse-diffusion steps.")
    solver: str = Field(description="Its default reverse-diffusion solver.")
    temperature: float = Field(description="Its default temperature.")
    length_scale: float = Field(description="Its default length scale.")
    vocoder: str = Field(description="What turns its mels into audio.")


class VoiceList(BaseModel):
    """The voices and the request limits."""

    default: str = Field(description="The voice of requests that name none.")
    voices: list[VoiceInfo]
    max_chars: int = Field(description="Longest text a request may send.")
    max_steps: int = Field(description="Most steps a request may ask for.")
    solvers: list[str] = Field(description="The reverse-diffusion solvers a request may name.")


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


def request_models(settings: ServerSettings, voices: list[str], max_speaker: int = 0,
                   aliases: frozenset[str] = frozenset()):
    """The request bodies of a server with ``settings`` and ``voices``.

    Args:
        settings: The server's limits.
        voices: The voices' names, the default first.
        max_speaker: The largest speaker id of any voice.
        aliases: Other names `SpeechRequest.voice` accepts (for the default voice).

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
        speaker=(_number(int, 0, max_speaker) | None, Field(
            None,
            description="Speaker id of a multi-speaker voice (default 0).")),
        steps=(_number(int, 1, settings.max_steps) | None, Field(
            None,
            description="Reverse-diffusion steps (default: the voice's).")),
        solver=(Literal[SOLVERS] | None, Field(
            None,
            description="Reverse-diffusion solver (default: the voice's): euler (the "
                        "official sampler), euler-sde, dpmpp-2m (second order: fewer "
                        "steps), ml-sde (maximum-likelihood SDE).")),
        temperature=(_number(float, low_t, high_t) | None, Field(
            None,
            description="Noise divisor of the start sample (default: the voice's).")),
        length_scale=(_number(float, low_l, high_l) | None, Field(
            None,
            description="> 1 speaks slower (default: the voice's).")),
        seed=(_number(int, 0, MAX_SEED) | None, Field(
            None,
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
                        "voice when `voice` is one of OpenAI's names.")),
        input=(text, ...),
        voice=(Literal[tuple([*voices, *sorted(aliases - set(voices))])], Field(
            voices[0],
            description="A voice of GET /api/voices; OpenAI's voice names (alloy, "
                        "echo, ...) speak with the voice `model` names, else the "
                        "default one.")),
        response_format=(AudioFormat, Field(
            "wav", description="wav or pcm (16-bit little-endian mono samples).")),
        speed=(_number(float, 0.25, 4.0), Field(
            1.0,
            description="Speaking rate: 2 speaks twice as fast (length scale divided "
                        f"by it, kept within {low_l}..{high_l}).")),
    )
    return tts, speech
