"""``nsad predict``: anomaly maps, heatmaps, scores and decisions for new images."""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nsad.data.io import IMAGE_SUFFIXES, list_images, read_image, write_image
from nsad.data.transforms import resize_map
from nsad.pipeline.scoring import Scorer
from nsad.postprocess import decisions
from nsad.viz import overlay, to_display

SCORES_FILE = "scores.csv"


def expand_inputs(inputs: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """Image files as given and the images anywhere below given folders, each with an output name.

    The name is the file's stem, or for images found in a folder its path below that folder
    with ``_`` for ``/`` (``test/broken_large/000.png`` -> ``broken_large_000``); repeats get ``-2``.

    Raises:
        FileNotFoundError: if an input does not exist.
        ValueError: if a file is not an image type or a folder holds no images.
    """
    found: list[tuple[Path, str]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            images = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
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


def predict(run: str | Path, inputs: Sequence[str | Path], out: str | Path, threshold: float | None = None,
            device: str | None = None, score_rule: str | None = None) -> list[dict]:
    """Score images and write their maps, heatmaps and scores.

    Per image: ``STEM.npy`` (the map at the image's resolution) and ``STEM_heatmap.png`` (the image
    beside its heatmap overlay; blue is 0 and red the largest map value among the images of the
    call, the same scale for all of them); for all: ``scores.csv``.

    The decision is ``anomalous`` when the score is at least the threshold: ``threshold`` if
    given, else the one ``nsad train`` calibrated on held-out normal images; without either the
    decision is left empty (with a warning).

    Returns:
        One row per image: ``file``, ``score``, ``threshold``, ``decision``, ``map``, ``heatmap``.

    Raises:
        FileNotFoundError, ValueError: for missing or unreadable inputs or run files.
    """
    named = expand_inputs(inputs)
    paths = [path for path, _ in named]
    scorer = Scorer(run, device=device, score_rule=score_rule)
    threshold = scorer.metadata.threshold if threshold is None else float(threshold)
    if threshold is None:
        warnings.warn("the run has no calibrated threshold and none was given (--threshold); "
                      "scores are written without decisions", stacklevel=2)
    result = scorer.score(paths)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # One colour scale for all heatmaps of the call, from 0 to the largest map value among them, so
    # that a barely trained model's faint maps stay readable and images stay comparable.
    vmax = max(float(result.maps.max()), 1e-6)
    rows = []
    labels = decisions(result.scores, threshold)
    for (path, stem), framed, score, decision in zip(named, result.maps, result.scores, labels, strict=True):
        image = read_image(path)
        anomaly_map = resize_map(framed, image.shape[:2]).astype(np.float32)
        np.save(out / f"{stem}.npy", anomaly_map)
        heat = overlay(image, anomaly_map, vmin=0.0, vmax=vmax)
        side_by_side = np.concatenate([to_display(image), heat], axis=1)
        write_image(out / f"{stem}_heatmap.png", side_by_side)
        rows.append({"file": str(path), "score": float(score), "threshold": "" if threshold is None else threshold,
                     "decision": decision, "map": f"{stem}.npy", "heatmap": f"{stem}_heatmap.png"})
    with open(out / SCORES_FILE, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows
