"""Synthesis real-time factor: Keras graph and TFLite vs the PyTorch ``grad-tts`` peer.

RTF = wall time / seconds of audio produced (< 1 is faster than real time), for
text-to-mel and for the full text-to-waveform path, at each number of reverse-diffusion
steps and batch size. Contenders, each in its own process with the same thread count:

* ``keras``: ``GradTTS.synthesise`` traced once per step count with the weights frozen
  in (`gradtts_tf.runtime.freeze`, as `gradtts_tf.Synthesizer` runs it);
* ``tflite-float32`` / ``tflite-float16`` / ``tflite-int8``: the graphs of
  ``python -m export.tflite`` (``--int8``: dynamic-range int8 weights, which LiteRT's
  XNNPACK runs with int8 arithmetic) run by ``export/run_tflite.py``'s
  ``TFLiteSynthesizer`` (encoder, host loop over the decoder step, vocoder). Its graphs
  take one utterance, so a batch of 8 is 8 calls;
* ``peer``: ``grad_tts.GradTTS.forward`` (the official synthesis, PyTorch);
* ``keras-bf16`` / ``peer-bf16``: the same with float32 convolutions and matmuls
  computed from bfloat16 inputs (float32 accumulation) by oneDNN: ours through
  ``gradtts_tf.runtime.set_cpu_math("bfloat16")``, torch's through
  ``torch.backends.mkldnn.{conv,matmul}.fp32_precision = "bf16"``; ours also runs the
  U-Net's activations in bfloat16 (``GradTTS.with_decoder_dtype``), as
  ``inference.py --cpu-math bfloat16`` does.

All contenders carry the *same weights*: a randomly initialised peer model (official
default sizes, ``configs/ljspeech.yaml``) is saved as a ``.pt`` state dict and loaded
into ours with ``gradtts_tf.convert``, so they predict the same durations (same mel
lengths, same work) and, without noise, the same mel: that is checked. Likewise the
vocoder (``--vocoder hifigan``, default) is one random HiFi-GAN V1 (the peer's
``hifi_gan.models.Generator``) converted for TF/TFLite; ``--vocoder griffin-lim`` uses
the numpy Griffin-Lim of ``export/run_tflite.py`` in every contender; ``--vocoder none``
times text-to-mel only. Timings start from token ids (the text front ends differ).

Usage (full run; 50 steps at batch 8 take minutes per contender on 2 cores)::

    python -m bench.synthesis --json bench/results/synthesis.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    add_common_args,
    apply_framework_threads,
    configure_threads,
    format_table,
    machine_info,
    measure_phases,
    print_header,
    run_worker,
    write_json,
)

CONTENDERS = (
    "keras", "keras-bf16", "tflite-float32", "tflite-float16", "tflite-int8", "peer", "peer-bf16",
)
DEFAULT_CONTENDERS = tuple(c for c in CONTENDERS if c != "tflite-int8")
DEFAULT_CONFIG = ROOT / "configs" / "ljspeech.yaml"
VOCODERS = ("hifigan", "griffin-lim", "none")
# Eight sentences of everyday length (about 80-190 ids with blanks); batch 1 uses the first.
SENTENCES = (
    "The new bridge over the river was opened to traffic early on Monday morning.",
    "She kept a small notebook in her coat pocket and wrote down every word she heard.",
    "After the storm, the fishermen waited two days before taking their boats out again.",
    "A light rain began to fall as the train pulled slowly out of the station.",
    "He said that the letters had been sent, but nobody in the office could find them.",
    "The museum will stay open late on Fridays throughout the summer.",
    "Most of the old houses on this street were built more than a century ago, "
    "when the town was still a busy harbour.",
    "Please remember to close the windows before you leave.",
)
PEER_MODEL_KEYS = (
    "n_vocab", "n_spks", "spk_emb_dim", "n_enc_channels", "filter_channels",
    "filter_channels_dp", "n_heads", "n_enc_layers", "enc_kernel", "enc_dropout",
    "window_size", "dec_dim", "beta_min", "beta_max", "pe_scale",
)
CHECK_STEPS = 4  # steps of the noise-free equality run


# ---------------------------------------------------------------------------
# Preparation workers: shared weights and inputs
# ---------------------------------------------------------------------------


def prepare_peer(args: argparse.Namespace) -> dict[str, Any]:
    """Random official-size peer model (and HiFi-GAN) saved as PyTorch state dicts."""
    import torch

    apply_framework_threads(args.threads, torch=torch)
    from grad_tts.model.tts import GradTTS

    from gradtts_tf.config import load_config

    config = load_config(args.config)
    work = Path(args.workdir)
    torch.manual_seed(args.seed)
    params = {k: getattr(config.model, k) for k in PEER_MODEL_KEYS}
    model = GradTTS(n_feats=config.audio.n_mels, **params)
    torch.save(model.state_dict(), work / "peer_gradtts.pt")
    (work / "peer_params.json").write_text(json.dumps({**params, "n_feats": config.audio.n_mels}))
    out = {"n_params": int(model.nparams)}
    if args.vocoder == "hifigan":
        from grad_tts.model.hifi_gan import models as hifigan_models

        generator = hifigan_models.Generator()
        torch.save({"generator": generator.state_dict()}, work / "peer_hifigan.pt")
        config_json = Path(hifigan_models.__file__).with_name("hifigan-config.json")
        shutil.copy(config_json, work / "peer_hifigan_config.json")
    return out


def prepare_ours(args: argparse.Namespace) -> dict[str, Any]:
    """Converts the peer's weights: ``work/ours`` run folder and ``work/hifigan`` folder."""
    import numpy as np
    import tensorflow as tf

    apply_framework_threads(args.threads, tf=tf)
    from gradtts_tf.audio import inverse_mel_basis
    from gradtts_tf.config import Config, load_config
    from gradtts_tf.convert import gradtts_from_official

    config = load_config(args.config)
    work = Path(args.workdir)
    model = gradtts_from_official(work / "peer_gradtts.pt", config)
    run = work / "ours"
    run.mkdir(exist_ok=True)
    model.save_weights(run / "model.weights.h5")
    config.save(run / "config.yaml")
    a = config.audio
    inv = inverse_mel_basis(a.sample_rate, a.n_fft, a.n_mels, a.f_min, a.f_max)
    np.save(work / "inv_mel_basis.npy", np.asarray(inv, np.float32))  # [n_mels, bins]
    if args.vocoder == "hifigan":
        from gradtts_tf.convert.hifigan import hifigan_from_official, vocoder_config_from_official

        official = work / "peer_hifigan_config.json"
        generator = hifigan_from_official(work / "peer_hifigan.pt", official, n_mels=a.n_mels)
        folder = work / "hifigan"
        folder.mkdir(exist_ok=True)
        generator.save_weights(folder / "generator.weights.h5")
        Config(audio=a, vocoder=vocoder_config_from_official(official)[0]).save(
            folder / "config.yaml"
        )
    return {"n_params": sum(int(np.prod(v.shape)) for v in model.trainable_weights)}


