"""Synthesise speech: ``python inference.py --checkpoint RUN --text "Hello." --out DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Text to WAV with a trained Grad-TTS.")
    parser.add_argument("--checkpoint", required=True, help="run folder (config.yaml + weights)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="one utterance")
    src.add_argument("--file", help="text file, one utterance a line")
    parser.add_argument("--out", required=True, help="output folder for WAVs")
    parser.add_argument("--steps", type=int, default=10, help="reverse-diffusion steps")
    parser.add_argument("--temperature", type=float, default=1.5)
    parser.add_argument("--length-scale", type=float, default=1.0)
    parser.add_argument("--speaker", type=int, default=None)
    parser.add_argument("--stochastic", action="store_true")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    if args.temperature <= 0 or args.length_scale <= 0:
        parser.error("--temperature and --length-scale must be > 0")

    from gradtts_tf.audio import save_audio
    from gradtts_tf.synthesizer import Synthesizer

    lines = [args.text] if args.text else Path(args.file).read_text("utf-8").splitlines()
    synth = Synthesizer.from_pretrained(args.checkpoint)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            print(f"line {i}: empty, skipped")
            continue
        try:
            audio, sr = synth.tts(
                line, n_timesteps=args.steps, temperature=args.temperature,
                length_scale=args.length_scale, speaker=args.speaker, seed=args.seed,
                stoc=args.stochastic,
            )
        except ValueError as e:
            print(f"line {i}: skipped: {e}")
            continue
        path = out / f"{i:04d}.wav"
        save_audio(path, audio, sr)
        print(f"line {i}: wrote {path} ({len(audio) / sr:.2f} s)")


if __name__ == "__main__":
    main()
