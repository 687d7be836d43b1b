"""``nsad evaluate``: score a run on labelled test images with MVTec AD's metrics.

Pixel metrics are computed in the evaluation frame (the resized test image, 256 x 256 in the
paper) against masks resized there with nearest neighbour; the map is zero outside the centre
crop for object classes, as the NSA authors' published code evaluates.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nsad.data.folder import DatasetLayout, find_dataset, read_sample_mask
from nsad.metrics import evaluate_by_defect_type
from nsad.models.runfile import write_atomic
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
    anomalous = sum(sample.is_anomalous for sample in samples)
    if anomalous == 0:
        raise ValueError(f"the test set of {layout.root} has no anomalous images ({len(samples)} normal ones in "
                         f"{', '.join(sorted({s.path.parent.name for s in samples}))}); the metrics compare "
                         "normal and anomalous images: add test/<defect type>/ folders")
    if anomalous == len(samples):
        warnings.warn(f"the test set of {layout.root} has no normal images; image AUROC and F1-max are undefined "
                      "(only the pixel metrics are computed)", stacklevel=2)
    result = scorer.score([sample.path for sample in samples])
    masks = None
    if layout.has_masks:
        frame = result.maps.shape[-2:]
        masks = np.zeros((len(samples), *frame), np.uint8)
        empty = []
        for index, sample in enumerate(samples):
            masks[index] = read_sample_mask(sample, frame)
            if sample.is_anomalous and not masks[index].any():
                empty.append(str(sample.mask_path))
        if empty:
            warnings.warn(f"{len(empty)} masks of anomalous test images are all zero, so those images add no defect "
                          f"pixels to the pixel metrics: {', '.join(empty[:3])}{', ...' if len(empty) > 3 else ''}",
                          stacklevel=2)
    return TestSetScores(layout, result.maps, result.scores, masks)


def metrics_of(test: TestSetScores) -> dict:
    """``evaluate_by_defect_type`` of a scored test set (pixel metrics when it has masks; NaN where undefined)."""
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return evaluate_by_defect_type(test.scores, test.defect_types, None if test.masks is None else test.maps,
                                       test.masks)


def evaluate_run(run: str | Path, data: str | Path | None = None, category: str | None = None,
                 device: str | None = None, score_rule: str | None = None, write: bool = True,
                 report: bool = False) -> dict:
    """Evaluate the run at ``run`` on the test images of ``data`` (default: the data it was trained on).

    Returns:
        ``{"run", "method", "category", "score_rule", "images", "metrics": {...},
        "by_defect_type": {type: {...}}}``; metrics are fractions in [0, 1] (NaN when undefined).
        With ``write``, the same is written to ``RUN/metrics.json``, or, for another result than the
        run's own (other data or score rule, a resumed run), to a new versioned file
        (:func:`write_metrics`); ``file`` names it. With ``report`` also ``RUN/report.html``
        (:func:`nsad.pipeline.report.write_report`, from the same scores; beside a versioned metrics
        file, the same version: ``report-2.html``); ``report`` names it.

    Raises:
        ValueError, FileNotFoundError: if the run or the data cannot be read (the message names
            the file), or the run does not say where its data is and ``data`` is not given.
    """
    scorer = Scorer(run, device=device, score_rule=score_rule)
    test = score_test_set(scorer, data, category)
    by_type = metrics_of(test)
    result = {"run": str(run), "method": scorer.metadata.method, "category": test.layout.category,
              "data": str(test.layout.root.resolve()), "score_rule": scorer.score_rule,
              "images": len(test.layout.test), "pixel_metrics": test.masks is not None,
              "metrics": by_type.pop("all"), "by_defect_type": by_type}
    if write:
        trained_on = scorer.metadata.training.get("data")
        own = (score_rule is None and trained_on is not None
               and Path(trained_on).resolve() in (test.layout.root.resolve(), Path(data or trained_on).resolve()))
        result["file"] = str(write_metrics(Path(run), result, own))
    if report:
        from nsad.pipeline.report import write_report  # the report module builds on this one

        # the report of another result than the run's own goes beside its metrics: metrics-2.json, report-2.html
        version = Path(result.get("file", METRICS_FILE)).stem[len(Path(METRICS_FILE).stem):]
        name = f"{Path(REPORT_FILE).stem}{version}{Path(REPORT_FILE).suffix}"
        write_report(run, out=Path(run) / name, scorer=scorer, test=test)
        result["report"] = str(Path(run) / name)
    return result


def write_metrics(run: Path, report: dict, own: bool = True) -> Path:
    """Write ``report`` into ``run`` without replacing an earlier, different result.

    ``metrics.json`` holds the run's own result: its test data with its score rule (``own``). Any
    other result (other data, another score rule), or a later own result that differs (a resumed
    run), goes to the first free ``metrics-2.json``, ``metrics-3.json``...; a result equal to one
    already written is not written again. Returns the file that holds it.
    """
    text = json.dumps(_json_safe(report), indent=1)
    stem, suffix = Path(METRICS_FILE).stem, Path(METRICS_FILE).suffix
    candidates = [*([run / METRICS_FILE] if own else []), *(run / f"{stem}-{n}{suffix}" for n in range(2, 10_000))]
    for path in candidates:
        if not path.exists():
            write_atomic(path, text.encode())
            return path
        try:
            if path.read_text() == text:
                return path
        except (OSError, UnicodeDecodeError):
            continue
    raise FileExistsError(f"{run} holds 10,000 metrics files; move some away")


def _json_safe(value: object) -> object:
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
