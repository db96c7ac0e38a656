"""One voice behind the server: its `Synthesizer`, its batcher and its defaults."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gradtts_tf.serve.batcher import Job, JobSettings, MicroBatcher
from gradtts_tf.serve.schemas import MAX_SEED, VoiceInfo
from gradtts_tf.serve.settings import ServerSettings
from gradtts_tf.synthesizer import Synthesizer


class RequestError(ValueError):
    """A request the voice cannot serve; ``field`` names the request field at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class Timeout(Exception):
    """The request did not finish within the server's timeout."""


class ClientGone(Exception):
    """The client disconnected before its audio was ready."""


@dataclass
class Spoken:
    """A finished request: its audio and what it cost."""

    audio: np.ndarray  # float32 [samples]
    seconds: float  # wall-clock from queueing to the last sample
    seed: int


def voice_name(voice: str) -> str:
    """The name requests use for ``voice`` (an installed name, or a folder's name)."""
    return Path(voice).name or str(voice)


class VoiceService:
    """A loaded voice: validates requests, queues them, streams them.

    Args:
        name: The name requests use.
        synthesizer: The loaded voice.
        settings: The server's limits and batching knobs.
    """

    def __init__(self, name: str, synthesizer: Synthesizer, settings: ServerSettings):
        self.name = name
        self.synthesizer = synthesizer
        self.settings = settings
        self.batcher: MicroBatcher | None = None

    @property
    def sample_rate(self) -> int:
        return self.synthesizer.sample_rate

    def info(self) -> VoiceInfo:
        """What GET /api/voices says of this voice."""
        defaults = self.synthesizer.config.inference
        return VoiceInfo(
            name=self.name, speakers=max(1, self.synthesizer.model.n_spks),
            sample_rate=self.sample_rate, steps=defaults.steps,
            temperature=defaults.temperature, length_scale=defaults.length_scale,
            solver=defaults.solver, vocoder=type(self.synthesizer.vocoder).__name__,
        )

    async def start(self) -> None:
        """Starts the batcher (and traces the graphs if the settings say so)."""
        s = self.settings
        self.batcher = MicroBatcher(self.synthesizer, s.max_batch, s.batch_wait_ms,
                                    s.queue_size, self.name, s.max_padding)
        if s.warmup:
            await self.batcher.run_in_worker(self.synthesizer.warmup)
        self.batcher.start()

    async def stop(self) -> None:
        """Finishes queued work and stops the batcher."""
        if self.batcher is not None:
            await self.batcher.stop()

    # ------------------------------------------------------------ requests

    def job_settings(self, steps, temperature, length_scale, speaker,
                     split_sentences: bool = True, solver: str | None = None) -> JobSettings:
        """The voice's defaults with the request's values in place, checked.

        Raises:
            RequestError: A speaker the voice does not have.
        """
        try:
            spk = self.synthesizer.check_speaker(speaker)
        except ValueError as e:
            raise RequestError("speaker", str(e)) from None
        s = self.synthesizer.synthesis_settings(steps, temperature, length_scale, solver)
        return JobSettings(s.steps, s.temperature, s.length_scale, spk, split_sentences,
                           s.solver)

    def sentences(self, text: str) -> list[str]:
        """The pieces ``text`` is spoken in.

        Raises:
            RequestError: Empty or unspeakable text, or a piece too long to speak.
        """
        try:
            return [piece for piece, _ in self.synthesizer.prepare(text)]
        except ValueError as e:
            raise RequestError("text", f"cannot be spoken: {e}") from None

    @staticmethod
    def seed(seed: int | None) -> int:
        return secrets.randbelow(MAX_SEED) if seed is None else int(seed)

    async def speak(self, text: str, settings: JobSettings, seed: int,
                    disconnected: Callable[[], Awaitable[bool]] | None = None) -> Spoken:
        """Queues ``text`` and waits for its audio.

        Args:
            text: Text already checked with `sentences`.
            settings: From `job_settings`.
            seed: The noise seed.
            disconnected: Polled while waiting; when it returns True the job is
                dropped (if it has not started) and `ClientGone` raised.

        Raises:
            QueueFull, Timeout, ClientGone, RequestError.
        """
        start = asyncio.get_running_loop().time()
        future = self.batcher.submit(Job(text, seed, settings))
        audio, _ = await self._wait(future, start, disconnected)
        return Spoken(audio, asyncio.get_running_loop().time() - start, seed)

    async def stream(self, pieces: list[str], settings: JobSettings,
                     seed: int) -> AsyncIterator[np.ndarray]:
        """Speaks ``pieces`` (from `sentences`) one by one, yielding audio when ready.

        The pieces and the silence between them are those of `speak` with the same
        seed, so the stream joined is the same audio (up to the rounding of batched
        kernels). Sentence ``j + 1`` is queued as soon as sentence ``j`` starts, so it
        is synthesised next (with other clients' requests) while ``j`` is sent and
        played, and the first audio waits for one sentence only. When the consumer
        stops (the client left), sentences not yet started are dropped. The timeout
        applies to each sentence.

        Raises:
            QueueFull, Timeout, RequestError.
        """
        one = dataclasses.replace(settings, split_sentences=False)
        loop = asyncio.get_running_loop()
        jobs: list[Job] = []

        def queue(j: int) -> None:
            jobs.append(Job(pieces[j], seed, one, first_piece=j))
            self.batcher.submit(jobs[-1])

        try:
            queue(0)
            for j in range(len(pieces)):
                start = loop.time()
                if j + 1 < len(pieces):
                    await self._wait(jobs[j].future, start, None, jobs[j].started)
                    queue(j + 1)
                audio, _ = await self._wait(jobs[j].future, start, None)
                if j:
                    yield self.synthesizer.pause()
                yield audio
        finally:
            for job in jobs:
                job.future.cancel()

    async def _wait(self, future: asyncio.Future, start: float, disconnected,
                    started: asyncio.Event | None = None):
        """The job's result; or, given ``started``, returns once the job has started."""
        loop = asyncio.get_running_loop()
        deadline = start + self.settings.timeout
        waiting = {future}
        if started is not None:
            waiting.add(loop.create_task(started.wait()))
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise Timeout(f"not finished within {self.settings.timeout:g} s")
                done, _ = await asyncio.wait(waiting, timeout=min(0.25, remaining),
                                             return_when=asyncio.FIRST_COMPLETED)
                if done:
                    break
                if disconnected is not None and await disconnected():
                    raise ClientGone()
        except BaseException:
            future.cancel()
            raise
        finally:
            for task in waiting - {future}:
                task.cancel()
        if started is not None and not future.done():
            return None
        try:
            return future.result()
        except ValueError as e:
            raise RequestError("text", str(e)) from None
