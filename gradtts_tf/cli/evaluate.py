"""Objective evaluation of a voice: ``python evaluate.py --checkpoint RUN --sentences FILE``.

Synthesises each sentence, transcribes it offline with PocketSphinx and prints WER and
CER; with ``--references DIR`` (an LJSpeech folder, matched by text) also MCD, the
duration ratio and the same figures for the recordings themselves and for their mels
through each vocoder (the ceilings). ``--json FILE`` writes everything. See
`gradtts_tf.evaluation` for the definitions.

Held-out sentences of the demo dataset, as split during training::

    python evaluate.py --checkpoint runs/demo_voice --references data/demo --split val

An exported TFLite folder (one precision), run by LiteRT as an app runs it::

    python evaluate.py --tflite exported/int8 --config gradtts_tf/voices/demo/config.yaml \
        --references data/demo --split val
"""

from __future__ import annotations

import argparse

from gradtts_tf.cli import add_sampling_arguments, check_sampling_arguments
from gradtts_tf.cli.quiet import add_verbose_argument, quiet_tensorflow


def main(argv: list[str] | None = None) -> None:
    quiet_tensorflow(argv)  # before anything imports TensorFlow
    from gradtts_tf.runtime import CPU_MATH, CPU_MATH_SYNTHESIS_HELP, set_cpu_math

    parser = argparse.ArgumentParser(
        description="WER/CER (PocketSphinx), MCD, duration ratio and RTF of a Grad-TTS voice."
    )
    voice = parser.add_mutually_exclusive_group()
    voice.add_argument(
        "--checkpoint", help="run folder (config.yaml + model.weights.h5) or installed voice; "
        "without it (or --tflite) only the reference ceilings are measured",
    )
    voice.add_argument(
        "--tflite", metavar="DIR", help="a precision folder written by 'python -m "
        "export.tflite' (e.g. OUT/int8), run by LiteRT as an app runs it, with its own "
        "vocoder graph (Griffin-Lim if it has none); --vocoder then sets the ceilings only",
    )
    parser.add_argument(
        "--sentences", help="text file, one sentence a line ('#' comments; 'id|text|...' "
        "lines give their text); default: the texts of --references",
    )
    parser.add_argument("--references", help="LJSpeech folder of reference recordings")
    parser.add_argument(
        "--split", choices=["all", "train", "val"], default="all",
        help="part of --references to use, as split in training (default: all)",
    )
    parser.add_argument(
        "--config", help="YAML defining the split (data.n_val, data.split_seed); "
        "default: the checkpoint's config.yaml",
    )
    parser.add_argument(
        "--vocoder", default="griffin-lim", help="'griffin-lim' or a HiFi-GAN folder"
    )
    parser.add_argument(
        "--vocoders", default=None, help="comma-separated vocoders for the ceilings "
        "(reference mel -> vocoder -> ASR); default: --vocoder; 'none' to skip",
    )
    parser.add_argument("--no-recordings", action="store_true", help="skip the recordings row")
    add_sampling_arguments(parser)
    parser.add_argument("--speaker", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="first N sentences only")
    parser.add_argument("--json", help="write the full report here")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--cpu-math", choices=CPU_MATH, default="float32",
                        help=CPU_MATH_SYNTHESIS_HELP)
    parser.add_argument("--threads", type=int, default=None,
                        help="LiteRT interpreter threads (--tflite; default: LiteRT's)")
    add_verbose_argument(parser)
    args = parser.parse_args(argv)
    if not args.sentences and not args.references:
        parser.error("give --sentences, --references or both")
    check_sampling_arguments(parser, args)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be >= 1")
    if args.tflite:
        if args.cpu_math != "float32":
            parser.error("--cpu-math applies to TensorFlow; --tflite runs in LiteRT")
        if args.split != "all" and not args.config:
            parser.error(f"--split {args.split} with --tflite needs --config: the training "
                         "config that defined the split (data.n_val, data.split_seed)")
    elif args.threads is not None:
        parser.error("--threads applies to --tflite only")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")

    set_cpu_math(args.cpu_math)  # before any layer runs
    # Imported after argument parsing so --help is instant.
    from gradtts_tf.config import AudioConfig, load_config
    from gradtts_tf.evaluation import evaluate, load_references, load_vocoder, read_sentences

    config = None
    if args.checkpoint:
        from gradtts_tf.voices import resolve_voice

        config_file = resolve_voice(args.checkpoint) / "config.yaml"
        if not config_file.is_file():
            parser.error(f"{config_file} not found: --checkpoint takes a run folder")
        config = load_config(config_file)
    tflite = None
    if args.tflite:
        from gradtts_tf.export.run_tflite import TFLiteSynthesizer

        try:
            tflite = TFLiteSynthesizer(args.tflite, num_threads=args.threads)
        except FileNotFoundError as err:
            parser.error(str(err))
    split_config = load_config(args.config) if args.config else config
    if tflite is not None:
        audio_config = AudioConfig(**tflite.audio)  # the settings the export was made with
    else:
        audio_config = config.audio if config is not None else AudioConfig()

    references = []
    if args.references:
        references = load_references(args.references, args.split, split_config)
        print(f"{len(references)} reference recordings ({args.split}) in {args.references}")
    sentences = read_sentences(args.sentences) if args.sentences else None
    if sentences is None:
        sentences = [r.text for r in references]
    if args.limit:
        sentences = sentences[: args.limit]

    synth = tflite  # the runner has the Synthesizer's tts() and synthesis_settings()
    if args.checkpoint:
        from gradtts_tf.synthesizer import Synthesizer

        synth = Synthesizer.from_pretrained(
            args.checkpoint,
            vocoder=load_vocoder(args.vocoder, audio_config, config.griffin_lim),
            decoder_dtype=args.cpu_math,
        )
    vocoders = [args.vocoder] if args.vocoders is None else [
        v.strip() for v in args.vocoders.split(",") if v.strip() and v.strip() != "none"
    ]
    report = evaluate(
        synth, sentences, references, vocoders=vocoders, recordings=not args.no_recordings,
        audio_config=audio_config, steps=args.steps, temperature=args.temperature,
        length_scale=args.length_scale, speaker=args.speaker, seed=args.seed,
        progress=not args.quiet, solver=args.solver,
    )
    report.settings.update({
        "checkpoint": args.checkpoint, "tflite": args.tflite,
        "vocoder": args.vocoder if tflite is None else (
            "griffin-lim" if tflite.vocoder is None else "vocoder.tflite"
        ),
        "references": args.references,
        "split": args.split, "sentences": args.sentences,
    })
    print(report.table("model" if synth is not None else "recordings"))
    if args.json:
        report.save_json(args.json)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
