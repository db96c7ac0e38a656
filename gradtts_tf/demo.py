"""The Quick start's main job: data pipeline, a short training run, synthesis to WAV.

``python -m gradtts_tf.demo --data data/demo --config configs/demo.yaml --out runs/demo``
prepares the corpus, measures the input pipeline, trains for a few steps with
`model.fit` (graph mode; XLA only on GPUs), and synthesises sample sentences.
A few CPU steps do not make a voice: the WAVs show the path end to end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

SAMPLES = (
    "The quick brown fox jumps over the lazy dog.",
    "Is this the voice of a diffusion model?",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gradtts_tf.demo", description=__doc__)
    parser.add_argument("--data", required=True, help="LJSpeech folder (e.g. data/demo)")
    parser.add_argument("--config", required=True, help="YAML config (e.g. configs/demo.yaml)")
    parser.add_argument("--out", required=True, help="run folder (replaced)")
    parser.add_argument("--steps", type=int, default=30, help="training steps (default 30)")
    parser.add_argument("--n-timesteps", type=int, default=10, help="reverse-diffusion steps")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's C++ start-up chatter out
    from data_function import build_dataset, prepare_corpus
    from gradtts_tf.audio import save_audio
    from gradtts_tf.config import load_config
    from gradtts_tf.synthesizer import Synthesizer
    from gradtts_tf.training import train

    config = load_config(args.config)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)

    manifest = prepare_corpus(args.data, config)
    ds = build_dataset(args.data, config, "train", manifest=manifest)
    start, n = time.perf_counter(), 0
    for _ in ds:
        n += 1
    rate = n / (time.perf_counter() - start)
    print(f"pipeline: {n} training batches in one epoch, {rate:.1f} batches/s")

    history = train(config, args.data, out, epochs=1, steps_per_epoch=args.steps)
    loss = history.history["loss"][-1]
    print(f"trained {args.steps} steps: mean loss {loss:.3f}, val loss "
          f"{history.history.get('val_loss', [float('nan')])[-1]:.3f}")

    synth = Synthesizer.from_pretrained(out)
    samples = out / "samples"
    samples.mkdir(exist_ok=True)
    for i, text in enumerate(SAMPLES):
        audio, sr = synth.tts(text, n_timesteps=args.n_timesteps, seed=i)
        path = samples / f"sample_{i}.wav"
        save_audio(path, audio, sr)
        print(f"wrote {path} ({len(audio) / sr:.2f} s): {text}")
    print(f"\nrun folder: {out} (config.yaml, model.weights.h5, logs/ for TensorBoard, "
          f"history.csv); samples in {samples}")


if __name__ == "__main__":
    main()
