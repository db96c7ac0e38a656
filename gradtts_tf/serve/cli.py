"""``gradtts-serve``: the HTTP API and web page on one host and port."""

from __future__ import annotations

import argparse
import sys

from gradtts_tf.cli.quiet import add_verbose_argument, quiet_tensorflow
from gradtts_tf.serve.settings import ServerSettings


def build_parser() -> argparse.ArgumentParser:
    defaults = ServerSettings()
    p = argparse.ArgumentParser(
        prog="gradtts-serve",
        description="Serve Grad-TTS voices over HTTP: a JSON/WAV API (OpenAPI schema at "
                    "/openapi.json, interactive docs at /docs), an OpenAI-compatible "
                    "/v1/audio/speech, streaming, and a web page at /.",
    )
    p.add_argument("--voice", action="append", default=None, metavar="NAME_OR_FOLDER",
                   help="a voice to serve: an installed name (demo) or a run folder; "
                        "repeatable, the first is the default (default: demo)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; "
                        "0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--max-chars", type=int, default=defaults.max_chars,
                   help=f"longest text a request may send (default {defaults.max_chars})")
    p.add_argument("--max-steps", type=int, default=defaults.max_steps,
                   help=f"most diffusion steps a request may ask (default {defaults.max_steps})")
    p.add_argument("--max-batch", type=int, default=defaults.max_batch,
                   help=f"most requests per synthesis call; 1 turns micro-batching off "
                        f"(default {defaults.max_batch})")
    p.add_argument("--max-padding", type=float, default=defaults.max_padding,
                   help="batch sentences up to this fraction longer than a batch's "
                        "shortest (padded); 0: only equal lengths, so a request's audio "
                        "never depends on its batch "
                        f"(default {defaults.max_padding:g})")
    p.add_argument("--batch-wait-ms", type=float, default=defaults.batch_wait_ms,
                   help="milliseconds to wait for more requests after the first "
                        f"(default {defaults.batch_wait_ms:g})")
    p.add_argument("--queue-size", type=int, default=defaults.queue_size,
                   help="requests waiting per voice before 503 "
                        f"(default {defaults.queue_size})")
    p.add_argument("--timeout", type=float, default=defaults.timeout,
                   help=f"seconds a request may take before 503 (default {defaults.timeout:g})")
    p.add_argument("--no-warmup", action="store_true",
                   help="skip tracing the graphs at start-up (the first request pays)")
    add_verbose_argument(p)  # also logs every request
    return p


def main(argv=None) -> None:
    quiet_tensorflow(argv)  # before anything imports TensorFlow
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be 1..65535, got {args.port}")
    try:
        settings = ServerSettings(
            voices=tuple(args.voice or ServerSettings().voices), max_chars=args.max_chars,
            max_steps=args.max_steps, max_batch=args.max_batch,
            max_padding=args.max_padding,
            batch_wait_ms=args.batch_wait_ms, queue_size=args.queue_size,
            timeout=args.timeout, warmup=not args.no_warmup,
        )
    except ValueError as e:
        parser.error(str(e).replace("_", "-"))

    import logging

    import uvicorn

    # The server's own messages (ready, stopping, stopped), without TensorFlow's.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("gradtts-serve: %(message)s"))
    serve_log = logging.getLogger("gradtts_tf.serve")
    serve_log.addHandler(handler)
    serve_log.setLevel(logging.INFO)
    serve_log.propagate = False

    from gradtts_tf.serve.app import create_app, load_synthesizers

    try:
        synths = load_synthesizers(settings)
    except (FileNotFoundError, ValueError) as e:
        parser.error(f"--voice: {e}")
    app = create_app(settings, synths)
    print(f"gradtts-serve: {', '.join(synths)} on http://{args.host}:{args.port}/ "
          "(Ctrl-C to stop)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port,
                log_level="info" if args.verbose else "warning",
                timeout_graceful_shutdown=int(settings.timeout) + 1)
    sys.exit(0)
