"""``nsad export``: a trained run as an ONNX graph and ``deploy.json``, for the torch-free runtime (:mod:`nsad.deploy`).

The graph takes (B, C, h, w) float32 images in [0, 1] (the output of
:func:`~nsad.data.transforms.test_input`, with a dynamic batch dimension; h x w the paper's
crop, the whole frame, or one tile of a tiled run, whose tiles the runtime cuts and blends with
the torch scorer's code) and holds everything after that which does not depend on the image's
original size:

- ``anomaly-net`` (every segmentation method: NSA, CutPaste end-to-end, FPI, PII): ImageNet (or
  unit) normalisation, the encoder-decoder and its output activation (sigmoid or ReLU) -> ``map``.
- ``ssae`` (Bauer 2022): the autoencoder and the smoothed reconstruction error (Sec. 3.1) -> ``map``.
- ``cutpaste`` (Li et al. 2021): normalisation and the embeddings of the whole image and of every
  patch of the grid -> ``embedding`` (B, D) and ``patch_embeddings`` (B, nh, nw, D). The Gaussian
  densities are scored outside the graph in float64 (``density.npz``), as the torch scorer does.

The exporter is PyTorch's current one (``torch.onnx.export(..., dynamo=True)``), opset
:data:`OPSET`, fp32 weights whatever precision the run was trained in. Every export is checked:
ONNX Runtime and torch must agree on a random batch (the largest difference is recorded in
``deploy.json``).
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

import nsad
from nsad.data.transforms import test_input_hw
from nsad.deploy.spec import DENSITY_NAME, MODEL_NAME, OUTPUTS, SPEC_NAME, DeploySpec, write_spec
from nsad.models.cutpaste import CutPasteNet
from nsad.models.net import logits_to_anomaly_map
from nsad.models.normalize import Normalize
from nsad.models.ssae import reconstruction_anomaly_map
from nsad.pipeline.methods.cutpaste import CutPasteScorer
from nsad.pipeline.methods.ssae import SSAEScorer
from nsad.pipeline.scoring import MapModel, Scorer
from nsad.postprocess import patch_positions

OPSET = 18
INPUT_NAME = "image"
CHECK_TOLERANCE = 1e-3
"""Largest relative difference between ONNX Runtime and torch on the check batch before export fails."""


class SegmentationGraph(nn.Module):
    """Normalisation, the NSA paper's encoder-decoder and its output activation: [0, 1] images -> maps."""

    def __init__(self, scorer: Scorer) -> None:
        super().__init__()
        self.normalize = Normalize(scorer.normalization, scorer.metadata.in_channels)
        self.net = scorer.run.net
        self.label_kind = scorer.metadata.net.label_kind

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, h, w) anomaly maps."""
        return logits_to_anomaly_map(self.net(self.normalize(images)), self.label_kind)


class SSAEGraph(nn.Module):
    """Bauer's autoencoder and its heatmap (smoothed mean absolute reconstruction error) on [0, 1] images."""

    def __init__(self, scorer: Scorer) -> None:
        super().__init__()
        model: SSAEScorer = scorer.model  # type: ignore[assignment]
        self.net, self.sigma_px = model.net, model.sigma_px

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, h, w) heatmaps."""
        return reconstruction_anomaly_map(self.net(images), images, self.sigma_px)


class CutPasteGraph(nn.Module):
    """Normalisation and CutPaste's embeddings of the whole image and of its patch grid."""

    def __init__(self, scorer: Scorer) -> None:
        super().__init__()
        model: CutPasteScorer = scorer.model  # type: ignore[assignment]
        self.normalize = Normalize(scorer.normalization, scorer.metadata.in_channels)
        self.net: CutPasteNet = model.net
        self.layer, self.patch = model.scoring.layer, model.scoring.patch_px
        side = scorer.transform.input_size
        positions = torch.from_numpy(patch_positions(side, self.patch, model.scoring.stride_px))
        self.register_buffer("window", positions[:, None] + torch.arange(self.patch)[None, :])  # (n, p) indices

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) image embeddings and (B, nh, nw, D) patch embeddings."""
        x = self.normalize(images)
        batch, channels, count = x.shape[0], x.shape[1], self.window.shape[0]
        rows = x[:, :, self.window]  # (B, C, nh, p, W)
        grid = rows[..., self.window]  # (B, C, nh, p, nw, p)
        patches = grid.permute(0, 2, 4, 1, 3, 5).reshape(batch * count * count, channels, self.patch, self.patch)
        embedded = self.net.embed(patches, self.layer)
        return self.net.embed(x, self.layer), embedded.reshape(batch, count, count, embedded.shape[-1])


GRAPHS: dict[str, type[nn.Module]] = {"anomaly-net": SegmentationGraph, "ssae": SSAEGraph, "cutpaste": CutPasteGraph}
"""Run model kind -> its export graph. Every method of ``nsad train`` has one of these kinds."""


def _torch_outputs(model: MapModel, graph: nn.Module, kind: str, images: torch.Tensor) -> list[np.ndarray]:
    """What the torch scorer computes for the graph's outputs, to check the export against."""
    with torch.inference_mode():
        if kind == "cutpaste":
            normalized = graph.normalize(images)  # type: ignore[operator]
            return [e.float().numpy() for e in model.embeddings(normalized)]  # type: ignore[attr-defined]
        normalized = graph.normalize(images) if kind == "anomaly-net" else images  # type: ignore[operator]
        return [model(normalized)[0].float().numpy()]


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def export_run(run: str | Path, out: str | Path, seed: int = 0) -> DeploySpec:
    """Export a run folder to ``out/model.onnx`` and ``out/deploy.json`` (and CutPaste's ``density.npz``).

    The files are written into a temporary folder beside ``out`` and moved into place when the
    export and its check succeeded, so ``out`` never holds a half-written model.

    Args:
        run: a run folder written by ``nsad train``.
        out: the model folder to write; must not exist or be empty.
        seed: seeds the random check batch.

    Returns:
        The deployment description written.

    Raises:
        FileExistsError: if ``out`` holds files.
        FileNotFoundError, ValueError: for a missing or invalid run.
        RuntimeError: if ONNX Runtime disagrees with torch on the check batch.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"export folder {out} is not empty; choose a new --out")
    scorer = Scorer(run, device="cpu")
    metadata = scorer.metadata
    kind = metadata.model
    scorer.run.net.float().eval()
    graph = GRAPHS[kind](scorer).eval()
    input_hw = test_input_hw(scorer.transform)  # the crop, a tile or the whole frame
    check = torch.from_numpy(np.random.default_rng(seed).random((2, metadata.in_channels, *input_hw),
                                                               dtype=np.float32))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracing chatter
            torch.onnx.export(graph, (check,), staging / MODEL_NAME, dynamo=True, opset_version=OPSET,
                              input_names=[INPUT_NAME], output_names=list(OUTPUTS[kind]),
                              dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
                              external_data=False, verbose=False)
        import onnxruntime as ort

        session = ort.InferenceSession(str(staging / MODEL_NAME), providers=["CPUExecutionProvider"])
        got = session.run(None, {INPUT_NAME: check[:1].numpy()})  # a batch size other than the traced one
        expected = _torch_outputs(scorer.model, graph, kind, check[:1])
        worst = max(float(np.abs(g - e).max() / max(1.0, float(np.abs(e).max()))) for g, e in zip(got, expected,
                                                                                                strict=True))
        if not worst <= CHECK_TOLERANCE:
            raise RuntimeError(f"the exported graph of {run} disagrees with torch: largest relative difference "
                               f"{worst:.3g} > {CHECK_TOLERANCE}")
        cutpaste = None
        if kind == "cutpaste":
            model: CutPasteScorer = scorer.model  # type: ignore[assignment]
            np.savez(staging / DENSITY_NAME, **{f"{name}_{part}": array for name, pair in model.densities.items()
                                                for part, array in zip(("mean", "precision"), pair, strict=True)})
            cutpaste = {"patch_px": model.scoring.patch_px, "stride_px": model.scoring.stride_px,
                        "sigma_px": model.scoring.sigma_px, "layer": model.scoring.layer, "densities": DENSITY_NAME}
        training = dict(metadata.training)
        calibration = None if metadata.threshold is None else {
            "on": "held-out normal images of the training data (nsad train --holdout)",
            "holdout_images": training.get("holdout_images"),
            "target_fpr": 0.0 if kind == "ssae" else training.get("target_fpr"),
            "score_rule": metadata.score_rule}
        spec = DeploySpec(
            method=metadata.method, model=kind,
            geometry={"kind": metadata.preset_values.get("kind", "object"),
                      "resize_hw": list(metadata.resize_hw) if metadata.resize_hw else None,
                      "crop_hw": list(metadata.crop_hw) if metadata.crop_hw else None,
                      "frame": dict(metadata.geometry) or None},
            channels=metadata.in_channels, normalization=scorer.normalization,
            input={"name": INPUT_NAME, "dtype": "float32", "layout": "NCHW, RGB (or gray), intensities in [0, 1]",
                   "shape": ["batch", metadata.in_channels, *input_hw]},
            outputs=OUTPUTS[kind], score_rule=metadata.score_rule, threshold=metadata.threshold,
            threshold_calibration=calibration, cutpaste=cutpaste,
            regions={"min_area": 1, "connectivity": 8},
            versions={"nsad": nsad.__version__, "torch": torch.__version__, "onnx": _version("onnx"),
                      "onnxscript": _version("onnxscript"), "opset": OPSET, "trained_with_nsad": metadata.nsad_version,
                      "trained_with_torch": metadata.torch_version, "trained_precision": training.get("precision"),
                      "export_check_max_rel_diff": worst},
            source={"run": str(Path(run).resolve()), "training": training}, label_kind=metadata.label_kind,
            heatmap_scale=None if metadata.heatmap_scale is None else dict(metadata.heatmap_scale))
        write_spec(staging, spec)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return spec


__all__ = ["GRAPHS", "OPSET", "SPEC_NAME", "export_run"]
