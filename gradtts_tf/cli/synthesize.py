"""Text to WAV files with a trained Grad-TTS (a thin CLI over `gradtts_tf.Synthesizer`).

    python inference.py --checkpoint runs/mine --file sentences.txt --out wavs/ \\
        --vocoder griffin-lim --steps 10 --batch-size 16 --seed 0

Each line of ``--file`` is one utterance, written to ``wavs/NNNN.wav`` by line number
(``--text`` is line 1). Long lines are spoken sentence by sentence and joined with a
short pause. Empty lines, lines with nothing pronounceable and lines too long to split
are reported and skipped. At the end the real-time factor of each stage is printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gradtts_tf.cli import add_sampling_arguments, check_sampling_arguments
from gradtts_tf.cli.quiet import add_verbose_argument, quiet_tensorflow

LINES_PER_ROUND = 256  # lines synthesised (and held in memory) at a time


def _plot_mel(path: Path, mel, title: str) -> None:
    """Writes a PNG of a mel ``[frames, n_mels]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, min(20.0, mel.shape[0] / 40)), 3.5))
    im = ax.imshow(mel.T, aspect="auto", origin="lower", interpolation="none")  # [n_mels, T]
    ax.set_title(title if len(title) <= 90 else title[:87] + "...", fontsize=9)
    ax.set_xlabel("frame")
    ax.set_ylabel("mel bin")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    from gradtts_tf.runtime import CPU_MATH, CPU_MATH_SYNTHESIS_HELP
    from gradtts_tf.text.segment import DEFAULT_MAX_TOKENS, DEFAULT_SENTENCE_PAUSE

    p = argparse.ArgumentParser(
        description="Text to WAV with a trained Grad-TTS: one WAV per input line.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True,
                   help="run folder (config.yaml + model.weights.h5) from train.py or "
                        "python -m gradtts_tf.convert, or an installed voice's name (demo)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="one utterance")
    src.add_argument("--file", help="UTF-8 text file, one utterance a line ('-': stdin)")
    p.add_argument("--out", default="out", help="output folder")
    p.add_argument("--vocoder", default="griffin-lim",
                   help="'griffin-lim' or a HiFi-GAN checkpoint folder")
    add_sampling_arguments(p)
    p.add_argument("--speaker", type=int, default=None, help="speaker id (multi-speaker)")
    p.add_argument("--stochastic", action="store_true",
                   help="the official stochastic sampler (the same as --solver euler-sde)")
    p.add_argument("--seed", type=int, default=None,
                   help="line n uses seed + n - 1 (random if not given; printed)")
    p.add_argument("--batch-size", type=int, default=16, help="sentences per model call")
    p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS,
                   help="longest sentence in encoder ids; longer ones are split at commas")
    p.add_argument("--no-split", action="store_true",
                   help="speak each line whole instead of sentence by sentence")
    p.add_argument("--sentence-pause", type=float, default=DEFAULT_SENTENCE_PAUSE,
                   help="seconds of silence between sentences")
    p.add_argument("--cpu-math", choices=CPU_MATH, default="float32",
                   help=CPU_MATH_SYNTHESIS_HELP)
    p.add_argument("--save-mel", action="store_true", help="also write NNNN.npy [frames, n_mels]")
    p.add_argument("--plot", action="store_true", help="also write NNNN.png of the mel")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_verbose_argument(p)
    return p


def main(argv: list[str] | None = None) -> None:
    quiet_tensorflow(argv)  # before anything imports TensorFlow
    parser = build_parser()
    args = parser.parse_args(argv)
    check_sampling_arguments(parser, args)
    if args.stochastic:
        if args.solver not in (None, "euler-sde"):
            parser.error(f"--stochastic is --solver euler-sde; it cannot go with {args.solver}")
        args.solver = "euler-sde"
    if args.batch_size < 1 or args.max_tokens < 1:
        parser.error("--batch-size and --max-tokens must be >= 1")
    if args.sentence_pause < 0:
        parser.error("--sentence-pause must be >= 0")

    if args.text is not None:
        lines = [args.text]
    else:
        try:
            raw = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            parser.error(f"cannot read --file {args.file}: {e}")
        lines = raw.splitlines()
    if not lines:
        parser.error("no input lines")

    import secrets

    from gradtts_tf.runtime import set_cpu_math

    set_cpu_math(args.cpu_math)  # before any layer runs
    from gradtts_tf.audio import save_audio
    from gradtts_tf.synthesizer import Synthesizer, Timings

    try:
        synth = Synthesizer.from_pretrained(args.checkpoint, vocoder=args.vocoder,
                                            decoder_dtype=args.cpu_math)
        synth.check_speaker(args.speaker)
    except (OSError, ValueError) as e:
        parser.error(str(e))
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    print(f"model {args.checkpoint}, vocoder {getattr(synth.vocoder, 'name', synth.vocoder)}, "
          f"{synth.sample_rate} Hz; seed {seed}"
          + ("" if args.seed is not None else f" (--seed {seed} reproduces this run)"))
    try:
        settings = synth.synthesis_settings(
            args.steps, args.temperature, args.length_scale, args.solver
        )
    except ValueError as e:
        parser.error(str(e))
    print(f"{settings.steps} reverse-diffusion steps ({settings.solver}), temperature "
          f"{settings.temperature:g}, length scale {settings.length_scale:g}")

    warm = synth.warmup(settings.steps, speaker=args.speaker, solver=settings.solver)
    print(f"graph tracing and warm-up: {warm:.1f} s (not counted below)")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(len(lines))))
    total, written, skipped = Timings(), 0, 0
    for first in range(0, len(lines), LINES_PER_ROUND):
        utts, timings = synth.synthesize(
            lines[first : first + LINES_PER_ROUND], steps=settings.steps,
            temperature=settings.temperature, length_scale=settings.length_scale,
            speaker=args.speaker, seed=seed, solver=settings.solver, batch_size=args.batch_size,
            split_sentences=not args.no_split, max_tokens=args.max_tokens,
            sentence_pause=args.sentence_pause, first_index=first,
            progress=not args.no_progress,
        )
        total.add(timings)
        for u in utts:
            n = u.index + 1
            if u.error is not None:
                reason = "empty line" if u.error == "empty text" else u.error
                print(f"line {n}: skipped: {reason}")
                skipped += 1
                continue
            stem = out / f"{n:0{width}d}"
            save_audio(stem.with_suffix(".wav"), u.audio, synth.sample_rate)
            if args.save_mel:
                import numpy as np

                np.save(stem.with_suffix(".npy"), u.mel.astype(np.float32))
            if args.plot:
                _plot_mel(stem.with_suffix(".png"), u.mel, f"line {n}: {u.text}")
            parts = f", {len(u.pieces)} sentences" if len(u.pieces) > 1 else ""
            print(f"line {n}: wrote {stem.with_suffix('.wav')} "
                  f"({len(u.audio) / synth.sample_rate:.2f} s{parts})")
            written += 1

    print(f"\n{written} WAV file(s) in {out}, {skipped} line(s) skipped")
    print(total.report())
    if written == 0:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
