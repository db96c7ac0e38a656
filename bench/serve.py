"""HTTP serving: throughput and latency of ``gradtts-serve`` under concurrent clients.

The server runs as its own process (``python -m gradtts_tf.serve``, the demo voice, its
own settings) on 127.0.0.1 and is driven by client threads (``http.client``) in this
one. Every scenario sends the same requests: the first ``--requests`` sentences of the
demo corpus's dev set, each with its own fixed seed. Scenarios, each on a fresh server:

* ``one at a time``: a single client, each request after the previous one's audio;
* ``K clients``: ``--clients`` clients share the request list, so up to K requests
  are in the server at once, with

  - micro-batching as served by default (``--max-padding`` 0.25: sentences up to a
    quarter longer than a batch's shortest share a call),
  - exact micro-batching (``--max-padding 0``: only sentences of one padded length
    share a call, so no request's audio depends on its batch),
  - no batching (``--max-batch 1``): the requests queue and run one by one;
* ``K clients, paragraphs``: half as many requests of three dev sentences each, without
  batching, and with the default batching whole (``POST /api/tts``: the first audio is
  the whole audio) and streamed (``POST /api/tts/stream``: each sentence sent when
  ready), timing the first audio bytes.

``throughput_vs_baseline`` divides by the first row of the same requests (sentences:
one at a time; paragraphs: no batching).

Reported: throughput (seconds of audio per second of wall time), request latency p50 /
p95 and, streamed, the time to first audio p50 / p95. Bounded by ``--requests`` and
``--max-seconds`` per scenario.

Usage::

    python -m bench.serve --json bench/results/serve.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

from bench.common import ROOT, format_table, machine_info, print_header, write_json

SERVERS = {
    "batching": [],
    "exact batching": ["--max-padding", "0"],
    "no batching": ["--max-batch", "1"],
}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m gradtts_tf.serve`` on a free port, stopped with SIGTERM."""

    def __init__(self, args: list[str], threads: int):
        self.port = _free_port()
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gradtts_tf.serve", "--port", str(self.port), *args],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 300
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.proc.stderr.read()[-2000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.5)

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health") as r:
            return json.load(r)["voices"]["demo"]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _request(port: int, path: str, text: str, seed: int) -> dict[str, float]:
    """One request; seconds to the response headers, first audio and last byte."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = json.dumps({"text": text, "seed": seed, "format": "pcm"})
    start = time.perf_counter()
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"{path}: {response.status} {response.read()[:300]!r}")
    first = None
    size = 0
    while chunk := response.read1(65536):
        if first is None:
            first = time.perf_counter() - start
        size += len(chunk)
    end = time.perf_counter() - start
    conn.close()
    rate = int(response.getheader("X-Sample-Rate"))
    return {"latency_s": end, "first_audio_s": first, "audio_s": size / 2 / rate}


def paragraphs(sentences: list[str], n: int, size: int = 3) -> list[str]:
    """``n`` texts of ``size`` consecutive sentences each."""
    return [" ".join(sentences[i * size : (i + 1) * size]) for i in range(n)]


def run_scenario(port: int, path: str, texts: list[str], clients: int,
                 max_seconds: float) -> dict[str, Any]:
    """``clients`` threads work through ``texts``; returns the scenario's figures."""
    todo = list(enumerate(texts))
    lock = threading.Lock()
    results: list[dict[str, float]] = []
    errors: list[str] = []
    start = time.perf_counter()

    def client() -> None:
        while time.perf_counter() - start < max_seconds:
            with lock:
                if not todo:
                    return
                k, text = todo.pop(0)
            try:
                result = _request(port, path, text, seed=1000 + k)
            except Exception as e:  # noqa: BLE001 - reported in the results
                errors.append(str(e))
                return
            with lock:
                results.append(result)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies = sorted(r["latency_s"] for r in results)
    firsts = sorted(r["first_audio_s"] for r in results)
    audio = sum(r["audio_s"] for r in results)

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, round(q * (len(values) - 1)))] if values else None

    return {
        "clients": clients, "requests": len(results), "errors": errors,
        "wall_s": wall, "audio_s": audio, "throughput": audio / wall,
        "latency_p50_s": statistics.median(latencies) if latencies else None,
        "latency_p95_s": pct(latencies, 0.95),
        "first_audio_p50_s": statistics.median(firsts) if firsts else None,
        "first_audio_p95_s": pct(firsts, 0.95),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--requests", type=int, default=32,
                        help="requests per scenario: dev sentences (32)")
    parser.add_argument("--max-seconds", type=float, default=300,
                        help="stop a scenario's clients after this long (300)")
    parser.add_argument("--threads", type=int, default=2,
                        help="OMP_NUM_THREADS of the server (2)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.requests < 1:
        parser.error("--clients and --requests must be >= 1")

    from gradtts_tf.demo_data import load_corpus

    dev = load_corpus("dev")
    texts = dev[: args.requests]
    long_texts = paragraphs(dev, max(1, args.requests // 2))
    info = machine_info(args.threads)
    print_header("gradtts-serve under concurrent clients (demo voice)", info)
    rows = []

    def record(name: str, server_args: list[str], path: str, clients: int,
               requests: list[str]) -> None:
        server = Server(server_args, args.threads)
        try:
            row = run_scenario(server.port, path, requests, clients, args.max_seconds)
            row.update(scenario=name, server_args=" ".join(server_args) or "(defaults)",
                       path=path, **{f"server_{k}": v for k, v in server.health().items()})
        finally:
            server.stop()
        rows.append(row)
        print(format_table([row], ["scenario", "requests", "throughput", "latency_p50_s",
                                   "latency_p95_s", "first_audio_p50_s",
                                   "server_largest_batch"]), flush=True)

    record("one at a time", SERVERS["batching"], "/api/tts", 1, texts)
    for name, server_args in SERVERS.items():
        record(f"{args.clients} clients, {name}", server_args, "/api/tts", args.clients,
               texts)
    record(f"{args.clients} clients, paragraphs, no batching", SERVERS["no batching"],
           "/api/tts", args.clients, long_texts)
    for how, path in (("whole", "/api/tts"), ("streamed", "/api/tts/stream")):
        record(f"{args.clients} clients, paragraphs, batching, {how}", SERVERS["batching"],
               path, args.clients, long_texts)

    n_sentence_rows = 1 + len(SERVERS)
    for group in (rows[:n_sentence_rows], rows[n_sentence_rows:]):
        for row in group:
            row["throughput_vs_baseline"] = row["throughput"] / group[0]["throughput"]
    print()
    print(format_table(rows, ["scenario", "requests", "throughput",
                              "throughput_vs_baseline", "latency_p50_s",
                              "latency_p95_s", "first_audio_p50_s", "first_audio_p95_s",
                              "server_batches", "server_largest_batch"]))
    write_json(args.json, {"benchmark": "serve", "machine": info, "texts": len(texts),
                           "paragraphs": len(long_texts), "results": rows})


if __name__ == "__main__":
    main()