def write_inputs(path: Path, batch_sizes: list[int], add_blank: bool) -> dict[str, Any]:
    """Token ids of the sentences, padded per batch size, into one ``.npz``."""
    import numpy as np

    from gradtts_tf.text import text_to_ids

    arrays, lengths = {}, {}
    for batch in batch_sizes:
        seqs = [text_to_ids(SENTENCES[i % len(SENTENCES)], add_blank=add_blank)
                for i in range(batch)]
        lens = np.array([len(s) for s in seqs], np.int32)
        x = np.zeros((batch, lens.max()), np.int32)  # [B, T_x]
        for i, s in enumerate(seqs):
            x[i, : len(s)] = s
        arrays[f"x_{batch}"], arrays[f"x_lengths_{batch}"] = x, lens
        lengths[batch] = lens.tolist()
    np.savez(path, **arrays)
    return lengths


# ---------------------------------------------------------------------------
# Contender workers
# ---------------------------------------------------------------------------


def _griffin_lim(work: Path, audio_cfg: dict[str, Any]):
    """The numpy Griffin-Lim of ``export/run_tflite.py`` for one mel ``[T, n_mels]``."""
    import numpy as np

    from gradtts_tf.export.run_tflite import griffin_lim

    inv = np.load(work / "inv_mel_basis.npy")
    return lambda mel: griffin_lim(
        mel, inv, n_fft=audio_cfg["n_fft"], hop_length=audio_cfg["hop_length"],
        win_length=audio_cfg["win_length"],
    )


