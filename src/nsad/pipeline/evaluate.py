"""``nsad evaluate``: score a run on labelled test images with MVTec AD's metrics.

Pixel metrics are computed in the evaluation frame (the resized test image, 256 x 256 in the
paper) against masks resized there with nearest neighbour; the map is zero outside the centre
crop for object classes, as the NSA authors' published code evaluates.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from nsad.data.folder import find_dataset, read_sample_mask
from nsad.metrics import evaluate_by_defect_type
from nsad.pipeline.scoring import Scorer

METRICS_FILE = "metrics.json"


def evaluate_run(run: str | Path, data: str | Path | None = None, category: str | None = None,
                 device: str | None = None, score_rule: str | None = None, write: bool = True) -> dict:
    """Evaluate the run at ``run`` on the test images of ``data`` (default: the data it was trained on).

    Returns:
        ``{"run", "method", "category", "score_rule", "images", "metrics": {...},
        "by_defect_type": {type: {...}}}``; metrics are fractions in [0, 1] (NaN when undefined).
        With ``write``, the same is written to ``RUN/metrics.json``.

    Raises:
        ValueError, FileNotFoundError: if the run or the data cannot be read (the message names
            the file), or the run does not say where its data is and ``data`` is not given.
    """
    scorer = Scorer(run, device=device, score_rule=score_rule)
    training = scorer.metadata.training
    if data is None:
        if "data" not in training:
            raise ValueError(f"run {run} does not record its data folder; pass --data")
        data, category = training["data"], category or training.get("category_arg")
    layout = find_dataset(data, category)
    samples = layout.test
    result = scorer.score([sample.path for sample in samples])
    side = result.maps.shape[-1]
    have_masks = layout.has_masks
    mask_array = None
    if have_masks:
        mask_array = np.zeros((len(samples), side, side), np.uint8)
        for index, sample in enumerate(samples):
            mask_array[index] = read_sample_mask(sample, side)
    by_type = evaluate_by_defect_type(result.scores, [s.defect_type if s.is_anomalous else "good" for s in samples],
                                      result.maps if have_masks else None, mask_array)
    report = {"run": str(run), "method": scorer.metadata.method, "category": layout.category,
              "score_rule": scorer.score_rule, "images": len(samples), "pixel_metrics": have_masks,
              "metrics": by_type.pop("all"), "by_defect_type": by_type}
    if write:
        (Path(run) / METRICS_FILE).write_text(json.dumps(_json_safe(report), indent=1))
    return report


def _json_safe(value: object) -> object:
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
