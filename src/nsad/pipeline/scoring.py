"""A trained run as a scorer: images in, anomaly maps and image scores out.

The test transform is the paper's (NSA paper, Sec. 4.1): the centre crop of the resized image for
objects, the resized image for textures. Maps come back in the evaluation frame (the resized
image, zero outside the crop, as the authors evaluate) or at each image's original resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from nsad._checks import check_range
from nsad.data.transforms import TransformConfig, place_in_frame, resize_map
from nsad.models.runfile import LoadedRun, RunMetadata, load_run
from nsad.pipeline.datasets import TestImages

SCORE_RULES = ("mean", "max", "topk")


def parse_score_rule(rule: str) -> tuple[str, float]:
    """``mean`` (the paper's), ``max``, or ``topk:F`` (mean of the top fraction F of pixels).

    Raises:
        ValueError: for another rule or a fraction outside (0, 1].
    """
    name, _, value = rule.partition(":")
    if name in ("mean", "max") and not value:
        return name, 0.0
    if name == "topk":
        try:
            fraction = float(value)
        except ValueError:
            fraction = float("nan")
        if not 0 < fraction <= 1:
            raise ValueError(f"score rule {rule!r}: topk needs a fraction in (0, 1], e.g. 'topk:0.01'")
        return name, fraction
    raise ValueError(f"unknown score rule {rule!r}; choose 'mean' (the paper's), 'max' or 'topk:F' (e.g. topk:0.01)")


def image_scores(maps: np.ndarray, rule: str = "mean") -> np.ndarray:
    """Image scores of (N, H, W) maps by ``rule`` (see :func:`parse_score_rule`)."""
    name, fraction = parse_score_rule(rule)
    flat = maps.reshape(len(maps), -1)
    if name == "mean":
        return flat.mean(axis=1, dtype=np.float64)
    if name == "max":
        return flat.max(axis=1).astype(np.float64)
    count = max(1, int(round(fraction * flat.shape[1])))
    return np.partition(flat, flat.shape[1] - count, axis=1)[:, -count:].mean(axis=1, dtype=np.float64)


def transform_of(metadata: RunMetadata) -> TransformConfig:
    """The test transform a run was trained for."""
    kind = metadata.preset_values.get("kind", "object")
    resize = metadata.resize_hw[0] if metadata.resize_hw else None
    crop = metadata.crop_hw[0] if metadata.crop_hw else resize
    if resize is None:
        raise ValueError("run.json gives no resize_hw; cannot rebuild the test transform")
    return TransformConfig(kind=kind, resize=resize, crop=crop, pre_crop=crop,
                           texture_resize=resize, grayscale=metadata.net.in_channels == 1)


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class Scores:
    """Scoring results in input order.

    Attributes:
        maps: (N, S, S) float32 anomaly maps in the evaluation frame (S = the resize side).
        scores: (N,) float64 image scores by the run's rule (computed on the network's output).
    """

    maps: np.ndarray
    scores: np.ndarray


class Scorer:
    """Score images with a trained run.

    Args:
        run: a run folder written by ``nsad train`` (or a loaded run).
        device: torch device; default CUDA if available, else CPU.
        score_rule: override the run's image score rule.
        batch_size: images per forward pass.
    """

    def __init__(self, run: str | Path | LoadedRun, device: str | None = None, score_rule: str | None = None,
                 batch_size: int = 16) -> None:
        self.device = pick_device(device)
        self.run = run if isinstance(run, LoadedRun) else load_run(run, device=self.device)
        self.metadata = self.run.metadata
        self.transform = transform_of(self.metadata)
        self.score_rule = score_rule or self.metadata.score_rule
        parse_score_rule(self.score_rule)
        self.batch_size = check_range("batch_size", batch_size, 1, 1 << 16)

    @property
    def normalization(self) -> str:
        return "unit" if self.metadata.preset_values.get("normalization") == "unit" else "imagenet"

    def network_maps(self, paths: Sequence[Path], workers: int = 0) -> np.ndarray:
        """(N, s, s) maps on the network's input (the test crop), in input order."""
        dataset = TestImages(paths, self.transform, self.normalization, self.metadata.net.in_channels)
        loader = DataLoader(dataset, batch_size=int(self.batch_size), num_workers=workers)
        maps = np.empty((len(dataset), self.transform.input_size, self.transform.input_size), np.float32)
        net = self.run.net.eval()
        with torch.inference_mode():
            for batch in loader:
                images = batch["image"].to(self.device)
                maps[batch["index"].numpy()] = net.anomaly_map(images).float().cpu().numpy()
        return maps

    def score(self, paths: Sequence[Path], workers: int = 0) -> Scores:
        """Maps in the evaluation frame and image scores of the images at ``paths``."""
        maps = self.network_maps(paths, workers)
        scores = image_scores(maps, self.score_rule)
        framed = maps if self.transform.kind == "texture" else place_in_frame(maps, self.transform.resize)
        return Scores(framed, scores)

    @staticmethod
    def original_resolution(framed_map: np.ndarray, shape: Sequence[int]) -> np.ndarray:
        """Resize a map of the evaluation frame to an original image's ``(H, W)``, bilinear."""
        return resize_map(framed_map, shape[:2])
