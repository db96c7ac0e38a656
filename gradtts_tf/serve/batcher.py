"""Requests gathered into batches for one voice: `MicroBatcher`.

Every voice has one batcher and one worker thread: jobs wait in a bounded asyncio
queue, the batcher takes what is queued (waiting ``batch_wait_ms`` after the first for
more), groups jobs that share their settings, and runs each group through
`Synthesizer.synthesize` on the worker thread, so the voice's graphs are never called
from two threads at once. Job ``k`` of a batch keeps its own seed and sentence
position, so its audio is what it would be alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from gradtts_tf.synthesizer import Synthesizer

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The voice's queue holds ``queue_size`` jobs already; retry later."""


@dataclass(frozen=True)
class JobSettings:
    """What must be equal for jobs to share a synthesis call."""

    steps: int
    temperature: float
    length_scale: float
    speaker: int
    split_sentences: bool = True
    solver: str = "euler"


@dataclass
class Job:
    """One text to speak, and the future its result arrives in.

    Attributes:
        text: The text (a whole request, or one sentence of a stream).
        seed: Its noise seed.
        settings: Synthesis settings (jobs with equal settings batch together).
        first_piece: Position of its first sentence in the text it was cut from.
        future: Resolves to ``(audio float32 [samples], compute seconds)``.
        started: Set when its batch goes to the worker thread.
    """

    text: str
    seed: int
    settings: JobSettings
    first_piece: int = 0
    future: asyncio.Future | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class BatcherStats:
    """Counters a health check reports."""

    batches: int = 0
    jobs: int = 0
    cancelled: int = 0
    failed: int = 0
    largest_batch: int = 0


class MicroBatcher:
    """Queues jobs for one `Synthesizer` and runs them in batches on one thread.

    Args:
        synthesizer: The voice.
        max_batch: Most jobs per synthesis call.
        batch_wait_ms: How long to wait for more jobs after the first.
        queue_size: Most jobs waiting; `submit` raises `QueueFull` beyond it.
        name: The voice's name (for the worker thread and log messages).
        max_padding: Passed to `Synthesizer.synthesize` (0: exact batches only).
    """

    def __init__(self, synthesizer: Synthesizer, max_batch: int = 8,
                 batch_wait_ms: float = 10.0, queue_size: int = 64, name: str = "voice",
                 max_padding: float = 0.0):
        self.synthesizer = synthesizer
        self.max_batch = max_batch
        self.max_padding = max_padding
        self.batch_wait = batch_wait_ms / 1000.0
        self.name = name
        self.stats = BatcherStats()
        self._queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=queue_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"tts-{name}")
        self._task: asyncio.Task | None = None

    @property
    def pending(self) -> int:
        """Jobs waiting in the queue (not counting the batch being synthesised)."""
        return self._queue.qsize()

    def start(self) -> None:
        """Starts the batching loop on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        """Finishes the batch in progress and the jobs still queued, then stops."""
        while self._queue.qsize() and self._task is not None and not self._task.done():
            await asyncio.sleep(0.05)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    async def run_in_worker(self, fn, *args):
        """Runs ``fn(*args)`` on the voice's worker thread (between batches)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def submit(self, job: Job) -> asyncio.Future:
        """Queues ``job``; returns the future its ``(audio, seconds)`` arrives in.

        Cancel the future to drop the job if it has not started.

        Raises:
            QueueFull: When ``queue_size`` jobs are waiting.
        """
        job.future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise QueueFull(f"voice {self.name!r} has {self._queue.qsize()} requests "
                            "queued") from None
        return job.future

    async def _gather(self) -> list[Job]:
        """The next batch: the first job, then whatever arrives within the wait."""
        loop = asyncio.get_running_loop()
        batch = [await self._queue.get()]
        deadline = loop.time() + self.batch_wait
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _loop(self) -> None:
        while True:
            batch = await self._gather()
            live = [job for job in batch if not job.future.done()]
            self.stats.cancelled += len(batch) - len(live)
            groups: dict[JobSettings, list[Job]] = defaultdict(list)
            for job in live:
                groups[job.settings].append(job)
            for settings, jobs in groups.items():
                jobs = [job for job in jobs if not job.future.done()]
                if not jobs:
                    continue
                for job in jobs:
                    job.started.set()
                try:
                    results = await self.run_in_worker(self._synthesize, settings, jobs)
                except Exception as e:  # noqa: BLE001 - handed to each waiting request
                    log.exception("voice %s: synthesis failed", self.name)
                    self.stats.failed += len(jobs)
                    for job in jobs:
                        if not job.future.done():
                            job.future.set_exception(e)
                    continue
                self.stats.batches += 1
                self.stats.jobs += len(jobs)
                self.stats.largest_batch = max(self.stats.largest_batch, len(jobs))
                for job, result in zip(jobs, results, strict=True):
                    if job.future.done():
                        continue
                    if isinstance(result, Exception):
                        job.future.set_exception(result)
                    else:
                        job.future.set_result(result)

    def _synthesize(self, settings: JobSettings, jobs: list[Job]):
        """Worker thread: one `Synthesizer.synthesize` call for ``jobs``."""
        start = time.perf_counter()
        utts, _ = self.synthesizer.synthesize(
            [job.text for job in jobs], steps=settings.steps,
            temperature=settings.temperature, length_scale=settings.length_scale,
            speaker=settings.speaker, seed=[job.seed for job in jobs],
            first_piece=[job.first_piece for job in jobs],
            split_sentences=settings.split_sentences, batch_size=max(16, len(jobs)),
            max_padding=self.max_padding, solver=settings.solver,
        )
        seconds = time.perf_counter() - start
        results = []
        for utt in utts:
            if utt.error is not None:
                results.append(ValueError(utt.error))
            else:
                results.append((np.asarray(utt.audio, np.float32), seconds))
        return results
