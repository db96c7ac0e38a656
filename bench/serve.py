"""HTTP serving: throughput and latency of ``gradtts-serve`` under concurrent clients.

Each server configuration runs as its own process (``python -m gradtts_tf.serve``, the
demo voice, its own settings) on 127.0.0.1, driven by client threads (``http.client``)
in this one. Every scenario sends the same requests: the first ``--requests`` sentences
of the demo corpus's dev set, each with its own fixed seed. Scenarios:

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
p95 and, streamed, the time to first audio p50 / p95, each the median over ``--rounds``
rounds; the rounds run every scenario in alternating order against servers that stay up,
and the throughput ratio to a group's baseline is taken within each round. Bounded by
``--requests`` and ``--max-seconds`` per scenario.

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
    parser.add_argument("--rounds", type=int, default=2,
                        help="times every scenario runs, in alternating order (2)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    if min(args.clients, args.requests, args.rounds) < 1:
        parser.error("--clients, --requests and --rounds must be >= 1")

    from gradtts_tf.demo_data import load_corpus

    dev = load_corpus("dev")
    texts = dev[: args.requests]
    long_texts = paragraphs(dev, max(1, args.requests // 2))
    info = machine_info(args.threads)
    print_header("gradtts-serve under concurrent clients (demo voice)", info)
    k = args.clients
    scenarios = [  # (name, server, path, clients, requests); a group's first is its baseline
        ("one at a time", "batching", "/api/tts", 1, texts),
        *((f"{k} clients, {name}", name, "/api/tts", k, texts) for name in SERVERS),
        (f"{k} clients, paragraphs, no batching", "no batching", "/api/tts", k, long_texts),
        (f"{k} clients, paragraphs, batching, whole", "batching", "/api/tts", k, long_texts),
        (f"{k} clients, paragraphs, batching, streamed", "batching", "/api/tts/stream", k,
         long_texts),
    ]
    groups = [scenarios[: 1 + len(SERVERS)], scenarios[1 + len(SERVERS):]]
    # All servers stay up (an idle one costs no CPU), and the rounds alternate the order,
    # so a slow spell of a shared machine does not land on one scenario only.
    servers = {}
    try:
        for name, server_args in SERVERS.items():
            servers[name] = Server(server_args, args.threads)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in scenarios}
        for r in range(args.rounds):
            for name, server, path, clients, requests in (
                    scenarios if r % 2 == 0 else scenarios[::-1]):
                before = servers[server].health()
                row = run_scenario(servers[server].port, path, requests, clients,
                                   args.max_seconds)
                after = servers[server].health()
                row.update(scenario=name, round=r, server=server,
                           server_args=" ".join(SERVERS[server]) or "(defaults)", path=path,
                           server_batches=after["batches"] - before["batches"],
                           server_jobs=after["jobs"] - before["jobs"])
                runs[name].append(row)
                print(format_table([row], ["scenario", "round", "requests", "throughput",
                                           "latency_p50_s", "first_audio_p50_s",
                                           "server_batches"]), flush=True)
    finally:
        for server in servers.values():
            server.stop()

    rows = []
    for group in groups:
        base = runs[group[0][0]]
        for name, _server, path, clients, _requests in group:
            per_round = runs[name]
            ratios = [row["throughput"] / b["throughput"]
                      for row, b in zip(per_round, base, strict=True)]
            summary = {"scenario": name, "server_args": per_round[0]["server_args"],
                       "path": path, "clients": clients, "rounds": len(per_round),
                       "requests": sum(row["requests"] for row in per_round),
                       "errors": sum(len(row["errors"]) for row in per_round),
                       "throughput_vs_baseline": statistics.median(ratios),
                       "throughput_vs_baseline_per_round": ratios}
            for key in ("throughput", "latency_p50_s", "latency_p95_s",
                        "first_audio_p50_s", "first_audio_p95_s"):
                summary[key] = statistics.median(row[key] for row in per_round)
            summary["requests_per_batch"] = (
                sum(row["server_jobs"] for row in per_round)
                / max(1, sum(row["server_batches"] for row in per_round)))
            rows.append(summary)
    print()
    print(format_table(rows, ["scenario", "requests", "throughput",
                              "throughput_vs_baseline", "latency_p50_s",
                              "latency_p95_s", "first_audio_p50_s", "first_audio_p95_s",
                              "requests_per_batch"]))
    write_json(args.json, {"benchmark": "serve", "machine": info, "texts": len(texts),
                           "paragraphs": len(long_texts), "results": rows,
                           "runs": runs})

if __name__ == "__main__":
    main()
