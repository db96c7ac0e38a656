"""What a server may be asked and how it batches: `ServerSettings`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSettings:
    """Limits of the HTTP API and the micro-batcher's knobs.

    Attributes:
        voices: Voices to load: installed names (``demo``) or run folders. The first is
            the default voice of requests that name none.
        max_chars: Longest text a request may send.
        max_steps: Most reverse-diffusion steps a request may ask for (every distinct
            value is one more traced graph).
        batch_wait_ms: How long the batcher waits for more requests after the first
            arrives; 0 runs whatever is queued at once.
        max_batch: Most requests synthesised in one call (1 turns batching off).
        max_padding: How much longer (as a fraction) than the shortest sentence of a
            batch its longest may be: `Synthesizer.synthesize`'s ``max_padding``. 0
            batches only sentences of one padded length, so a request's audio never
            depends on what else was batched with it; above 0, batches are fuller (more
            throughput) and the audio moves slightly with its batch.
        queue_size: Requests waiting per voice; more get 503 with ``Retry-After``.
        timeout: Seconds a request may wait and run before it gets 503.
        warmup: Trace the graphs at start-up (at each voice's own steps), so the
            first request does not pay for it.
        temperature_range: Smallest and largest temperature a request may set.
        length_scale_range: Smallest and largest length scale a request may set (the
            OpenAI-style ``speed`` maps to ``voice length scale / speed`` within it).
    """

    voices: tuple[str, ...] = ("demo",)
    max_chars: int = 1000
    max_steps: int = 50
    batch_wait_ms: float = 10.0
    max_batch: int = 8
    max_padding: float = 0.25
    queue_size: int = 64
    timeout: float = 120.0
    warmup: bool = True
    temperature_range: tuple[float, float] = (0.1, 10.0)
    length_scale_range: tuple[float, float] = (0.25, 4.0)

    def __post_init__(self):
        if not self.voices:
            raise ValueError("voices: give at least one voice (a name such as demo or a folder)")
        for name in ("max_chars", "max_steps", "max_batch", "queue_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        if not self.max_padding >= 0:
            raise ValueError(f"max_padding: expected a number >= 0, got {self.max_padding}")
        if not self.batch_wait_ms >= 0:
            raise ValueError(f"batch_wait_ms: expected a number >= 0, got {self.batch_wait_ms}")
        for name in ("temperature_range", "length_scale_range"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name}: expected 0 < low <= high, got {(low, high)}")
        if not self.timeout > 0:
            raise ValueError(f"timeout: expected a number > 0, got {self.timeout}")

    def replace(self, **changes) -> ServerSettings:
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)
