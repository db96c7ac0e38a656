"""Text to WAV with the exported TFLite graphs, exactly as a mobile app would do it.

Uses only numpy, the LiteRT interpreter (``ai-edge-litert``) and the pure-Python text
front end ``gradtts_tf.text``; TensorFlow is never imported. Usage::

    python export/run_tflite.py --model-dir exported/tflite/float32 \\
        --text "Hello world." --out hello.wav [--steps 10 --temperature 1.5 \\
        --length-scale 1.0 --seed 0]

The model folder is one written by ``python -m export.tflite`` (``encoder.tflite``,
``decoder_step.tflite``, optionally ``vocoder.tflite``, ``model_info.json`` and, for
Griffin-Lim, ``inv_mel_basis.f32``). Every step is documented in ``export/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from gradtts_tf.cli import add_sampling_arguments, check_sampling_arguments
from gradtts_tf.cli.quiet import add_verbose_argument, native_logs_filtered, quiet_tensorflow
from gradtts_tf.config import SynthesisSettings, renamed_steps
from gradtts_tf.noise import piece_noise
from gradtts_tf.solvers import solver_plan
from gradtts_tf.text import text_to_ids

SIGNATURE = "serving_default"
MANIFEST = "model_info.json"
MEL_CLAMP = 20.0  # |log-mel| limit before Griffin-Lim's exp() in exports that do not say
GRAPH_FILES = {
    "encoder": "encoder.tflite",
    "decoder_step": "decoder_step.tflite",
    "vocoder": "vocoder.tflite",
}


def model_ops(model: bytes | str | os.PathLike) -> list[str]:
    """Names of the operators a TFLite flatbuffer uses (custom ops as ``CUSTOM:name``).

    Flex (TF Select) ops are custom ops named ``Flex...``; a model made of builtin
    ops only has no ``CUSTOM:`` entry.

    Args:
        model: The flatbuffer bytes or a ``.tflite`` path.

    Returns:
        Sorted operator names, e.g. ``["ADD", "CONV_2D", ...]``.
    """
    from ai_edge_litert import schema_py_generated as schema

    buf = model if isinstance(model, bytes | bytearray) else Path(model).read_bytes()
    fb = schema.Model.GetRootAsModel(buf, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops = set()
    for i in range(fb.OperatorCodesLength()):
        code = fb.OperatorCodes(i)
        # Builtin codes >= 127 live in BuiltinCode; older ones in DeprecatedBuiltinCode.
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            ops.add("CUSTOM:" + code.CustomCode().decode())
        else:
            ops.add(names.get(builtin, str(builtin)))
    return sorted(ops)


def size_dynamic_inputs(interpreter: Any, length: int = 8) -> None:
    """Resizes every dynamic (``-1``) input axis of ``interpreter`` to ``length``.

    8 is a length every exported graph accepts (the decoder step's U-Net needs a
    multiple of 4: its skip connections must line up, which XNNPACK checks when it
    allocates); for load-time checks before any real input exists.
    """
    for detail in interpreter.get_input_details():
        signature = detail["shape_signature"]
        if (signature < 0).any():
            shape = [length if n < 0 else int(n) for n in signature]
            interpreter.resize_tensor_input(detail["index"], shape)


class Graph:
    """One TFLite graph with named inputs and outputs (its ``serving_default`` signature).

    Input tensors are resized (``resize_tensor_input`` + ``allocate_tensors``) only when
    a shape changes, so one interpreter serves texts of any length and the decoder loop
    (same shapes every step) does not reallocate.

    Args:
        path: ``.tflite`` file.
        num_threads: CPU threads of the interpreter (``None``: LiteRT's default).
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        self.path = Path(path)
        self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        runner = self.interpreter.get_signature_runner(SIGNATURE)
        self.inputs = {n: d["index"] for n, d in runner.get_input_details().items()}
        self.outputs = {n: d["index"] for n, d in runner.get_output_details().items()}
        self.dtypes = {n: d["dtype"] for n, d in runner.get_input_details().items()}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._allocated = False

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Runs the graph on named numpy inputs; returns the named outputs."""
        if set(inputs) != set(self.inputs):
            raise ValueError(f"{self.path.name} takes {sorted(self.inputs)}, got {sorted(inputs)}")
        arrays = {n: np.asarray(v, self.dtypes[n]) for n, v in inputs.items()}
        changed = False
        for name, value in arrays.items():
            if self._shapes.get(name) != value.shape:
                self.interpreter.resize_tensor_input(self.inputs[name], list(value.shape))
                self._shapes[name] = value.shape
                changed = True
        if not self._allocated:
            with native_logs_filtered():  # LiteRT announces its XNNPACK delegate here
                self.interpreter.allocate_tensors()
            self._allocated = True
        elif changed:
            self.interpreter.allocate_tensors()
        for name, value in arrays.items():
            self.interpreter.set_tensor(self.inputs[name], value)
        self.interpreter.invoke()
        return {n: self.interpreter.get_tensor(i) for n, i in self.outputs.items()}


# ---------------------------------------------------------------------------
# Griffin-Lim in numpy (the same algorithm as gradtts_tf.audio.griffin_lim)
# ---------------------------------------------------------------------------


def hann_window(length: int) -> np.ndarray:
    """Periodic Hann window ``[length]`` float32."""
    n = np.arange(length, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / length)).astype(np.float32)


def _stft(signal: np.ndarray, window: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``[N]`` -> complex64 ``[frames, n_fft / 2 + 1]``; frames start at 0, no end padding."""
    win = window.shape[0]
    n_frames = 1 + (signal.shape[0] - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n_frames)[:, None]  # [frames, win]
    return np.fft.rfft(signal[idx] * window, n=n_fft, axis=-1).astype(np.complex64)


def _istft(spec: np.ndarray, synthesis_window: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Weighted overlap-add inverse of `_stft`: ``[frames, bins]`` -> ``[(frames-1)*hop + win]``."""
    win = synthesis_window.shape[0]
    frames = np.fft.irfft(spec, n=n_fft, axis=-1)[:, :win].astype(np.float32) * synthesis_window
    out = np.zeros((spec.shape[0] - 1) * hop + win, np.float32)
    for i, frame in enumerate(frames):
        out[i * hop : i * hop + win] += frame
    return out


def _synthesis_window(window: np.ndarray, hop: int) -> np.ndarray:
    """Window that makes overlap-add invert the STFT (``tf.signal.inverse_stft_window_fn``)."""
    win = window.shape[0]
    overlaps = -(-win // hop)
    denom = np.pad(window.astype(np.float64) ** 2, (0, overlaps * hop - win))
    denom = np.tile(denom.reshape(overlaps, hop).sum(0), overlaps)[:win]  # [win]
    return (window / denom).astype(np.float32)


def griffin_lim(
    mel: np.ndarray,
    inv_mel_basis: np.ndarray,
    n_fft: int = 1024,
    hop_length: int = 256,
    win_length: int = 1024,
    n_iter: int = 32,
    momentum: float = 0.99,
    power: float = 1.0,
    mel_clamp: float = MEL_CLAMP,
) -> np.ndarray:
    """Fast Griffin-Lim from a log-mel, zero initial phase (deterministic).

    Args:
        mel: float32 log-mel ``[frames, n_mels]``.
        inv_mel_basis: ``[n_mels, n_fft / 2 + 1]`` mel -> linear matrix.
        n_fft: FFT size.
        hop_length: Frame step.
        win_length: Hann window length.
        n_iter: Iterations.
        momentum: "Fast" Griffin-Lim momentum (0: classic).
        power: Exponent the mel was computed with.
        mel_clamp: ``|log-mel|`` limit before ``exp`` (the export's ``griffin_lim``).

    Returns:
        float32 waveform ``[frames * hop_length]``.
    """
    frames = mel.shape[0]
    # Speech log-mels stay below ~3; the clamp only keeps a diverged (e.g. untrained)
    # model's mel from overflowing exp() into NaN audio.
    mel = np.clip(mel.astype(np.float32), -mel_clamp, mel_clamp)
    mag = np.maximum(np.exp(mel) @ inv_mel_basis, 0.0)  # [frames, bins]
    if power != 1.0:
        mag = mag ** (1.0 / power)
    window = hann_window(win_length)
    synth = _synthesis_window(window, hop_length)
    angles = np.ones_like(mag, np.complex64)
    rebuilt = np.zeros_like(angles)
    alpha = np.float32(momentum / (1.0 + momentum))
    for _ in range(n_iter):
        previous = rebuilt
        rebuilt = _stft(_istft(mag * angles, synth, n_fft, hop_length), window, n_fft, hop_length)
        accel = rebuilt - alpha * previous
        angles = accel / (np.abs(accel) + 1e-16)
    signal = _istft(mag * angles, synth, n_fft, hop_length)
    # Frames are centred like the training mel: drop the reflect-padding offset.
    left = max((n_fft - hop_length) // 2 - (n_fft - win_length) // 2, 0)
    return signal[left : left + frames * hop_length]


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> None:
    """Writes mono 16-bit PCM (``wave`` from the standard library)."""
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(os.fspath(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(int(sample_rate))
        f.writeframes(pcm.tobytes())


# ---------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------


class TFLiteSynthesizer:
    """Text -> mel -> audio with ``encoder``, a host loop over ``decoder_step``, a vocoder.

    Args:
        model_dir: Folder written by ``python -m export.tflite`` (one precision).
        num_threads: Interpreter threads (``None``: LiteRT's default).
        vocoder: ``"auto"`` (the ``vocoder`` graph if exported, else Griffin-Lim) or
            ``"griffin_lim"`` (always Griffin-Lim on the host).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        num_threads: int | None = None,
        vocoder: str = "auto",
    ):
        start = time.perf_counter()
        self.model_dir = Path(model_dir)
        self.timings: dict[str, float] = {}  # the last `tts` call's, per stage
        info_file = self.model_dir / MANIFEST
        if not info_file.is_file():
            raise FileNotFoundError(f"{info_file} not found: run 'python -m export.tflite' first")
        self.info: dict[str, Any] = json.loads(info_file.read_text())
        self.audio = self.info["audio"]
        self.n_feats = int(self.info["model"]["n_feats"])
        self.multi_speaker = int(self.info["model"]["n_spks"]) > 1
        self.encoder = Graph(self.model_dir / GRAPH_FILES["encoder"], num_threads)
        self.decoder_step = Graph(self.model_dir / GRAPH_FILES["decoder_step"], num_threads)
        self.vocoder = None
        if self.info["vocoder"]["type"] == "graph" and vocoder != "griffin_lim":
            self.vocoder = Graph(self.model_dir / GRAPH_FILES["vocoder"], num_threads)
        self.griffin_lim = self.info["vocoder"]["griffin_lim"]
        basis = self.griffin_lim["inv_mel_basis"]
        self.inv_mel_basis = np.fromfile(
            self.model_dir / basis["file"], dtype="<f4"
        ).reshape(basis["shape"])  # [n_mels, bins]
        self.load_seconds = time.perf_counter() - start
        # The front end loads CMUdict and the number speller (inflect) on first use: do it
        # now rather than in the first request.
        start = time.perf_counter()
        self.text_to_ids("Warm up 1.")
        self.frontend_load_seconds = time.perf_counter() - start

    @property
    def sample_rate(self) -> int:
        return int(self.audio["sample_rate"])

    def text_to_ids(self, text: str) -> np.ndarray:
        """Front end: text -> int32 ids ``[T_x]`` (blanks interspersed if the model uses them)."""
        return np.asarray(text_to_ids(text, add_blank=self.info["text"]["add_blank"]), np.int32)

    def _spk(self, speaker: int | None) -> dict[str, np.ndarray]:
        return {"spk": np.array([speaker or 0], np.int32)} if self.multi_speaker else {}

    def encode(
        self, ids: np.ndarray, length_scale: float = 1.0, speaker: int | None = None
    ) -> dict[str, np.ndarray]:
        """Runs ``encoder``: ids ``[T_x]`` -> ``mu_y [1, T_y, 80]``, ``y_mask``, ``y_lengths``."""
        ids = np.asarray(ids, np.int32)
        return self.encoder(
            x=ids[None, :],  # [1, T_x]
            x_lengths=np.array([ids.shape[0]], np.int32),
            length_scale=np.array(length_scale, np.float32),
            **self._spk(speaker),
        )

    def noise(self, enc: dict[str, np.ndarray], seed: int | None) -> np.ndarray:
        """Starting noise ``eps`` ``[1, T_y, n_feats]`` for `encode`'s output.

        The portable generator (`gradtts_tf.noise`), drawn for the utterance's own
        frames (zeros after them), as the Keras `Synthesizer` and the TF.js page draw
        it: the same seed gives the same mel in all three. ``None`` draws a random seed.
        """
        if seed is None:
            seed = secrets.randbelow(2**31)
        mu = enc["mu_y"]  # [1, T_y, n_feats]
        frames = int(enc["y_lengths"][0])
        eps = np.zeros(mu.shape, np.float32)
        eps[0, :frames] = piece_noise(seed, 0, [frames, mu.shape[2]])
        return eps

    def decode(
        self,
        enc: dict[str, np.ndarray],
        steps: int = 10,
        temperature: float = 1.5,
        noise: np.ndarray | None = None,
        seed: int | None = None,
        speaker: int | None = None,
        solver: str = "euler",
        step_noise: np.ndarray | None = None,
    ) -> np.ndarray:
        """The host diffusion loop; returns the mel ``[y_lengths, n_feats]``.

        Each step runs ``decoder_step`` with the time and coefficients of the solver's
        plan (`gradtts_tf.solvers.solver_plan`) and passes its data prediction ``x0``
        on to the next step, so every solver runs on the one exported graph.

        Args:
            enc: `encode`'s output.
            steps: Reverse-diffusion steps ``N`` (>= 1).
            temperature: Noise divisor of the start sample ``mu + eps / temperature``.
            noise: ``eps`` ``[1, T_y, n_feats]`` (drawn with ``seed`` when ``None``).
            seed: Seed of the drawn noise.
            speaker: Speaker id (multi-speaker models).
            solver: One of `gradtts_tf.solvers.SOLVERS`.
            step_noise: The per-step draws of a stochastic solver ``[N, 1, T_y,
                n_feats]`` (drawn with ``seed`` when ``None``, as the Keras
                `Synthesizer` draws them).
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        info = self.info["model"]
        plan = solver_plan(solver, steps, info["beta_min"], info["beta_max"])
        mu, mask = enc["mu_y"], enc["y_mask"]  # [1, T_y, n_feats], [1, T_y, 1]
        if seed is None and (noise is None or (plan.stochastic and step_noise is None)):
            seed = secrets.randbelow(2**31)
        if noise is None:
            noise = self.noise(enc, seed)
        noise = np.asarray(noise, np.float32)[:, : mu.shape[1]]
        if plan.stochastic and step_noise is None:
            step_noise = self.step_noise(enc, seed, steps)
        x = (mu + noise / np.float32(temperature)) * mask
        x0 = np.zeros_like(x)
        zeros = np.zeros_like(x)
        spk = self._spk(speaker)
        for i in range(steps):
            out = self.decoder_step(
                xt=x, mask=mask, mu=mu, t=np.array([plan.times[i]], np.float32),
                coef=np.array(plan.coefs[i], np.float32), x0_prev=x0,
                noise=np.asarray(step_noise[i], np.float32)[:, : mu.shape[1]]
                if plan.stochastic else zeros,
                **spk,
            )
            x, x0 = out["xt_next"], out["x0"]
        return x[0, : int(enc["y_lengths"][0])]  # [y_len, n_feats]

    def step_noise(self, enc: dict[str, np.ndarray], seed: int, steps: int) -> np.ndarray:
        """A stochastic solver's per-step draws ``[steps, 1, T_y, n_feats]``.

        The portable generator's stream of the Keras `Synthesizer` (zeros after the
        utterance's frames).
        """
        mu = enc["mu_y"]  # [1, T_y, n_feats]
        frames = int(enc["y_lengths"][0])
        draws = np.zeros((steps, *mu.shape), np.float32)
        draws[:, 0, :frames] = piece_noise(
            seed, 0, [steps, frames, mu.shape[2]], stochastic=True
        )
        return draws

    def mel_to_audio(self, mel: np.ndarray) -> np.ndarray:
        """Vocodes a mel ``[T, n_feats]`` to float32 audio ``[T * hop]`` in [-1, 1]."""
        if self.vocoder is not None:
            audio = self.vocoder(mel=np.asarray(mel, np.float32)[None])["audio"][0]
        else:
            a, voc = self.audio, self.griffin_lim
            audio = griffin_lim(
                mel, self.inv_mel_basis, n_fft=a["n_fft"], hop_length=a["hop_length"],
                win_length=a["win_length"], n_iter=voc["n_iter"], momentum=voc["momentum"],
                power=voc["power"], mel_clamp=voc.get("mel_clamp", MEL_CLAMP),
            )
        return np.clip(audio, -1.0, 1.0).astype(np.float32)

    def synthesis_settings(
        self,
        steps: int | None = None,
        temperature: float | None = None,
        length_scale: float | None = None,
        solver: str | None = None,
    ) -> SynthesisSettings:
        """The voice's settings (``sampling`` in ``model_info.json``; the official ones
        where absent) with each given one in place.

        Raises:
            ValueError: A setting out of range.
        """
        voice = SynthesisSettings.from_dict(self.info.get("sampling"))
        return voice.override(steps, temperature, length_scale, solver)

    def tts(
        self,
        text: str,
        steps: int | None = None,
        temperature: float | None = None,
        length_scale: float | None = None,
        speaker: int | None = None,
        seed: int | None = None,
        n_timesteps: int | None = None,
        solver: str | None = None,
    ) -> tuple[np.ndarray, int]:
        """Text -> ``(float32 audio [samples] in [-1, 1], sample rate)``.

        The signature and result of `gradtts_tf.synthesizer.Synthesizer.tts`: the same
        seed gives the same mel (the portable noise generator). ``steps``, ``solver``,
        ``temperature`` and ``length_scale`` default to the voice's settings
        (`synthesis_settings`); ``n_timesteps`` is the earlier name of ``steps``
        (deprecated). Each stage's time is left in `timings`.
        """
        steps = renamed_steps(steps, n_timesteps)
        settings = self.synthesis_settings(steps, temperature, length_scale, solver)
        steps, temperature, length_scale = (
            settings.steps, settings.temperature, settings.length_scale
        )
        if seed is None:
            seed = secrets.randbelow(2**31)
        times = {}
        start = time.perf_counter()
        ids = self.text_to_ids(text)
        times["frontend"] = time.perf_counter() - start
        mark = time.perf_counter()
        enc = self.encode(ids, length_scale, speaker)
        times["encoder"] = time.perf_counter() - mark
        mark = time.perf_counter()
        mel = self.decode(
            enc, steps, temperature, seed=seed, speaker=speaker, solver=settings.solver
        )
        times["decoder"] = time.perf_counter() - mark
        mark = time.perf_counter()
        audio = self.mel_to_audio(mel)
        times["vocoder"] = time.perf_counter() - mark
        times["total"] = time.perf_counter() - start
        times["audio"] = audio.shape[0] / self.sample_rate
        times["rtf"] = times["total"] / max(times["audio"], 1e-9)
        times["steps"] = steps
        times["solver"] = settings.solver
        self.timings = times
        return audio, self.sample_rate


def main(argv: list[str] | None = None) -> None:
    quiet_tensorflow(argv)  # LiteRT only, but the same --verbose as every program
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True, help="folder from 'python -m export.tflite'")
    parser.add_argument("--text", required=True)
    parser.add_argument("--out", required=True, help="output .wav")
    add_sampling_arguments(parser)
    parser.add_argument("--seed", type=int, default=None, help="noise seed (default: random)")
    parser.add_argument("--speaker", type=int, default=None, help="speaker id (multi-speaker)")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads")
    parser.add_argument(
        "--vocoder", choices=("auto", "griffin_lim"), default="auto",
        help="auto: the exported vocoder graph if any, else Griffin-Lim on the host",
    )
    add_verbose_argument(parser)
    args = parser.parse_args(argv)
    check_sampling_arguments(parser, args)
    tts = TFLiteSynthesizer(args.model_dir, num_threads=args.threads, vocoder=args.vocoder)
    try:
        audio, _ = tts.tts(
            args.text, steps=args.steps, temperature=args.temperature,
            length_scale=args.length_scale, speaker=args.speaker, seed=args.seed,
            solver=args.solver,
        )
    except ValueError as err:  # e.g. nothing pronounceable in the text
        parser.exit(2, f"error: {err}\n")
    write_wav(args.out, audio, tts.sample_rate)
    times = tts.timings
    print(
        f"{args.out}: {times['audio']:.2f} s of audio; load {tts.load_seconds * 1e3:.0f} ms, "
        f"front-end load {tts.frontend_load_seconds * 1e3:.0f} ms; front end "
        f"{times['frontend'] * 1e3:.0f} ms, encoder {times['encoder'] * 1e3:.0f} ms, "
        f"{times['steps']} {times['solver']} steps {times['decoder'] * 1e3:.0f} ms, vocoder "
        f"{times['vocoder'] * 1e3:.0f} ms, RTF {times['rtf']:.3f}"
    )


if __name__ == "__main__":
    main()
