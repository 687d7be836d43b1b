"""``nsad predict``: anomaly maps, heatmaps, scores and decisions for new images."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nsad._checks import check_new_folder
from nsad.data.folder import MASK_FOLDER
from nsad.data.io import IMAGE_SUFFIXES, is_image_file, list_images, read_image, write_image
from nsad.data.transforms import ENLARGED_WARNING
from nsad.pipeline.scoring import Scorer
from nsad.postprocess import Prediction, predictions_from_network
from nsad.viz import HeatmapScale, heatmap_figure, run_scale

if TYPE_CHECKING:
    from nsad.deploy import Inferencer

SCORES_FILE = "scores.csv"
REGIONS_FILE = "regions.json"
UNREADABLE_FILE = "unreadable.csv"


def expand_inputs(inputs: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """Image files as given and the images anywhere below given folders, each with an output name.

    The name is the file's stem, or for images found in a folder its path below that folder
    with ``_`` for ``/`` (``test/broken_large/000.png`` -> ``broken_large_000``); repeats get ``-2``.
    Hidden files and folders (``.*``, macOS ``._*``) are skipped, and so are ground-truth masks
    (``ground_truth/`` folders, as in a data set's category folder), with a warning.

    Raises:
        FileNotFoundError: if an input does not exist.
        ValueError: if a file is not an image type or a folder holds no images.
    """
    found: list[tuple[Path, str]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            images, masks = [], 0
            for path in sorted(item.rglob("*")):
                parts = path.relative_to(item).parts
                if not is_image_file(path) or any(part.startswith(".") for part in parts):
                    continue
                if MASK_FOLDER in parts[:-1]:
                    masks += 1
                else:
                    images.append(path)
            if masks:
                warnings.warn(f"skipped {masks} ground-truth masks in {item} (files below a {MASK_FOLDER}/ folder "
                              "are not parts to score)", stacklevel=2)
            if not images:
                list_images(item)  # raises the usual "no images in FOLDER" error
            found.extend((p, "_".join(p.relative_to(item).with_suffix("").parts)) for p in images)
        elif item.is_file():
            if item.suffix.lower() not in IMAGE_SUFFIXES:
                raise ValueError(f"{item} is not an image file; accepted: {', '.join(IMAGE_SUFFIXES)}")
            found.append((item, item.stem))
        else:
            raise FileNotFoundError(f"input not found: {item}")
    if not found:
        raise ValueError("no input images given")
    seen: dict[str, int] = {}
    named = []
    for path, name in found:
        seen[name] = seen.get(name, 0) + 1
        named.append((path, name if seen[name] == 1 else f"{name}-{seen[name]}"))
    return named


class PredictionRows(list):
    """What :func:`predict` wrote: one row per scored image, and the inputs it skipped as unreadable.

    The rows are those of ``scores.csv``; ``unreadable`` holds ``(file, reason)`` of each skipped input.
    """

    def __init__(self, rows: list[dict], unreadable: list[tuple[str, str]]) -> None:
        super().__init__(rows)
        self.unreadable = unreadable


def readable_inputs(named: list[tuple[Path, str]], skip_unreadable: bool,
                    frame: int) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """Read every input once: the readable ones, and ``(file, reason)`` for the others (with ``skip_unreadable``).

    Also warns, once for all, about images enlarged more than :data:`ENLARGED_WARNING` times to the
    run's ``frame`` side.

    Raises:
        ValueError: for the first unreadable file, without ``skip_unreadable``; if none can be read.
    """
    readable, unreadable, small = [], [], []
    for path, name in named:
        try:
            shape = read_image(path).shape
        except (ValueError, OSError) as error:
            if not skip_unreadable:
                raise ValueError(f"{error} (pass --skip-unreadable to score the other images and list this one)"
                                 ) from None
            unreadable.append((str(path), " ".join(str(error).split())))
            continue
        readable.append((path, name))
        if min(shape[:2]) * ENLARGED_WARNING < frame:
            small.append(f"{path} ({shape[1]}x{shape[0]})")
    if small:
        warnings.warn(f"{len(small)} images are enlarged more than {ENLARGED_WARNING:g}x to the run's {frame}-px "
                      f"frame, so their maps show little detail: {', '.join(small[:3])}"
                      f"{', ...' if len(small) > 3 else ''}", stacklevel=2)
    if not readable:
        raise ValueError(f"none of the {len(named)} input images can be read (first: {unreadable[0][0]}: "
                         f"{unreadable[0][1]})")
    return readable, unreadable


def predict(run: str | Path | None, inputs: Sequence[str | Path], out: str | Path, threshold: float | None = None,
            device: str | None = None, score_rule: str | None = None, *, model: str | Path | None = None,
            min_area: int = 1, region_threshold: float | None = None,
            skip_unreadable: bool = False) -> PredictionRows:
    """Score images with a run (torch) or an exported model (ONNX Runtime) and write the same outputs.

    Per image: ``STEM.npy`` (the map at the image's resolution) and ``STEM_heatmap.png`` (the image,
    its heatmap overlay with the predicted regions outlined and a colour bar with the region
    threshold marked, at the image's resolution, on the run's fixed colour scale: see
    :mod:`nsad.viz.scale`); for all: ``scores.csv`` and ``regions.json`` (the defect regions of each
    anomalous image: bounding box, area, peak and mean, see :func:`~nsad.postprocess.defect_regions`);
    ``unreadable.csv`` (file, reason) when ``skip_unreadable`` skipped some. ``out`` must be new or
    empty: everything is written into a hidden folder beside it and renamed into place at the end,
    so ``out`` is complete or absent.

    The decision is ``anomalous`` when the score is at least the threshold: ``threshold`` if
    given, else the one ``nsad train`` calibrated on held-out normal images (for the run's own score
    rule only); without either the decision is left empty (with a warning). Both backends share
    everything but the network: :func:`~nsad.postprocess.predictions_from_network` and
    :func:`write_prediction`.

    Args:
        run: a run folder (torch), or None with ``model``.
        inputs: images or folders of images.
        out: the output folder.
        threshold: override the decision threshold.
        device: torch device (runs only).
        score_rule: override the image score rule.
        model: a folder written by ``nsad export`` (ONNX Runtime), instead of ``run``.
        min_area: smallest defect region, in pixels of the original image.
        region_threshold: map level of the regions (default: the decision threshold, see
            :func:`~nsad.postprocess.region_threshold_for`).
        skip_unreadable: score the readable images and list the others instead of stopping.

    Returns:
        One row per image: ``file``, ``score``, ``threshold``, ``decision``, ``regions`` (count),
        ``map``, ``heatmap``; its ``unreadable`` lists the skipped inputs.

    Raises:
        FileExistsError: if ``out`` is not empty (results are never overwritten or mixed).
        FileNotFoundError, ValueError: for missing or unreadable inputs, run or model files.
    """
    if (run is None) == (model is None):
        raise ValueError("give either a run folder (--run) or an exported model folder (--model)")
    if isinstance(min_area, bool) or not isinstance(min_area, int) or min_area < 1:
        raise ValueError(f"min_area must be a whole number of pixels >= 1, got {min_area!r}")
    out = Path(out)
    check_new_folder(out, "predict")
    named = expand_inputs(inputs)
    if model is not None:
        from nsad.deploy import Inferencer

        backend = Inferencer(model, score_rule=score_rule)
        own_rule = backend.spec.score_rule
    else:
        backend = Scorer(run, device=device, score_rule=score_rule)  # type: ignore[arg-type]
        own_rule = backend.metadata.score_rule
    named, unreadable = readable_inputs(named, skip_unreadable, backend.transform.resize)
    if run is not None:  # once the inputs are known to be readable: a refusal stays one line
        print(f"nsad predict: preset {backend.metadata.preset} (recorded in the run)", file=sys.stderr)
    paths = [path for path, _ in named]
    calibrated = backend.threshold
    if threshold is None and calibrated is not None and backend.score_rule != own_rule:
        warnings.warn(f"the run's threshold {calibrated:.6g} was calibrated for score rule {own_rule!r}, not "
                      f"{backend.score_rule!r}; scores are written without decisions (pass --threshold for them)",
                      stacklevel=2)
        calibrated = None
    threshold = calibrated if threshold is None else float(threshold)
    if threshold is None and backend.threshold is None and run is not None \
            and backend.metadata.training.get("holdout_images") == 0:
        print("nsad predict: no threshold exists: the run was trained with --holdout 0 (no held-out normal images "
              "to calibrate one); scores are written without decisions (give --threshold to decide)", file=sys.stderr)
    elif threshold is None and backend.threshold is None:
        warnings.warn("the run has no calibrated threshold and none was given (--threshold); "
                      "scores are written without decisions", stacklevel=2)
    maps, model_scores = backend.network_outputs(paths)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".new", dir=out.parent))
    try:
        rows = _write_results(staging, backend, named, maps, model_scores, threshold, region_threshold, min_area)
        if unreadable:
            with open(staging / UNREADABLE_FILE, "w", newline="") as file:
                writer = csv.writer(file)
                writer.writerow(["file", "reason"])
                writer.writerows(unreadable)
        os.replace(staging, out)  # an empty --out is replaced; a filled one was refused above
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PredictionRows(rows, unreadable)


def _write_results(out: Path, backend: Scorer | Inferencer, named: list[tuple[Path, str]], maps: np.ndarray,
                   model_scores: np.ndarray | None, threshold: float | None, region_threshold: float | None,
                   min_area: int) -> list[dict]:
    scale = heatmap_scale_of(backend, maps)
    rows, regions = [], {}
    for index, (path, stem) in enumerate(named):
        image = read_image(path)
        prediction = predictions_from_network(
            maps[index:index + 1], None if model_scores is None else model_scores[index:index + 1],
            backend.transform, backend.score_rule, threshold, [image.shape], region_threshold, min_area)[0]
        rows.append(write_prediction(out, path, stem, image, prediction, scale))
        regions[stem] = {"file": str(path), "regions": [region.to_dict() for region in prediction.regions]}
    with open(out / SCORES_FILE, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / REGIONS_FILE).write_text(json.dumps(regions, indent=1) + "\n")
    return rows


def heatmap_scale_of(backend: Scorer | object, maps: np.ndarray) -> HeatmapScale:
    """The colour scale of a run (``run.json``'s, or the documented fallback), for the maps of one call.

    Exported models (ONNX Runtime backend) carry the run's scale and label kind in ``deploy.json``.
    """
    if isinstance(backend, Scorer):
        return run_scale(backend.metadata.heatmap_scale, backend.metadata.label_kind, maps, backend.transform.resize)
    spec = backend.spec  # type: ignore[attr-defined]
    return run_scale(spec.heatmap_scale, spec.label_kind, maps, backend.transform.resize)


def write_prediction(out: Path, path: Path, stem: str, image: np.ndarray, prediction: Prediction,
                     scale: HeatmapScale) -> dict:
    """Write one image's ``STEM.npy`` and ``STEM_heatmap.png``; return its row of ``scores.csv``."""
    np.save(out / f"{stem}.npy", prediction.anomaly_map)
    write_image(out / f"{stem}_heatmap.png", heatmap_figure(image, prediction.anomaly_map, scale))
    return {"file": str(path), "score": prediction.score,
            "threshold": "" if prediction.threshold is None else prediction.threshold,
            "decision": prediction.decision, "regions": len(prediction.regions), "map": f"{stem}.npy",
            "heatmap": f"{stem}_heatmap.png"}
