"""``nsad export``: a trained run as ``model.onnx`` + ``deploy.json`` for the torch-free runtime."""

from __future__ import annotations

import argparse
from pathlib import Path

from nsad.pipeline.export import OPSET, export_run


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a run to ONNX for nsad predict --model and nsad serve",
        description=f"Write OUT/model.onnx (opset {OPSET}, dynamic batch, fp32; the graph takes [0, 1] images of "
                    "the run's input size and holds the normalisation, the network and its output activation, or "
                    "CutPaste's image and patch embeddings) and OUT/deploy.json (geometry, channels, score rule, "
                    "threshold and its calibration, versions); CutPaste runs add OUT/density.npz. Every method of "
                    "nsad train exports. The export is checked against torch before it is kept.")
    parser.add_argument("--run", required=True, type=Path, help="run folder written by nsad train")
    parser.add_argument("--out", required=True, type=Path, help="model folder to write (new or empty)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    spec = export_run(args.run, args.out)
    print(f"nsad export: {spec.method} ({spec.model}) -> {args.out / 'model.onnx'} and {args.out / 'deploy.json'}; "
          f"ONNX Runtime agrees with torch within {spec.versions['export_check_max_rel_diff']:.2g} (relative)")
    return 0
