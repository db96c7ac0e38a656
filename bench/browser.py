"""The browser page's speed: real-time factor per TF.js backend, against Keras.

The voice (the packaged demo voice by default) is exported for TF.js as ``make web``
does it (``python -m export.tfjs --quantize float16``), the page is built from
``export/web`` (``node build.mjs``) and served by `gradtts_tf.export.web` on
127.0.0.1 (COOP/COEP headers, so WASM may use threads), and headless Chromium
(Debian's ``/usr/bin/chromium``, ``--enable-unsafe-webgpu``) is driven with
playwright-core (``export/web/tests/browser_test.mjs``): one browser per contender,
the backend forced with ``?backend=``, then for each setting (solver and steps) the
Solver control, the steps slider and the seed box are set and *Speak* is clicked
``--warmup`` untimed then ``--reps`` timed times on the same text. The page's own
timings are used: encoder, diffusion (the host loop over ``decoder_step``), vocoder
(the voice's Griffin-Lim, in JavaScript) and total.

Contenders: ``wasm`` (SIMD; TF.js' thread count, half the logical cores), ``wasm-2threads``
(the same with 4 cores emulated through the DevTools protocol, so TF.js takes 2
threads), ``webgl``, ``webgpu`` (where the browser has it; the encoder then runs on
WASM, as the page does), ``cpu`` (plain JavaScript, opt-in). A contender whose runs of
one setting take longer than ``--max-seconds`` stops after its first timed run; a GPU
that the page finds emulated on the CPU (SwiftShader: Chromium without a GPU) gets one
run per setting, compilation included (``software_gpu`` says so). The
reference in the same run: the Keras `Synthesizer` on the same voice, text, seed and
settings (``--threads`` threads, Griffin-Lim in TensorFlow): the voice's temperature,
length scale 1. Also recorded: the
backend the page picks by itself (no ``?backend=``), and its measurement of every
backend (``?candidates=wasm,webgl,webgpu``: software GPUs included).

RTF = median seconds / seconds of audio: ``rtf_mel`` text to mel (encoder and
diffusion), ``rtf_total`` text to waveform; ``mel_vs_keras`` = ``rtf_mel`` / Keras'.

Usage::

    python -m bench.browser --json bench/results/browser.json | tee bench/results/browser.log
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
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
    print_header,
    summarize,
    write_json,
)

WEB = ROOT / "export" / "web"
CHROMIUM = "/usr/bin/chromium"
TEXT = "The browser speaks this sentence offline, on the device."
SEED = 0
CHROMIUM_ARGS = ["--enable-unsafe-webgpu"]
# name -> (backend forced with ?backend=, DevTools-emulated logical cores or None)
CONTENDERS = {
    "wasm": ("wasm", None),
    "wasm-2threads": ("wasm", 4),
    "webgl": ("webgl", None),
    "webgpu": ("webgpu", None),
    "cpu": ("cpu", None),
}
DEFAULT_CONTENDERS = ["wasm", "wasm-2threads", "webgl", "webgpu"]


def parse_setting(text: str) -> tuple[str, int]:
    """``"dpmpp-2m:4"`` -> ``("dpmpp-2m", 4)``.

    Raises:
        argparse.ArgumentTypeError: Not ``SOLVER:STEPS`` with a known solver.
    """
    from gradtts_tf.solvers import SOLVERS

    solver, _, steps = text.partition(":")
    if solver not in SOLVERS or not steps.isdigit() or int(steps) < 1:
        raise argparse.ArgumentTypeError(
            f"expected SOLVER:STEPS with SOLVER one of {', '.join(SOLVERS)}, got {text!r}")
    return solver, int(steps)


def prepare_page(args: argparse.Namespace, work: Path) -> tuple[Path, Path, dict[str, Any]]:
    """The TF.js export (made unless ``--tfjs-dir``) and the page built from the sources.

    Returns:
        ``(export folder, page folder, the export's report.json)``.
    """
    node = shutil.which("node")
    if node is None or not (WEB / "node_modules" / "playwright-core").is_dir():
        sys.exit("node or export/web/node_modules missing: run `make web-deps`")
    if not Path(CHROMIUM).is_file():
        sys.exit(f"{CHROMIUM} not found: run `make web-deps`")
    tfjs = Path(args.tfjs_dir) if args.tfjs_dir else work / "tfjs"
    if not args.tfjs_dir:
        print(f"exporting {args.voice} for TF.js (float16 weights) ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "gradtts_tf.export.tfjs", "--checkpoint", args.voice,
             "--out", os.fspath(tfjs), "--quantize", "float16"],
            cwd=ROOT, check=True,
        )
    dist = work / "dist"
    subprocess.run([node, "build.mjs", os.fspath(dist)], cwd=WEB, check=True,
                   capture_output=True, timeout=300)
    report_path = tfjs / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    return tfjs, dist, report


def drive(url: str, work: Path, name: str, backend: str, request: dict[str, Any],
          timeout: float) -> dict[str, Any]:
    """Runs ``browser_test.mjs`` on the page; returns its summary."""
    out = work / name
    out.mkdir(parents=True, exist_ok=True)
    request = {
        "url": url, "chromium": CHROMIUM, "user_data_dir": os.fspath(out / "profile"),
        "out_dir": os.fspath(out), "backend": backend, "extra_args": CHROMIUM_ARGS,
        "timeout_ms": int(timeout * 1000), **request,
    }
    path = out / "request.json"
    path.write_text(json.dumps(request))
    proc = subprocess.run(
        ["node", os.fspath(WEB / "tests" / "browser_test.mjs"), os.fspath(path)],
        cwd=WEB, capture_output=True, text=True, timeout=timeout * 4, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: the page failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def page_rows(name: str, summary: dict[str, Any], warmup: int) -> list[dict[str, Any]]:
    """One row per setting from the driver's repeats (the first ``warmup`` untimed)."""
    rows = []
    details = summary["backend"]["details"]
    for run in summary["solver_runs"]:
        timed = run["repeats"][warmup:]
        phases = {p: summarize([r["timings"][p] for r in timed])
                  for p in ("encoder", "diffusion", "vocoder", "total")}
        mel = summarize([r["timings"]["encoder"] + r["timings"]["diffusion"] for r in timed])
        audio = timed[0]["audio_seconds"]
        rows.append({
            "contender": name, "backend": run["backend"],
            "threads": details.get("threads"), "solver": run["solver"], "steps": run["steps"],
            "frames": run["mel_frames"], "audio_s": audio, "reps": len(timed),
            "encoder_s": phases["encoder"]["median_s"],
            "diffusion_s": phases["diffusion"]["median_s"],
            "step_s": phases["diffusion"]["median_s"] / run["steps"],
            "vocoder_s": phases["vocoder"]["median_s"], "total_s": phases["total"]["median_s"],
            "rtf_mel": mel["median_s"] / audio, "rtf_total": phases["total"]["median_s"] / audio,
            "first_s": run["repeats"][0]["timings"]["total"],
            "stats": {"mel": mel, **phases},
        })
    return rows


def keras_rows(
    args: argparse.Namespace, settings: list[tuple[str, int]], temperature: float
) -> list[dict]:
    """The Keras `Synthesizer` on the same voice, text, seed and settings."""
    import tensorflow as tf

    from gradtts_tf import Synthesizer

    threads = apply_framework_threads(args.threads, tf=tf)
    synth = Synthesizer.from_pretrained(args.voice)
    rows = []
    for solver, steps in settings:
        first = None
        runs = []
        for k in range(args.warmup + args.reps):
            (utterance,), t = synth.synthesize([args.text], seed=SEED, steps=steps,
                                               solver=solver, temperature=temperature,
                                               length_scale=1.0)
            if k == 0:
                first = t.total
            if k >= args.warmup:
                runs.append(t)
        audio = runs[0].audio
        mel = summarize([t.encoder + t.decoder for t in runs])
        total = summarize([t.total for t in runs])
        diffusion = summarize([t.decoder for t in runs])
        rows.append({
            "contender": "keras", "backend": "tensorflow", "threads": threads["tf_intra_op"],
            "solver": solver, "steps": steps, "frames": int(utterance.mel.shape[0]),
            "audio_s": audio, "reps": len(runs),
            "encoder_s": statistics.median(t.encoder for t in runs),
            "diffusion_s": diffusion["median_s"], "step_s": diffusion["median_s"] / steps,
            "vocoder_s": statistics.median(t.vocoder for t in runs),
            "total_s": total["median_s"], "rtf_mel": mel["median_s"] / audio,
            "rtf_total": total["median_s"] / audio, "first_s": first,
            "stats": {"mel": mel, "total": total, "diffusion": diffusion},
        })
        print(f"  keras {solver} {steps} steps: RTF mel {rows[-1]['rtf_mel']:.3f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, reps=3, warmup=1)
    parser.add_argument("--voice", default="demo", help="installed voice or run folder (demo)")
    parser.add_argument("--text", default=TEXT, help="the sentence every contender speaks")
    parser.add_argument("--settings", nargs="+", type=parse_setting,
                        default=[("euler", 10), ("dpmpp-2m", 4)],
                        help="SOLVER:STEPS pairs (euler:10 dpmpp-2m:4)")
    parser.add_argument("--contenders", nargs="+", choices=list(CONTENDERS),
                        default=DEFAULT_CONTENDERS,
                        help=f"page backends ({' '.join(DEFAULT_CONTENDERS)}; also cpu)")
    parser.add_argument("--no-keras", action="store_true", help="skip the Keras reference")
    parser.add_argument("--max-seconds", type=float, default=300,
                        help="a contender's runs of one setting stop after this long, "
                             "once warm-up and one timed run are done (300)")
    parser.add_argument("--tfjs-dir", default=None,
                        help="use this TF.js export instead of exporting --voice")
    parser.add_argument("--workdir", default=None, help="keep the export and page here")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.warmup < 0:
        parser.error("--reps must be >= 1 and --warmup >= 0")
    configure_threads(args.threads)

    from gradtts_tf.export.web import serve_in_thread

    info = machine_info(args.threads)
    print_header("the browser page (TF.js) per backend, against Keras", info)
    with tempfile.TemporaryDirectory(prefix="gradtts_bench_browser_") as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        tfjs, dist, report = prepare_page(args, work)
        # The voice's temperature; length scale 1 (the page's rate slider cannot hold
        # every 1 / length_scale).
        sampling = json.loads((tfjs / "model_info.json").read_text()).get("sampling") or {}
        temperature = float(sampling.get("temperature", 1.5))
        server, url = serve_in_thread(tfjs, dist_dir=dist)
        page: dict[str, Any] = {}
        rows: list[dict[str, Any]] = []
        raw: dict[str, Any] = {}
        skipped: dict[str, str] = {}
        try:
            base = {"text": args.text, "steps": args.settings[0][1],
                    "temperature": temperature, "rate": 1.0}
            # The page's own choice, then its measurement of every backend.
            for key, query in (("auto", {}), ("measured", {"candidates": "wasm,webgl,webgpu"})):
                start = time.perf_counter()
                summary = drive(url, work, f"choice-{key}", "auto", {**base, "query": query},
                                timeout=600)
                page[key] = {"backend": summary["backend"], "text": summary["backend_info"],
                             "page_ready_s": summary["page_ready_seconds"],
                             "wall_s": time.perf_counter() - start}
                print(f"page choice ({key}): {summary['backend_info']}", flush=True)
            page["user_agent"] = summary["user_agent"]
            # GPUs the page found emulated on the CPU: one run per setting, compilation
            # included (a step there takes seconds; the figures only say how slow).
            software = page["auto"]["backend"]["skipped"]
            for name in args.contenders:
                backend, cores = CONTENDERS[name]
                warmup, reps = (0, 1) if backend in software else (args.warmup, args.reps)
                runs = [{"solver": solver, "steps": steps, "seed": SEED,
                         "repeats": warmup + reps, "max_seconds": args.max_seconds,
                         "min_repeats": warmup + 1} for solver, steps in args.settings]
                print(f"{name}: {len(runs)} settings x {warmup} + {reps} runs ...", flush=True)
                summary = drive(url, work, name, backend,
                                {**base, "solver_runs": runs, "hardware_concurrency": cores},
                                timeout=max(600.0, 4 * args.max_seconds))
                choice = summary["backend"]
                if choice["backend"] != backend:
                    skipped[name] = choice["unavailable"].get(backend, "not available")
                    print(f"  {name}: skipped, {skipped[name]}", flush=True)
                    continue
                raw[name] = {"backend": choice, "backend_info": summary["backend_info"],
                             "solver_runs": summary["solver_runs"],
                             "console_errors": summary["console_errors"]}
                for row in page_rows(name, summary, warmup):
                    row["software_gpu"] = software.get(backend)
                    rows.append(row)
                    print(f"  {name} {row['solver']} {row['steps']} steps: RTF mel "
                          f"{row['rtf_mel']:.3f}, total {row['rtf_total']:.3f} "
                          f"({row['reps']} timed runs)", flush=True)
        finally:
            server.shutdown()
            server.server_close()
    if not args.no_keras:
        rows += keras_rows(args, args.settings, temperature)
        keras = {(r["solver"], r["steps"]): r for r in rows if r["contender"] == "keras"}
        for row in rows:
            ref = keras.get((row["solver"], row["steps"]))
            row["mel_vs_keras"] = row["rtf_mel"] / ref["rtf_mel"] if ref else None
    print()
    print(format_table(rows, ["contender", "threads", "solver", "steps", "audio_s", "reps",
                              "encoder_s", "step_s", "vocoder_s", "rtf_mel", "rtf_total",
                              "mel_vs_keras"]))
    print("medians; rtf = seconds / seconds of audio (< 1: faster than real time); "
          "vocoder: Griffin-Lim (JavaScript in the page, TensorFlow in Keras)")
    for name, reason in skipped.items():
        print(f"{name}: not run ({reason})")
    write_json(args.json, {
        "benchmark": "browser", "machine": info, "voice": args.voice, "text": args.text,
        "seed": SEED, "temperature": temperature, "length_scale": 1.0,
        "settings": [list(s) for s in args.settings], "export": report,
        "page_choice": page, "skipped": skipped, "results": rows, "runs": raw,
    })


if __name__ == "__main__":
    main()
