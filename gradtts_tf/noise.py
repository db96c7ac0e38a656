"""The portable noise generator: the same seed gives the same noise in every runtime.

Keras synthesis (`gradtts_tf.synthesizer.Synthesizer`), the LiteRT runner and the
TF.js page (``export/web/src/prng.js``) all draw the diffusion's Gaussian noise from
this generator, so one seed gives one utterance whichever runtime speaks it. It is
counter-based and uses only 32-bit integer arithmetic and float64 ``log``/``sqrt``/
``cos``/``sin``, which numpy and JavaScript compute alike (a value can differ in its
last float32 bit where the two math libraries round a float64 result differently).

The algorithm, for a seed ``s`` and a stream ``k`` (both integers in ``[0, 2**32)``):

1. ``mix(x)``: the 32-bit integer hash ``x ^= x >> 16; x *= 0x7feb352d;
   x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16`` (unsigned, products modulo 2**32).
2. ``key = mix(s ^ mix(k ^ 0x85ebca6b))``; word ``i`` is ``w(i) = mix(mix(i) ^ key)``.
3. Value pair ``j`` (values ``2j`` and ``2j + 1``) is Box-Muller on
   ``u1 = (w(2j) + 0.5) / 2**32`` (never 0) and ``u2 = w(2j + 1) / 2**32``:
   ``r = sqrt(-2 ln u1)``, values ``r cos(2 pi u2)`` and ``r sin(2 pi u2)``, computed in
   float64 and rounded to float32.
4. A tensor of shape ``S`` takes the first ``prod(S)`` values in row-major order.

Streams separate the draws of one seed: the start noise of sentence ``p`` of an
utterance is stream ``2p``, the stochastic sampler's per-step draws stream ``2p + 1``
(shape ``[steps, frames, n_feats]``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_KEY_SALT = 0x85EBCA6B


def _mix(x: np.ndarray) -> np.ndarray:
    """The 32-bit hash of step 1, elementwise on uint32 (wrapping products)."""
    x = x.astype(np.uint32, copy=True)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return x


def _check_u32(name: str, value: int) -> int:
    value = int(value)
    if not 0 <= value < 2**32:
        raise ValueError(f"noise {name} must be an integer in [0, 2**32), got {value}")
    return value


def standard_normal(seed: int, shape: Sequence[int], stream: int = 0) -> np.ndarray:
    """Standard normal float32 noise of ``shape`` from ``seed`` and ``stream``.

    Args:
        seed: Integer in ``[0, 2**32)``.
        shape: Output shape; values fill it in row-major order.
        stream: Integer in ``[0, 2**32)`` separating independent draws of one seed.

    Returns:
        float32 array of ``shape``.

    Raises:
        ValueError: If ``seed`` or ``stream`` is out of range.
    """
    seed, stream = _check_u32("seed", seed), _check_u32("stream", stream)
    count = int(np.prod(shape, dtype=np.int64))
    pairs = (count + 1) // 2
    with np.errstate(over="ignore"):
        key = _mix(np.uint32(seed) ^ _mix(np.array(stream ^ _KEY_SALT, np.uint32)))
        words = _mix(_mix(np.arange(2 * pairs, dtype=np.uint32)) ^ key)  # [2 * pairs]
    u1 = (words[0::2].astype(np.float64) + 0.5) / 2.0**32  # (0, 1)
    u2 = words[1::2].astype(np.float64) / 2.0**32  # [0, 1)
    radius = np.sqrt(-2.0 * np.log(u1))
    angle = 2.0 * np.pi * u2
    values = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)  # [pairs, 2]
    return values.reshape(-1)[:count].astype(np.float32).reshape(tuple(shape))


def piece_noise(
    seed: int, pos: int, shape: Sequence[int], stochastic: bool = False
) -> np.ndarray:
    """The noise of sentence ``pos`` of an utterance seeded ``seed``.

    Args:
        seed: The utterance's seed.
        pos: The sentence's position within the utterance (0 for a single sentence).
        shape: ``[frames, n_feats]`` for the start noise ``eps`` (``z = mu + eps / temp``),
            ``[n_timesteps, frames, n_feats]`` for the stochastic sampler's draws.
        stochastic: Which of the two streams.

    Returns:
        float32 array of ``shape``.
    """
    return standard_normal(seed, shape, stream=2 * pos + int(stochastic))