class KerasContender:
    """``GradTTS.synthesise`` in a ``tf.function`` plus the TF HiFi-GAN (or Griffin-Lim)."""

    def __init__(self, args: argparse.Namespace):
        import tensorflow as tf

        self.thread_settings = apply_framework_threads(args.threads, tf=tf)
        from gradtts_tf.export.savedmodel import load_checkpoint
        from gradtts_tf.vocoder import load_vocoder

        self.tf = tf
        work = Path(args.workdir)
        self.model, self.config = load_checkpoint(work / "ours")
        if args.worker == "keras-bf16":
            self.model = self.model.with_decoder_dtype("mixed_bfloat16")
        self.args = args
        self._fns: dict[tuple[int, float], Any] = {}
        self.hop = self.config.audio.hop_length
        self.vocode_batch = None
        self.vocode_item = None
        if args.vocoder == "hifigan":
            self.vocode_batch = load_vocoder(work / "hifigan", self.config.audio)
        elif args.vocoder == "griffin-lim":
            self.vocode_item = _griffin_lim(work, self.config.audio.__dict__)

    def _fn(self, steps: int, temperature: float, solver: str):
        key = (steps, temperature, solver)
        if key not in self._fns:
            tf, model, ls = self.tf, self.model, self.args.length_scale
            from gradtts_tf.runtime import freeze

            # Weights frozen in, as `Synthesizer` runs them; stateless noise (seed 0).
            self._fns[key] = freeze(
                lambda x, x_lengths: model.synthesise(
                    x, x_lengths, n_timesteps=steps, temperature=temperature,
                    length_scale=ls, seed=0, solver=solver,
                ),
                [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)],
            )
        return self._fns[key]

    def run(self, x, x_lengths, steps: int, temperature: float, vocode: bool,
            solver: str = "euler") -> dict[str, Any]:
        start = time.perf_counter()
        out = self._fn(steps, temperature, solver)(x, x_lengths)
        mel = out["model_outputs"].numpy()  # [B, T, n_mels]
        lengths = out["mel_lengths"].numpy()
        t_mel = time.perf_counter() - start
        result = {"mel": mel, "lengths": lengths, "times": {"mel": t_mel}}
        if vocode and self.vocode_batch is not None:
            # One call on the padded batch, like the peer (no per-item length masking).
            wav = self.vocode_batch(mel)  # [B, T * hop]
            _ = [wav[i, : n * self.hop] for i, n in enumerate(lengths)]
        elif vocode and self.vocode_item is not None:
            _ = [self.vocode_item(mel[i, :n]) for i, n in enumerate(lengths)]
        if vocode:
            result["times"]["total"] = time.perf_counter() - start
        return result


