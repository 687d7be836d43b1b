"""``nsad evaluate``: score a run on labelled test images with MVTec AD's metrics.

Pixel metrics are computed in the evaluation frame (the resized test image, 256 x 256 in the
paper) against masks resized there with nearest neighbour; the map is zero outside the centre
crop for object classes, as the NSA authors' published code evaluates.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nsad.data.folder import DatasetLayout, find_dataset, read_sample_mask
from nsad.metrics import evaluate_by_defect_type
from nsad.pipeline.scoring import Scorer

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"


@dataclass(frozen=True)
class TestSetScores:
    """A run's maps and scores on a labelled test set, in the layout's order.

    Attributes:
        layout: the data set (its ``test`` samples are the rows).
        maps: (N, S, S) float32 maps in the evaluation frame.
        scores: (N,) image scores by the scorer's rule.
        masks: (N, S, S) uint8 ground truth in the frame, or None for data without masks.
    """

    layout: DatasetLayout
    maps: np.ndarray
    scores: np.ndarray
    masks: np.ndarray | None

    @property
    def defect_types(self) -> list[str]:
        """Each image's defect type, ``good`` for normal images (MVTec AD's per-type rows)."""
        return [s.defect_type if s.is_anomalous else "good" for s in self.layout.test]

    @property
    def anomalous(self) -> np.ndarray:
        """(N,) bool ground truth per image."""
        return np.array([s.is_anomalous for s in self.layout.test], bool)


def score_test_set(scorer: Scorer, data: str | Path | None = None, category: str | None = None) -> TestSetScores:
    """Score the test images of ``data`` (default: the data the run was trained on) with ``scorer``.

    Raises:
        ValueError, FileNotFoundError: if the data cannot be read, or the run does not say where its
            data is and ``data`` is not given.
    """
    training = scorer.metadata.training
    if data is None:
        if "data" not in training:
            raise ValueError(f"run {scorer.run.folder} does not record its data folder; pass --data")
        data, category = training["data"], category or training.get("category_arg")
    layout = find_dataset(data, category)
    samples = layout.test
    result = scorer.score([sample.path for sample in samples])
    masks = None
    if layout.has_masks:
        side = result.maps.shape[-1]
        masks = np.zeros((len(samples), side, side), np.uint8)
        for index, sample in enumerate(samples):
            masks[index] = read_sample_mask(sample, side)
    return TestSetScores(layout, result.maps, result.scores, masks)


def metrics_of(test: TestSetScores) -> dict:
    """``evaluate_by_defect_type`` of a scored test set (pixel metrics when it has masks)."""
    return evaluate_by_defect_type(test.scores, test.defect_types, None if test.masks is None else test.maps,
                                   test.masks)


def evaluate_run(run: str | Path, data: str | Path | None = None, category: str | None = None,
                 device: str | None = None, score_rule: str | None = None, write: bool = True,
                 report: bool = False) -> dict:
    """Evaluate the run at ``run`` on the test images of ``data`` (default: the data it was trained on).

    Returns:
        ``{"run", "method", "category", "score_rule", "images", "metrics": {...},
        "by_defect_type": {type: {...}}}``; metrics are fractions in [0, 1] (NaN when undefined).
        With ``write``, the same is written to ``RUN/metrics.json``; with ``report`` also
        ``RUN/report.html`` (:func:`nsad.pipeline.report.write_report`, from the same scores).

    Raises:
        ValueError, FileNotFoundError: if the run or the data cannot be read (the message names
            the file), or the run does not say where its data is and ``data`` is not given.
    """
    scorer = Scorer(run, device=device, score_rule=score_rule)
    test = score_test_set(scorer, data, category)
    by_type = metrics_of(test)
    result = {"run": str(run), "method": scorer.metadata.method, "category": test.layout.category,
              "score_rule": scorer.score_rule, "images": len(test.layout.test), "pixel_metrics": test.masks is not None,
              "metrics": by_type.pop("all"), "by_defect_type": by_type}
    if write:
        (Path(run) / METRICS_FILE).write_text(json.dumps(_json_safe(result), indent=1))
    if report:
        from nsad.pipeline.report import write_report  # the report module builds on this one

        write_report(run, out=Path(run) / REPORT_FILE, scorer=scorer, test=test)
    return result


def _json_safe(value: object) -> object:
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
