"""An exported model (``model.onnx`` + ``deploy.json``) as a scorer, with numpy, OpenCV and ONNX Runtime only.

Every step but the network is the torch scorer's own code: reading (:func:`~nsad.data.io.read_image`),
the test transform and the [0, 1] input (:func:`~nsad.data.transforms.test_input`), the map's
assembly back to the original resolution, the score rule, the decision and the defect regions
(:func:`~nsad.postprocess.predictions_from_network`), CutPaste's distances and patch maps
(:func:`~nsad.postprocess.cutpaste_maps_and_scores`). The graph holds the normalisation, the
network and its output activation (or CutPaste's embeddings).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from nsad.data.io import read_image
from nsad.data.transforms import FrameConfig, test_input, test_input_hw, tiled_maps
from nsad.deploy.spec import DENSITY_NAME, MODEL_NAME, DeployFormatError, DeploySpec, read_spec
from nsad.postprocess import Prediction, check_score_rule, cutpaste_maps_and_scores, predictions_from_network

DENSITY_KEYS = ("image_mean", "image_precision", "patch_mean", "patch_precision")


def load_densities(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """CutPaste's Gaussian densities from ``density.npz``: ``{"image": (mean, precision), "patch": ...}``.

    Raises:
        FileNotFoundError: if the file is missing.
        DeployFormatError: if it lacks a key or is not a NumPy archive.
    """
    path = Path(folder) / DENSITY_NAME
    if not path.is_file():
        raise FileNotFoundError(f"CutPaste model {str(folder)!r} has no density file {str(path)!r}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: np.asarray(archive[key], np.float64) for key in DENSITY_KEYS}
    except (KeyError, ValueError, OSError) as error:
        raise DeployFormatError(f"{str(path)!r} is not a CutPaste density archive with {list(DENSITY_KEYS)}: "
                                f"{error}") from error
    return {name: (arrays[f"{name}_mean"], arrays[f"{name}_precision"]) for name in ("image", "patch")}


class Inferencer:
    """Score images with a model folder written by ``nsad export``.

    Args:
        folder: the model folder (``model.onnx``, ``deploy.json``, CutPaste's ``density.npz``).
        score_rule: override the image score rule.
        threads: ONNX Runtime's intra-op threads; None for its default (all cores).
        batch_size: images per network call in :meth:`network_outputs`.

    Raises:
        FileNotFoundError, DeployFormatError: for a missing or invalid model folder.
        ValueError: for a score rule the model cannot give.
    """

    def __init__(self, folder: str | Path, score_rule: str | None = None, threads: int | None = None,
                 batch_size: int = 8) -> None:
        self.folder = Path(folder)
        self.spec: DeploySpec = read_spec(self.folder)
        self.transform = self.spec.transform
        self.score_rule = check_score_rule(score_rule or self.spec.score_rule, self.spec.model == "cutpaste",
                                           self.spec.model)
        self.threshold = self.spec.threshold
        self.batch_size = max(1, int(batch_size))
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.folder / MODEL_NAME), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for unreadable graphs
            raise DeployFormatError(f"{str(self.folder / MODEL_NAME)!r} is not a readable ONNX model: "
                                    f"{error}") from error
        self.input_name = self.session.get_inputs()[0].name
        self.densities = load_densities(self.folder) if self.spec.model == "cutpaste" else None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of one network input: the paper's crop, the whole frame or one tile."""
        return (self.spec.channels, *test_input_hw(self.transform))

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """(C, h, w) float32 network input in [0, 1] of an (H, W, C) image (the torch scorer's own code)."""
        return test_input(image, self.transform, self.spec.channels)

    def run_network(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(B, h, w) maps and the model's own (B,) image scores (CutPaste) or None, of (B, C, h, w) inputs.

        For a tiled run the inputs are whole frames, scored tile by tile and blended
        (:func:`~nsad.data.transforms.tiled_maps`, the torch scorer's own code).
        """
        if isinstance(self.transform, FrameConfig) and self.transform.tile is not None:
            return tiled_maps(inputs, self.transform, self._session_maps, self.batch_size), None
        outputs = self.session.run(None, {self.input_name: np.ascontiguousarray(inputs, np.float32)})
        if self.densities is None:
            return outputs[0], None
        settings = self.spec.cutpaste or {}
        return cutpaste_maps_and_scores(outputs[0], outputs[1], self.densities, inputs.shape[-2:],
                                        int(settings["patch_px"]), int(settings["stride_px"]),
                                        float(settings["sigma_px"]))

    def _session_maps(self, inputs: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(inputs, np.float32)})[0]

    def network_outputs(self, paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, h, w) maps on the network's input and the model's own image scores or None, in input order.

        The same contract as :meth:`nsad.pipeline.scoring.Scorer.network_outputs`.
        """
        maps, scores = [], []
        for start in range(0, len(paths), self.batch_size):
            batch = np.stack([self.preprocess(read_image(p)) for p in paths[start:start + self.batch_size]])
            batch_maps, batch_scores = self.run_network(batch)
            maps.append(batch_maps)
            scores.append(batch_scores)
        return np.concatenate(maps), None if self.densities is None else np.concatenate(scores)

    def predict(self, images: Sequence[np.ndarray], threshold: float | None = None,
                region_threshold: float | None = None, min_area: int | None = None) -> list[Prediction]:
        """Predictions of (H, W, C) images: map at each one's resolution, score, decision, regions.

        Args:
            images: images as :func:`~nsad.data.io.read_image` returns them.
            threshold: override the decision threshold.
            region_threshold: map level of the regions (default: the decision threshold for map-based rules).
            min_area: smallest region in pixels (default: ``deploy.json``'s).
        """
        maps, scores = self.run_network(np.stack([self.preprocess(image) for image in images]))
        return predictions_from_network(
            maps, scores, self.transform, self.score_rule, self.threshold if threshold is None else threshold,
            [image.shape for image in images], region_threshold,
            int(self.spec.regions.get("min_area", 1)) if min_area is None else min_area)