class TFLiteContender:
    """``TFLiteSynthesizer`` of ``export/run_tflite.py``, one utterance per call."""

    def __init__(self, args: argparse.Namespace, model_dir: Path):
        import numpy as np

        from gradtts_tf.export.run_tflite import TFLiteSynthesizer

        self.np = np
        self.tts = TFLiteSynthesizer(model_dir, num_threads=args.threads)
        self.thread_settings = {"threads": args.threads, "tflite_num_threads": args.threads}
        self.args = args
        self.vocode_item = self.tts.mel_to_audio
        if args.vocoder == "griffin-lim":
            self.vocode_item = _griffin_lim(Path(args.workdir), self.tts.audio)
        if args.vocoder == "hifigan" and self.tts.vocoder is None:
            raise SystemExit(f"{model_dir} was exported without the HiFi-GAN vocoder graph")

    def run(self, x, x_lengths, steps: int, temperature: float, vocode: bool,
            solver: str = "euler") -> dict[str, Any]:
        np = self.np
        start = time.perf_counter()
        mels = []
        for i, n in enumerate(x_lengths):
            enc = self.tts.encode(x[i, :n], self.args.length_scale)
            noise = np.zeros(enc["mu_y"].shape, np.float32) if temperature == float("inf") else None
            mels.append(self.tts.decode(enc, steps, temperature, noise=noise, seed=i,
                                        solver=solver))
        t_mel = time.perf_counter() - start
        lengths = np.array([m.shape[0] for m in mels])
        mel = np.zeros((len(mels), lengths.max(), mels[0].shape[1]), np.float32)
        for i, m in enumerate(mels):
            mel[i, : m.shape[0]] = m
        result = {"mel": mel, "lengths": lengths, "times": {"mel": t_mel}}
        if vocode:
            _ = [self.vocode_item(m) for m in mels]
            result["times"]["total"] = time.perf_counter() - start
        return result


class PeerContender:
    """The official ``GradTTS.forward`` (PyTorch) plus its HiFi-GAN (or Griffin-Lim)."""

    def __init__(self, args: argparse.Namespace):
        import torch

        self.thread_settings = apply_framework_threads(args.threads, torch=torch)
        if args.worker == "peer-bf16":
            torch.backends.mkldnn.conv.fp32_precision = "bf16"
            torch.backends.mkldnn.matmul.fp32_precision = "bf16"
        from grad_tts.model.tts import GradTTS

        self.torch = torch
        work = Path(args.workdir)
        params = json.loads((work / "peer_params.json").read_text())
        self.model = GradTTS(**params)
        self.model.load_state_dict(torch.load(work / "peer_gradtts.pt", weights_only=True))
        self.model.eval()
        self.args = args
        self.hop = 256
        self.vocoder = None
        self.vocode_item = None
        if args.vocoder == "hifigan":
            from grad_tts.model.hifi_gan.models import Generator

            self.vocoder = Generator()
            state = torch.load(work / "peer_hifigan.pt", weights_only=True)["generator"]
            self.vocoder.load_state_dict(state)
            self.vocoder.eval()
            self.vocoder.remove_weight_norm()  # as the official inference.py
            self.hop = int(self.vocoder.h.hop_size)
        elif args.vocoder == "griffin-lim":
            from gradtts_tf.config import load_config

            audio = load_config(work / "ours" / "config.yaml").audio
            self.hop = audio.hop_length
            self.vocode_item = _griffin_lim(work, audio.__dict__)

    def run(self, x, x_lengths, steps: int, temperature: float, vocode: bool) -> dict[str, Any]:
        torch = self.torch
        with torch.no_grad():
            start = time.perf_counter()
            xt = torch.from_numpy(x).long()
            xl = torch.from_numpy(x_lengths).long()
            _, y_dec, attn = self.model(
                xt, xl, n_timesteps=steps, temperature=temperature, stoc=False,
                length_scale=self.args.length_scale,
            )
            lengths = attn.sum(dim=(1, 2, 3)).long().numpy()  # [B] frames per item
            mel = y_dec.transpose(1, 2).contiguous().numpy()  # [B, T, n_feats]
            t_mel = time.perf_counter() - start
            result = {"mel": mel, "lengths": lengths, "times": {"mel": t_mel}}
            if vocode and self.vocoder is not None:
                wav = self.vocoder(y_dec).clamp(-1, 1)[:, 0].numpy()  # [B, T * hop]
                _ = [wav[i, : n * self.hop] for i, n in enumerate(lengths)]
            elif vocode and self.vocode_item is not None:
                _ = [self.vocode_item(mel[i, :n]) for i, n in enumerate(lengths)]
            if vocode:
                result["times"]["total"] = time.perf_counter() - start
        return result


