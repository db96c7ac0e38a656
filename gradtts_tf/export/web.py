"""Local web server for the TF.js browser demo (``python -m export.web --model-dir DIR``).

Serves the page bundled from ``export/web`` by ``make web-build`` into the package
(``gradtts_tf/export/web_dist``, installed with it: ``index.html``,
``app.js``, the TF.js WASM binaries) at ``/`` and an export folder of
``python -m export.tfjs`` at ``/model/``. Everything is local: the page works offline.
The responses are cross-origin isolated (COOP/COEP headers), which lets TF.js' WASM
backend use threads.
"""

from __future__ import annotations

import argparse
import functools
import os
import posixpath
import threading
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DIST_DIR = Path(__file__).resolve().parent / "web_dist"
MODEL_PREFIX = "/model/"


class DemoRequestHandler(SimpleHTTPRequestHandler):
    """Static files: ``/model/*`` from the export folder, everything else from ``dist``."""

    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".js": "text/javascript",
        ".json": "application/json",
        ".bin": "application/octet-stream",
        ".f32": "application/octet-stream",
    }

    def __init__(self, *args, dist_dir: Path, model_dir: Path, quiet: bool = True, **kwargs):
        self.dist_dir = dist_dir
        self.model_dir = model_dir
        self.quiet = quiet
        super().__init__(*args, directory=os.fspath(dist_dir), **kwargs)

    def translate_path(self, path: str) -> str:
        path = urllib.parse.unquote(path.split("?", 1)[0].split("#", 1)[0])
        root = self.dist_dir
        if path.startswith(MODEL_PREFIX):
            root, path = self.model_dir, path[len(MODEL_PREFIX) - 1 :]
        # normpath + dropping ".." parts keeps requests inside their root folder.
        parts = [p for p in posixpath.normpath(path).split("/") if p and p not in (".", "..")]
        return os.fspath(root.joinpath(*parts))

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (base class name)
        if not self.quiet:
            super().log_message(format, *args)


def make_server(
    model_dir: str | os.PathLike,
    dist_dir: str | os.PathLike = DIST_DIR,
    host: str = "127.0.0.1",
    port: int = 8000,
    quiet: bool = True,
) -> ThreadingHTTPServer:
    """Creates (does not start) the demo server; ``port=0`` picks a free port.

    Args:
        model_dir: Export folder of ``python -m export.tfjs`` (has ``model_info.json``).
        dist_dir: Bundled page (default: the one installed with the package).
        host: Interface to bind (loopback by default).
        port: TCP port.
        quiet: Do not log every request.

    Returns:
        The server; its URL is ``http://{host}:{server.server_port}/``.

    Raises:
        FileNotFoundError: If the page has not been built or the export is missing.
    """
    dist, model = Path(dist_dir), Path(model_dir)
    if not (dist / "index.html").is_file() or not (dist / "app.js").is_file():
        raise FileNotFoundError(
            f"{dist} has no built page: run `make web-build` "
            "(or `npm ci && npm run build` in export/web)"
        )
    if not (model / "model_info.json").is_file():
        raise FileNotFoundError(
            f"{model} is not a TF.js export: run `python -m export.tfjs --checkpoint RUN --out DIR`"
        )
    handler = functools.partial(DemoRequestHandler, dist_dir=dist, model_dir=model, quiet=quiet)
    return ThreadingHTTPServer((host, port), handler)


def serve_in_thread(model_dir: str | os.PathLike, **kwargs) -> tuple[ThreadingHTTPServer, str]:
    """Starts the server on a free loopback port in a daemon thread (for tests).

    Returns:
        ``(server, base URL)``; stop it with ``server.shutdown()``.
    """
    server = make_server(model_dir, port=0, **kwargs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    return server, f"http://{host}:{port}/"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m export.web", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model-dir", required=True, help="export folder of export.tfjs")
    parser.add_argument("--dist", default=os.fspath(DIST_DIR), help="bundled page folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    server = make_server(
        args.model_dir, args.dist, host=args.host, port=args.port, quiet=not args.verbose
    )
    print(f"Grad-TTS web demo: http://{args.host}:{server.server_port}/  (Ctrl+C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
