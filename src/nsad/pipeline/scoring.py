"""A trained run as a scorer: images in, anomaly maps and image scores out.

The test transform is the paper's (NSA paper, Sec. 4.1): the centre crop of the resized image for
objects, the resized image for textures. Maps come back in the evaluation frame (the resized
image, zero outside the crop, as the authors evaluate) or at each image's original resolution.

What turns an image into a map depends on the run's model kind (``run.json``'s ``model``): the NSA
paper's encoder-decoder gives it directly; CutPaste and Bauer's autoencoder go through their
adapters in :mod:`nsad.pipeline.methods`, and CutPaste also gives an image-level score of its own
(the ``density`` score rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader

from nsad._checks import check_range
from nsad.data.transforms import (
    FrameConfig,
    TransformConfig,
    evaluation_frame_hw,
    frame_map,
    resize_map,
    test_input_hw,
    test_transform_of,
    tiled_maps,
)
from nsad.models.runfile import LoadedRun, RunMetadata, load_run
from nsad.pipeline.datasets import TestImages
from nsad.pipeline.methods import SCORING_MODELS
from nsad.postprocess import check_score_rule, final_image_scores, parse_score_rule


def transform_of(metadata: RunMetadata, folder: Path | str = "RUN") -> TransformConfig | FrameConfig:
    """The test transform a run was trained for (:func:`~nsad.data.transforms.test_transform_of`).

    Raises:
        ValueError: naming ``folder/run.json`` when its sizes do not make a transform.
    """
    try:
        return test_transform_of(metadata.preset_values.get("kind", "object"), metadata.resize_hw, metadata.crop_hw,
                                 metadata.net.in_channels, metadata.geometry)
    except ValueError as error:
        crop = metadata.crop_hw and list(metadata.crop_hw)
        raise ValueError(f"{Path(folder) / 'run.json'}: resize_hw {metadata.resize_hw and list(metadata.resize_hw)} "
                         f"and crop_hw {crop} do not make a test transform ({error})") from None


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU.

    Raises:
        ValueError: for a name torch does not know, or a CUDA device this machine does not have.
    """
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"--device {device!r} is not a torch device; accepted: cpu, cuda, cuda:N "
                         "(N from 0 to the number of GPUs - 1)") from None
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"--device {device}: torch finds no CUDA GPU on this machine; use --device cpu")
        if chosen.index is not None and chosen.index >= count:
            raise ValueError(f"--device {device}: this machine has {count} CUDA GPUs (cuda:0 to cuda:{count - 1})")
    elif chosen.type not in ("cpu", "mps", "xpu"):
        raise ValueError(f"--device {device}: nsad scores on cpu or cuda[:N]")
    return chosen


class MapModel(Protocol):
    """A loaded run's network as a scorer: normalised (B, C, H, W) images -> maps, image scores or None.

    Attributes:
        normalization: how images are normalised for it (``imagenet`` or ``unit``).
        image_level: whether it gives image scores of its own (the ``density`` score rule).
    """

    normalization: str
    image_level: bool

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, H, W) maps and (B,) image scores (None without ``image_level``) of normalised images."""
        ...


def map_model(run: LoadedRun, device: torch.device) -> MapModel:
    """The scorer of the run's model kind (its method's entry in :data:`~nsad.pipeline.methods.METHODS`)."""
    return SCORING_MODELS[run.metadata.model](run, device)


@dataclass
class Scores:
    """Scoring results in input order.

    Attributes:
        maps: (N, H, W) float32 anomaly maps in the evaluation frame (the resized image: the
            paper's S x S, or the whole-image protocol's frame).
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
        self.transform = transform_of(self.metadata, self.run.folder)
        if score_rule is None:
            try:
                parse_score_rule(self.metadata.score_rule)
            except ValueError as error:
                raise ValueError(f"{self.run.folder / 'run.json'}: its score_rule is not usable ({error}); "
                                 "override it with --score-rule") from None
        self.score_rule = score_rule or self.metadata.score_rule
        self.model = map_model(self.run, self.device)
        check_score_rule(self.score_rule, self.model.image_level, self.metadata.model)
        self.batch_size = check_range("batch_size", batch_size, 1, 1 << 16)

    @property
    def threshold(self) -> float | None:
        """The decision threshold ``nsad train`` calibrated, or None."""
        return self.metadata.threshold

    @property
    def normalization(self) -> str:
        """How test images are normalised for this run's network (``imagenet`` or ``unit``)."""
        return self.model.normalization

    def network_outputs(self, paths: Sequence[Path],
                        workers: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
        """Maps the image score is computed on, and the model's own image scores or None.

        The maps are the network's on its test input (the paper's crop, the whole frame), or for
        tiled runs the tiles' maps stitched into the frame (:func:`~nsad.data.transforms.stitch_tiles`).
        """
        dataset = TestImages(paths, self.transform, self.normalization, self.metadata.net.in_channels)
        loader = DataLoader(dataset, batch_size=int(self.batch_size), num_workers=workers)
        tiled = isinstance(self.transform, FrameConfig) and self.transform.tile is not None
        shape = evaluation_frame_hw(self.transform) if tiled else test_input_hw(self.transform)
        maps = np.empty((len(dataset), *shape), np.float32)
        scores = np.full(len(dataset), np.nan) if self.model.image_level else None
        with torch.inference_mode():
            for batch in loader:
                images, index = batch["image"].to(self.device), batch["index"].numpy()
                if tiled:
                    maps[index] = self._tiled_maps(images)
                    continue
                batch_maps, batch_scores = self.model(images)
                maps[index] = batch_maps.float().cpu().numpy()
                if scores is not None:
                    scores[index] = batch_scores.double().cpu().numpy()
        return maps, scores

    def _tiled_maps(self, images: torch.Tensor) -> np.ndarray:
        """(B, H, W) stitched maps of (B, C, H, W) frames (:func:`~nsad.data.transforms.tiled_maps`)."""
        def run(tiles: np.ndarray) -> np.ndarray:
            return self.model(torch.from_numpy(tiles).to(self.device))[0].float().cpu().numpy()

        return tiled_maps(images.cpu().numpy(), self.transform, run, int(self.batch_size))

    def network_maps(self, paths: Sequence[Path], workers: int = 0) -> np.ndarray:
        """Maps on the network's input (the test crop; the frame, stitched from tiles), in input order."""
        return self.network_outputs(paths, workers)[0]

    def score(self, paths: Sequence[Path], workers: int = 0) -> Scores:
        """Maps in the evaluation frame and image scores of the images at ``paths``."""
        maps, model_scores = self.network_outputs(paths, workers)
        return Scores(frame_map(maps, self.transform), final_image_scores(maps, self.score_rule, model_scores))

    def input_window(self, framed_maps: np.ndarray) -> np.ndarray:
        """The part of framed maps the network saw: the centre crop for objects, all for textures and whole frames."""
        if isinstance(self.transform, FrameConfig) or self.transform.kind == "texture":
            return framed_maps
        top = (self.transform.resize - self.transform.input_size) // 2
        return framed_maps[:, top : top + self.transform.input_size, top : top + self.transform.input_size]

    @staticmethod
    def original_resolution(framed_map: np.ndarray, shape: Sequence[int]) -> np.ndarray:
        """Resize a map of the evaluation frame to an original image's ``(H, W)``, bilinear."""
        return resize_map(framed_map, shape[:2])
