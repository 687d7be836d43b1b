"""Load test of nsad serve on this machine: a bounded number of requests from concurrent clients.

Starts the service on 127.0.0.1 at a free port (or uses ``--url``, which must be a localhost
address), sends at most ``--requests`` requests within ``--seconds`` from ``--clients`` concurrent
clients, and prints requests per second, p50/p99 latency and the error count. For comparison it
first times the bare inferencer (decode + predict of the same bytes, one at a time) and a single
client against the service, so the service's own cost is a ratio measured in the same run.

    .venv/bin/python scripts/load_serve.py --model runs/bottle-onnx --clients 8 --requests 400 --seconds 120
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import uvicorn

from nsad.data.io import IMAGE_SUFFIXES, read_image_bytes
from nsad.deploy import Inferencer
from nsad.deploy.service import create_app


def start_server(model: Path, workers: int, queue: int, threads: int | None) -> tuple[str, uvicorn.Server]:
    """The service on 127.0.0.1 at a free port, in a thread; its URL once it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(Inferencer(model, threads=threads), workers=workers, queue=queue)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            if httpx.get(f"{url}/v1/health").status_code == 200:
                return url, server
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("the service did not start")


async def load(url: str, bodies: list[bytes], clients: int, requests: int, seconds: float):
    """Latencies (ms), error count and elapsed seconds of ``requests`` posts from ``clients`` clients."""
    latencies, errors, sent = [], 0, 0
    deadline = time.perf_counter() + seconds

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors, sent
        while sent < requests and time.perf_counter() < deadline:
            body = bodies[sent % len(bodies)]
            sent += 1
            start = time.perf_counter()
            try:
                answer = await http.post("/v1/predict", content=body, headers={"Content-Type": "image/png"})
                ok = answer.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - start)
            errors += not ok

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=clients)) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return np.array(latencies) * 1e3, errors, elapsed


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--url", help="an already running service on localhost (default: start one)")
    parser.add_argument("--images", type=Path, help="folder of images (default: the bundled sample's test images)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queue", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per inference")
    args = parser.parse_args()
    if args.requests > 10_000 or args.seconds > 1800:
        parser.error("at most 10,000 requests and 1,800 seconds")
    from nsad.data.folder import sample_data_path

    folder = args.images or sample_data_path() / "test"
    bodies = [p.read_bytes() for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    if args.url:
        if urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
            parser.error("--url must be a localhost address")
        url = args.url
    else:
        url, _ = start_server(args.model, args.workers, args.queue, args.threads)
    print(f"{len(bodies)} images; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"service {url} ({args.workers} workers, {args.threads} ONNX Runtime thread(s) each)")

    inferencer = Inferencer(args.model, threads=args.threads)
    count = min(args.requests, 50)
    bare = []
    for i in range(count):
        start = time.perf_counter()
        inferencer.predict([read_image_bytes(bodies[i % len(bodies)])])
        bare.append(time.perf_counter() - start)
    bare = np.array(bare) * 1e3
    single, errors1, _ = asyncio.run(load(url, bodies, 1, count, args.seconds))
    print(f"bare inferencer, one at a time: p50 {np.percentile(bare, 50):.1f} ms, p99 {np.percentile(bare, 99):.1f} ms")
    print(f"service, 1 client:  p50 {np.percentile(single, 50):.1f} ms, p99 {np.percentile(single, 99):.1f} ms "
          f"({np.percentile(single, 50) / np.percentile(bare, 50) - 1:+.1%} over the bare inferencer), "
          f"{errors1} errors")
    latencies, errors, elapsed = asyncio.run(load(url, bodies, args.clients, args.requests, args.seconds))
    print(f"service, {args.clients} clients: {len(latencies)} requests in {elapsed:.1f} s = "
          f"{len(latencies) / elapsed:.1f} requests/s, p50 {np.percentile(latencies, 50):.1f} ms, "
          f"p99 {np.percentile(latencies, 99):.1f} ms, {errors} errors")


if __name__ == "__main__":
    main()