def run_contender(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    work = Path(args.workdir)
    if args.worker == "keras-bf16":
        from gradtts_tf.runtime import set_cpu_math

        set_cpu_math("bfloat16")  # before TensorFlow runs an op in this worker
    if args.worker in ("keras", "keras-bf16"):
        contender = KerasContender(args)
    elif args.worker in ("peer", "peer-bf16"):
        contender = PeerContender(args)
    else:
        contender = TFLiteContender(args, Path(args.tflite_dir) / args.worker.split("-", 1)[1])
    config = json.loads((work / "run_settings.json").read_text())
    sample_rate, hop = config["sample_rate"], config["hop_length"]
    vocode = args.vocoder != "none"
    out: dict[str, Any] = {"thread_settings": contender.thread_settings, "runs": []}
    with np.load(work / "inputs.npz") as data:
        inputs = {k: data[k] for k in data.files}

    # Noise-free run (temperature = inf: z = mu_y) for the cross-implementation check.
    x, xl = inputs["x_1"], inputs["x_lengths_1"]
    check = contender.run(x, xl, CHECK_STEPS, float("inf"), vocode=False)
    n = int(check["lengths"][0])
    np.save(work / f"check_{args.worker}.npy", check["mel"][0, :n])

    # The peer has only the official Euler sampler.
    is_peer = args.worker.startswith("peer")
    solver = {} if is_peer else {"solver": args.solver}
    all_steps = args.peer_steps if is_peer and args.peer_steps else args.steps
    for batch in args.batch_sizes:
        x, xl = inputs[f"x_{batch}"], inputs[f"x_lengths_{batch}"]
        for steps in all_steps:
            probe = contender.run(x, xl, steps, args.temperature, vocode=False, **solver)
            audio_s = float(np.sum(probe["lengths"])) * hop / sample_rate
            stats = measure_phases(
                lambda x=x, xl=xl, steps=steps: contender.run(
                    x, xl, steps, args.temperature, vocode, **solver
                )["times"],
                args.warmup, args.reps,
            )
            line = ", ".join(
                f"{phase} median {s['median_s']:.3f} s (RTF {s['median_s'] / audio_s:.3f})"
                for phase, s in stats.items()
            )
            print(f"  {args.worker} batch {batch} steps {steps}: {line}", flush=True)
            out["runs"].append(
                {
                    "batch": batch, "steps": steps, "audio_s": audio_s,
                    "mel_frames": [int(v) for v in probe["lengths"]], "stats": stats,
                }
            )
    return out


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------


def _run_module(module: str, args: list[str], label: str) -> bool:
    """Runs ``python -m module args`` from the project root; False (with a note) on failure."""
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT)
    if proc.returncode != 0:
        print(f"NOTE: {label} failed (exit {proc.returncode}); its contenders are skipped")
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", nargs="+", type=int, default=[4, 10, 50])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument(
        "--contenders", nargs="+", choices=CONTENDERS, default=list(DEFAULT_CONTENDERS),
        help="default: all but tflite-int8 (a precision trade, opt-in like keras-bf16)",
    )
    parser.add_argument("--vocoder", choices=VOCODERS, default="hifigan")
    parser.add_argument(
        "--solver", default="euler",
        help="reverse-diffusion solver of our contenders (the peer has Euler only)",
    )
    parser.add_argument(
        "--peer-steps", nargs="+", type=int, default=None,
        help="the peer's steps (default: --steps); with a single value, every row's "
        "*_vs_peer compares with the peer at those steps",
    )
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="model config")
    parser.add_argument("--temperature", type=float, default=1.5)
    parser.add_argument(
        "--length-scale", type=float, default=1.0,
        help="duration multiplier of every contender (same weights, so same mel lengths)",
    )
    parser.add_argument("--seed", type=int, default=37)
    parser.add_argument(
        "--workdir", default=None, help="keep weights/exports here (default: a temporary folder)"
    )
    parser.add_argument(
        "--tflite-dir", default=None,
        help="reuse an 'export.tflite' output made from WORKDIR/ours (default: export it)",
    )
    add_common_args(parser, reps=3, warmup=1)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    configure_threads(args.threads)
    if args.worker:
        if args.worker == "prepare-peer":
            result = prepare_peer(args)
        elif args.worker == "prepare-ours":
            result = prepare_ours(args)
        else:
            result = run_contender(args)
        Path(args.worker_out).write_text(json.dumps(result, default=lambda o: o.tolist()))
        return

    info = machine_info(args.threads)
    print_header("Synthesis RTF: Keras / TFLite vs grad-tts (PyTorch)", info)
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="gradtts_bench_synth_")
        args.workdir = tmp.name
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        rows, raw, notes, checks = _drive(args, work, notes=[])
    finally:
        if tmp is not None:
            tmp.cleanup()
    columns = (
        "batch", "steps", "contender", "solver", "audio_s", "mel_s", "rtf_mel", "mel_vs_peer",
        "total_s", "rtf_total", "total_vs_peer",
    )
    print()
    print(format_table(rows, columns))
    print(
        "medians; rtf = seconds / seconds of audio (< 1: faster than real time); *_vs_peer: "
        f"time / peer's time (< 1 is faster); vocoder: {args.vocoder}"
    )
    for name, c in checks.items():
        print(f"check vs peer ({CHECK_STEPS} steps, no noise, batch 1) {name}: {c}")
    for note in notes:
        print(f"NOTE: {note}")
    write_json(
        args.json,
        {
            "benchmark": "synthesis",
            "machine": info,
            "settings": {
                "config": args.config, "steps": args.steps, "batch_sizes": args.batch_sizes,
                "contenders": args.contenders, "vocoder": args.vocoder,
                "solver": args.solver, "peer_steps": args.peer_steps,
                "temperature": args.temperature, "length_scale": args.length_scale,
                "seed": args.seed, "reps": args.reps, "warmup": args.warmup,
                "sentences": list(SENTENCES),
                "inputs": "token ids of the sentences (front end not timed); same random "
                "weights in every contender (peer state dict converted)",
            },
            "results": rows,
            "checks": checks,
            "notes": notes,
            "raw": raw,
        },
    )


