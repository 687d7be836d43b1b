"""``nsad serve``: an exported model (or a run, exported first) behind HTTP on 127.0.0.1."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from nsad.deploy.service import MAX_PIXELS, MAX_UPLOAD_BYTES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve a model over HTTP (POST /v1/predict, GET /v1/health, GET /v1/model)",
        description="Run the HTTP service (FastAPI, uvicorn) with ONNX Runtime. POST /v1/predict takes an image "
                    "(multipart upload or raw body; ?map=true adds the map as a PNG) and answers score, threshold, "
                    "decision, defect regions and timing as JSON. Listens on 127.0.0.1 unless --host says "
                    "otherwise. Requests beyond --workers + --queue get 503.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="model folder written by nsad export")
    source.add_argument("--run", type=Path, help="run folder; exported to a temporary folder first")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--workers", type=int, default=2, help="inference threads (default 2)")
    parser.add_argument("--queue", type=int, default=8, help="requests that may wait for a thread (default 8)")
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads per inference (default: its own)")
    parser.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_BYTES / 2**20,
                        help=f"largest image file accepted, MiB (default {MAX_UPLOAD_BYTES / 2**20:g})")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                        help=f"largest image accepted, width x height (default {MAX_PIXELS:,})")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from nsad.deploy import Inferencer
    from nsad.deploy.service import serve

    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port must be in 1..65535, got {args.port}")
    options = {"workers": args.workers, "queue": args.queue, "max_upload_bytes": int(args.max_upload_mb * 2**20),
               "max_pixels": args.max_pixels}
    if args.workers < 1 or args.queue < 0:
        raise ValueError(f"need --workers >= 1 and --queue >= 0, got {args.workers} and {args.queue}")
    with tempfile.TemporaryDirectory(prefix="nsad-serve-") as scratch:
        folder = args.model
        if folder is None:
            from nsad.pipeline.export import export_run

            folder = Path(scratch) / "model"
            export_run(args.run, folder)
        inferencer = Inferencer(folder, threads=args.threads)
        print(f"nsad serve: {inferencer.spec.method} on http://{args.host}:{args.port} "
              f"(POST /v1/predict, GET /v1/health, GET /v1/model)")
        serve(inferencer, args.host, args.port, **options)
    return 0
