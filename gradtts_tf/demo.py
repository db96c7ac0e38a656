"""The Quick start's main job, on the shipped demo voice (``demo``, installed with the package).

``python -m gradtts_tf.demo --data data/demo --out runs/demo`` synthesises sample
sentences (held-out sentences of the demo dataset, which the voice never heard, listed
in the voice's ``heldout.tsv``, and a few new ones) to WAV, transcribes them offline
with PocketSphinx and prints WER/CER (with ``--data``: also MCD and duration ratio
against the flite recordings, and the recordings' own scores), exports the voice for
TFLite and TF.js, and says where everything went and how to open the browser demo.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from gradtts_tf.cli.quiet import add_verbose_argument, quiet_tensorflow
from gradtts_tf.solvers import SOLVER_HELP, SOLVERS
from gradtts_tf.voices import resolve_voice

DEFAULT_VOICE = resolve_voice("demo")

# Not in the demo corpus (a test checks it): speech the voice has never been trained on.
NEW_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Is this the voice of a diffusion model?",
    "Please call me back before seven in the evening.",
)


HELDOUT_FILE = "heldout.tsv"


def read_heldout(voice: str | os.PathLike) -> list[tuple[str, str]]:
    """``(uid, text)`` of the voice's held-out sentences (``VOICE/heldout.tsv``).

    Returns:
        An empty list if the voice has no such file.
    """
    path = resolve_voice(voice) / HELDOUT_FILE
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        uid, sep, text = line.partition("\t")
        if not sep or not text.strip():
            raise ValueError(f"{path}:{n}: expected 'uid<TAB>text', got {line!r}")
        rows.append((uid, text))
    return rows


def package_voice(
    run: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike
) -> list[tuple[str, str]]:
    """Copies a trained run's ``config.yaml`` and ``model.weights.h5`` into a voice folder
    and lists its held-out sentences (the validation split of ``data``) in ``heldout.tsv``.

    Args:
        run: Run folder of `train.py`.
        data: The corpus it was trained on (the split is recomputed from its config).
        out: Voice folder (created; those three files are replaced).

    Returns:
        The ``(uid, text)`` rows written to ``heldout.tsv``.
    """
    from gradtts_tf.config import load_config
    from gradtts_tf.data import prepare_corpus, read_corpus

    run, out = Path(run), Path(out)
    config = load_config(run / "config.yaml")
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.yaml", "model.weights.h5"):
        shutil.copyfile(run / name, out / name)
    manifest = prepare_corpus(data, config, progress=False)
    held_out = {e["uid"] for e in manifest.split("val", config)}
    rows = [(u.uid, u.text) for u in read_corpus(data)[0] if u.uid in held_out]
    # The split depends on every usable utterance of the corpus: say how many it had.
    n_corpus = len(manifest.entries)
    header = (f"# held-out sentences of {Path(data).name} ({n_corpus} utterances): "
              "data.n_val / data.split_seed / data.val_ids of config.yaml\n")
    (out / HELDOUT_FILE).write_text(
        header + "".join(f"{uid}\t{text}\n" for uid, text in rows), encoding="utf-8"
    )
    return rows


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


def run(
    voice: str | os.PathLike,
    out: str | os.PathLike,
    data: str | os.PathLike | None = None,
    n_val: int = 6,
    steps: int | None = None,
    export: bool = True,
    tfjs_quantize: str | None = "float16",
    solver: str | None = None,
) -> dict:
    """Synthesises, evaluates and exports a voice; returns a summary (also ``summary.json``).

    Args:
        voice: Run folder of the voice (``config.yaml`` + ``model.weights.h5``).
        out: Output folder (replaced): ``samples/``, ``evaluation.json``, ``tflite/``,
            ``tfjs/``, ``summary.json``.
        data: The demo dataset (LJSpeech folder) with the recordings of the held-out
            sentences, for MCD, duration ratio and the ceilings; ``None``: WER/CER only.
        n_val: How many of the voice's held-out sentences (``heldout.tsv``) to speak.
        steps: Reverse-diffusion steps (``None``: the voice's ``inference`` config,
            like its temperature and length scale).
        export: Export TFLite (float32, float16) and TF.js.
        tfjs_quantize: TF.js weight storage (``None`` = float32).
        solver: Reverse-diffusion solver (``None``: the voice's).

    Returns:
        ``{"samples", "evaluation", "tflite", "tfjs", "seconds", ...}``: paths and figures.
    """
    from gradtts_tf.config import load_config
    from gradtts_tf.evaluation import evaluate, load_references
    from gradtts_tf.synthesizer import Synthesizer

    voice, out = resolve_voice(voice), Path(out)
    config = load_config(voice / "config.yaml")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    summary: dict = {"voice": str(voice), "out": str(out)}

    heldout = [text for _, text in read_heldout(voice)[:n_val]]
    sentences = heldout + list(NEW_SENTENCES)
    references = load_references(data, "val", config) if data is not None else []
    synth = Synthesizer.from_pretrained(voice)
    settings = synth.synthesis_settings(steps, solver=solver)
    samples = out / "samples"
    print(f"speaking {len(sentences)} sentences with {voice} ({settings.steps} "
          f"{settings.solver} diffusion steps, temperature {settings.temperature:g}, length scale "
          f"{settings.length_scale:g}, Griffin-Lim) and "
          "transcribing them with PocketSphinx ...", flush=True)
    report = evaluate(
        synth, sentences, references, vocoders=["griffin-lim"], steps=settings.steps,
        solver=settings.solver,
        audio_dir=samples,
    )
    report.settings.update({"voice": str(voice), "references": str(data) if data else None})
    report.save_json(out / "evaluation.json")
    lines = [f"{p.name}\t{t}" for p, t in zip(sorted(samples.glob("*.wav")), sentences,
                                                  strict=True)]
    (samples / "sentences.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n" + report.table("model") + "\n", flush=True)
    summary.update({
        "samples": str(samples), "evaluation": str(out / "evaluation.json"),
        "wer": report["model"].overall["wer"], "cer": report["model"].overall["cer"],
        "n_heldout": len(heldout),
    })

    if export:
        from gradtts_tf.export.tflite import export_tflite

        print("exporting TFLite (float32, float16) ...", flush=True)
        tfl = export_tflite(voice, out / "tflite", variants=("float32", "float16"))
        summary["tflite"] = {
            v: {"dir": str(out / "tflite" / v), "bytes": e["total_bytes"]}
            for v, e in tfl["variants"].items()
        }
        from gradtts_tf.export.tfjs import ConverterNotFoundError, export_tfjs

        print("exporting TF.js ...", flush=True)
        try:
            tfjs = export_tfjs(voice, out / "tfjs", quantize=tfjs_quantize)
            summary["tfjs"] = {"dir": str(out / "tfjs"), "bytes": tfjs["total_bytes"]}
        except ConverterNotFoundError as err:
            summary["tfjs"] = {"skipped": str(err)}
    summary["seconds"] = round(time.perf_counter() - start, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def describe(summary: dict) -> str:
    """The closing message: where everything went and what to do with it."""
    out = summary["out"]
    lines = [
        f"Done in {summary['seconds']:.0f} s. Everything is in {out}/:",
        f"  samples/            {summary['samples']}/model_*.wav (texts in sentences.tsv)",
        f"  evaluation.json     WER {100 * summary['wer']:.1f} %, CER "
        f"{100 * summary['cer']:.1f} % (PocketSphinx); per sentence and ceilings inside",
    ]
    for variant, entry in summary.get("tflite", {}).items():
        lines.append(f"  tflite/{variant + '/':<12} {_mb(entry['bytes'])}  "
                     f"(run: python -m export.run_tflite --model-dir {entry['dir']} "
                     "--text 'Hello.' --out hello.wav)")
    tfjs = summary.get("tfjs")
    if tfjs and "dir" in tfjs:
        lines += [
            f"  tfjs/               {_mb(tfjs['bytes'])}  (TF.js graph models + front end)",
            "",
            "Browser demo: `make web TFJS=" + tfjs["dir"] + "`, then open "
            "http://127.0.0.1:8000/ (everything runs in the page, offline).",
        ]
    elif tfjs:
        lines += ["", f"TF.js export skipped: {tfjs['skipped']}"]
    lines += [
        "",
        f"Speak your own text: python inference.py --checkpoint {summary['voice']} "
        "--text 'Your sentence.' --out my_wavs/",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    quiet_tensorflow(argv)  # before anything imports TensorFlow
    parser = argparse.ArgumentParser(prog="python -m gradtts_tf.demo", description=__doc__)
    parser.add_argument("--voice", default="demo",
                        help="voice: a run folder or an installed voice's name (default: demo)")
    parser.add_argument("--data", default=None,
                        help="demo dataset (e.g. data/demo): recordings of the held-out "
                        "sentences for MCD and the ceilings (default: WER/CER only)")
    parser.add_argument("--out", required=True, help="output folder (replaced)")
    parser.add_argument("--package-from", metavar="RUN", default=None,
                        help="instead: copy the trained run RUN into the voice folder --out "
                        "and list its held-out sentences of --data (how models/demo is made)")
    parser.add_argument("--n-val", type=int, default=6, help="held-out sentences to speak")
    parser.add_argument("--steps", "--n-timesteps", type=int, default=None,
                        help="reverse-diffusion steps (default: the voice's inference config)")
    parser.add_argument("--solver", choices=SOLVERS, default=None,
                        help=f"{SOLVER_HELP} (default: the voice's)")
    parser.add_argument("--no-export", action="store_true", help="skip TFLite and TF.js")
    parser.add_argument("--tfjs-float32", action="store_true",
                        help="TF.js weights in float32 (default float16: half the download)")
    add_verbose_argument(parser)
    args = parser.parse_args(argv)
    if args.n_val < 0 or (args.steps is not None and args.steps < 1):
        parser.error("--n-val must be >= 0 and --steps >= 1")
    source = args.package_from or resolve_voice(args.voice)
    for name, folder in (("--data", args.data), ("--voice/--package-from", source)):
        if folder is not None and not Path(folder).is_dir():
            parser.error(f"{name} {folder}: no such folder")
    if not (Path(source) / "model.weights.h5").is_file():
        parser.error(f"{source}: no model.weights.h5 in it (a run folder of train.py?)")
    if args.package_from:
        if args.data is None:
            parser.error("--package-from needs --data (the corpus the run was trained on)")
        rows = package_voice(args.package_from, args.data, args.out)
        print(f"packaged {args.package_from} into {args.out} ({len(rows)} held-out sentences)")
        return
    summary = run(
        args.voice, args.out, data=args.data, n_val=args.n_val, steps=args.steps,
        solver=args.solver, export=not args.no_export,
        tfjs_quantize=None if args.tfjs_float32 else "float16",
    )
    print(describe(summary))


if __name__ == "__main__":
    main()