def _drive(args: argparse.Namespace, work: Path, notes: list[str]):
    import numpy as np

    from gradtts_tf.config import load_config

    common = [
        "--workdir", str(work), "--config", args.config, "--threads", str(args.threads),
        "--vocoder", args.vocoder, "--seed", str(args.seed),
    ]
    print("preparing shared weights (peer state dict -> ours)", flush=True)
    peer_prep = run_worker("bench.synthesis", [*common, "--worker", "prepare-peer"])
    ours_prep = run_worker("bench.synthesis", [*common, "--worker", "prepare-ours"])
    config = load_config(args.config)
    (work / "run_settings.json").write_text(
        json.dumps(
            {"sample_rate": config.audio.sample_rate, "hop_length": config.audio.hop_length}
        )
    )
    lengths = write_inputs(work / "inputs.npz", args.batch_sizes, config.text.add_blank)
    print(
        f"parameters: peer {peer_prep['n_params']:,}, ours {ours_prep['n_params']:,}; "
        f"ids per item: {lengths}",
        flush=True,
    )

    contenders = list(args.contenders)
    tflite = [c for c in contenders if c.startswith("tflite")]
    if tflite:
        if args.tflite_dir is None:
            args.tflite_dir = str(work / "tflite")
            export_args = ["--checkpoint", str(work / "ours"), "--out", args.tflite_dir]
            if args.vocoder == "hifigan":
                export_args += ["--vocoder", str(work / "hifigan")]
            if "tflite-int8" in tflite:
                export_args.append("--int8")
            print("exporting TFLite graphs (python -m export.tflite)", flush=True)
            if not _run_module("export.tflite", export_args, "TFLite export"):
                notes.append("TFLite export failed: tflite contenders skipped")
                contenders = [c for c in contenders if c not in tflite]
        for c in tflite:
            folder = Path(args.tflite_dir) / c.split("-", 1)[1]
            if c in contenders and not (folder / "model_info.json").is_file():
                notes.append(f"{folder} missing: {c} skipped")
                contenders.remove(c)

    worker_common = [
        *common, "--length-scale", str(args.length_scale),
        "--temperature", str(args.temperature), "--reps", str(args.reps),
        "--warmup", str(args.warmup), "--steps", *map(str, args.steps),
        "--batch-sizes", *map(str, args.batch_sizes), "--solver", args.solver,
        *(["--peer-steps", *map(str, args.peer_steps)] if args.peer_steps else []),
    ]
    if args.tflite_dir:
        worker_common += ["--tflite-dir", args.tflite_dir]
    results: dict[str, Any] = {}
    for contender in contenders:
        print(f"contender {contender}", flush=True)
        try:
            results[contender] = run_worker(
                "bench.synthesis", [*worker_common, "--worker", contender]
            )
        except RuntimeError as err:
            notes.append(f"{contender} failed: {err}")

    checks = {}
    peer_mel_file = work / "check_peer.npy"
    if peer_mel_file.is_file():
        ref = np.load(peer_mel_file)
        for contender in results:
            if contender == "peer":
                continue  # the reference of the check
            mel = np.load(work / f"check_{contender}.npy")
            if mel.shape != ref.shape:
                checks[contender] = {"same_length": False, "frames": [mel.shape[0], ref.shape[0]]}
                notes.append(f"{contender}: mel length differs from the peer's")
                continue
            err = np.abs(mel - ref)
            checks[contender] = {
                "same_length": True, "frames": int(mel.shape[0]),
                "max_abs_diff": float(err.max()), "mean_abs_diff": float(err.mean()),
                "max_abs_ref": float(np.abs(ref).max()),
            }

    rows, raw = [], []
    peer_runs = {(r["batch"], r["steps"]): r for r in results.get("peer", {}).get("runs", [])}
    for contender, result in results.items():
        raw.append({"contender": contender, **result})
        for r in result["runs"]:
            vs_steps = args.peer_steps[0] if args.peer_steps and len(args.peer_steps) == 1 \
                else r["steps"]
            peer = peer_runs.get((r["batch"], vs_steps))
            if peer and peer["mel_frames"] != r["mel_frames"]:
                notes.append(
                    f"{contender} batch {r['batch']}: mel frames {r['mel_frames']} differ from "
                    f"the peer's {peer['mel_frames']}: unequal work (its *_vs_peer compare RTFs)"
                )
            row = {
                "batch": r["batch"], "steps": r["steps"], "contender": contender,
                "solver": "euler" if contender.startswith("peer") else args.solver,
                "audio_s": r["audio_s"],
            }
            for phase in ("mel", "total"):
                s = r["stats"].get(phase)
                if s is None:
                    continue
                row[f"{phase}_s"] = s["median_s"]
                row[f"rtf_{phase}"] = s["median_s"] / r["audio_s"]
                if peer and phase in peer["stats"]:
                    # Time per second of audio: the same as the time ratio when the mel
                    # lengths are equal, and fair when they are not (int8 durations).
                    peer_rtf = peer["stats"][phase]["median_s"] / peer["audio_s"]
                    row[f"{phase}_vs_peer"] = row[f"rtf_{phase}"] / peer_rtf
            rows.append(row)
    rows.sort(key=lambda r: (r["batch"], r["steps"], r["contender"]))
    return rows, raw, notes, checks


if __name__ == "__main__":
    main()
