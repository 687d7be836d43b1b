"""All metrics in one call, per-defect-type rows, and mean, standard deviation and standard error over seeds.

The NSA paper (Schlüter et al., ECCV 2022, Sec. 4) writes that each number is the mean and the
standard error over 5 seeds, per MVTec AD category and averaged over categories; the authors'
evaluation code computes the ± as the standard deviation over the seeds (pandas' ``std``,
``ddof=1``). :class:`MeanSem` keeps both, so tables can show the standard deviation as the
authors did and the standard error beside it. MVTec-style per-defect-type rows compare one defect
type's images with all normal images.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from nsad._checks import check_choice
from nsad.metrics._ranked import check_pixels, rank_images, rank_scores
from nsad.metrics._validate import as_array, check_fraction, check_ndim
from nsad.metrics.aupro import aupro_from_ranked
from nsad.metrics.auroc import auroc_from_ranked
from nsad.metrics.thresholds import f1_max_from_ranked

#: Metric names of :func:`evaluate`, in table order; the pixel ones only with maps and masks.
IMAGE_METRICS = ("image_auroc", "image_f1_max")
PIXEL_METRICS = ("pixel_auroc", "pixel_f1_max", "aupro")


def evaluate(scores: object, labels: object, anomaly_maps: object = None, masks: object = None, *,
             fpr_limit: float = 0.3) -> dict[str, float]:
    """Every metric of one evaluation set, sorting the pixel scores only once.

    Args:
        scores: (N,) finite image anomaly scores (the NSA paper uses the mean of the pixel map).
        labels: (N,) 0/1 image labels.
        anomaly_maps: optional (N, H, W) finite pixel scores, same image order.
        masks: (N, H, W) ground truth (bool, 0/1 or 0/255); required with ``anomaly_maps``.
        fpr_limit: AU-PRO integration limit in (0, 1].

    Returns:
        ``{"image_auroc", "image_f1_max"}`` and, with maps, ``{"pixel_auroc", "pixel_f1_max",
        "aupro"}`` as floats in [0, 1]; an undefined metric is NaN (with a warning).

    Raises:
        TypeError: if an input is not numeric.
        ValueError: for any invalid input (see :func:`~nsad.metrics.auroc.image_auroc`,
            :func:`~nsad.metrics.auroc.pixel_auroc`, :func:`~nsad.metrics.aupro.aupro`), if only one
            of ``anomaly_maps`` and ``masks`` is given, or if the maps hold a different number of
            images than ``scores``.
    """
    limit = check_fraction("fpr_limit", fpr_limit, include_zero=False)
    ranked = rank_images(scores, labels)
    n_images = ranked.neg.size + ranked.pos.size
    result = {"image_auroc": auroc_from_ranked(ranked, "image"),
              "image_f1_max": f1_max_from_ranked(ranked, "image").f1}
    if anomaly_maps is None and masks is None:
        return result
    if anomaly_maps is None or masks is None:
        missing = "anomaly_maps" if anomaly_maps is None else "masks"
        raise ValueError(f"pixel metrics need both anomaly_maps and masks; {missing} is None")
    maps, positive = check_pixels(anomaly_maps, masks)
    if maps.shape[0] != n_images:
        raise ValueError(f"anomaly_maps hold {maps.shape[0]} images but scores hold {n_images}")
    ranked_pixels = rank_scores(maps, positive)
    result["pixel_auroc"] = auroc_from_ranked(ranked_pixels, "pixel")
    result["pixel_f1_max"] = f1_max_from_ranked(ranked_pixels, "pixel").f1
    result["aupro"] = aupro_from_ranked(ranked_pixels, positive, limit)
    return result


def evaluate_by_defect_type(scores: object, defect_types: Sequence[str], anomaly_maps: object = None,
                            masks: object = None, *, normal_type: str = "good",
                            fpr_limit: float = 0.3) -> dict[str, dict[str, float]]:
    """Metrics per defect type (that type's images against all normal images) and over all images.

    An image is normal iff its defect type is ``normal_type``; its label is 0, every other image's
    is 1. The row of defect type ``d`` evaluates the images of type ``d`` together with all
    normal images (as MVTec AD's per-defect-type tables do); for pixel metrics this means the
    normal pixels of both, the anomalous pixels of type ``d``. The row ``"all"`` evaluates
    everything at once; it is not the mean of the other rows.

    Args:
        scores: (N,) finite image anomaly scores.
        defect_types: N names, e.g. the MVTec AD test sub-folder of each image.
        anomaly_maps: optional (N, H, W) finite pixel scores.
        masks: (N, H, W) ground truth, required with ``anomaly_maps``; normal images must have
            all-zero masks.
        normal_type: the name that marks normal images.
        fpr_limit: AU-PRO integration limit in (0, 1].

    Returns:
        ``{defect_type: metrics}`` for each anomalous type in sorted order, then ``"all"``; the
        metrics are those of :func:`evaluate`.

    Raises:
        TypeError: if ``defect_types`` is not a sequence of strings.
        ValueError: if ``defect_types`` has another length than ``scores``, if an anomalous type
            is named ``"all"``, if only one of ``anomaly_maps`` and ``masks`` is given, if a
            normal image's mask is not empty, or for any input :func:`evaluate` rejects.
    """
    if isinstance(defect_types, str) or not all(isinstance(name, str) for name in defect_types):
        raise TypeError("defect_types must be a sequence of strings, one per image")
    types = np.asarray(list(defect_types), dtype=object)
    score_array = as_array("scores", scores)
    check_ndim("scores", score_array, 1, "(N,)")
    if types.size != score_array.size:
        raise ValueError(f"defect_types has {types.size} names but scores has {score_array.size} values")
    normal = types == normal_type
    anomalous_types = sorted(set(types[~normal].tolist()))
    if "all" in anomalous_types:
        raise ValueError("a defect type is named 'all', which is the name of the overall row; rename it")
    if (anomaly_maps is None) != (masks is None):
        missing = "anomaly_maps" if anomaly_maps is None else "masks"
        raise ValueError(f"pixel metrics need both anomaly_maps and masks; {missing} is None")
    maps = mask_array = None
    if anomaly_maps is not None:
        maps, mask_array = check_pixels(anomaly_maps, masks)
        if maps.shape[0] != types.size:
            raise ValueError(f"anomaly_maps hold {maps.shape[0]} images but defect_types names {types.size}")
        dirty = np.flatnonzero(mask_array[normal].any(axis=(1, 2)))
        if dirty.size:
            raise ValueError(f"{dirty.size} images of normal type {normal_type!r} have anomalous mask "
                             f"pixels (first: image {int(np.flatnonzero(normal)[dirty[0]])}); "
                             f"normal images need empty masks")
    labels = (~normal).astype(np.int64)
    table: dict[str, dict[str, float]] = {}
    for name in anomalous_types:
        keep = normal | (types == name)
        table[name] = evaluate(score_array[keep], labels[keep],
                               None if maps is None else maps[keep],
                               None if mask_array is None else mask_array[keep], fpr_limit=fpr_limit)
    table["all"] = evaluate(score_array, labels, maps, mask_array, fpr_limit=fpr_limit)
    return table


SPREADS = ("sem", "std", "std+sem")
"""What a formatted ``±`` shows: the standard error, the standard deviation, or the deviation with the error beside."""


@dataclass(frozen=True)
class MeanSem:
    """Mean, standard error of the mean and standard deviation of one metric over runs (e.g. seeds).

    Attributes:
        mean: arithmetic mean.
        sem: ``std / sqrt(n)``; NaN when ``n == 1`` (one run has no spread estimate).
        n: number of runs.
        std: sample standard deviation (``ddof=1``, as pandas' ``std``); NaN when ``n == 1``.
    """

    mean: float
    sem: float
    n: int
    std: float = float("nan")

    def format(self, scale: float = 100.0, digits: int = 1, spread: str = "sem") -> str:
        """Format as ``"97.7 ± 0.3"``, the ± being ``spread``: see :data:`SPREADS`.

        ``sem``: the standard error; ``std``: the standard deviation; ``std+sem``: the deviation
        with the error beside, ``"97.7 ± 0.5 (se 0.3)"``.

        Raises:
            ValueError: for another ``spread``.
        """
        check_choice("spread", spread, SPREADS)
        if spread == "sem":
            return format_mean_sem(self.mean, self.sem, scale=scale, digits=digits)
        text = format_mean_sem(self.mean, self.std, scale=scale, digits=digits)
        if spread == "std" or math.isnan(self.mean) or math.isnan(self.sem):
            return text
        return f"{text} (se {self.sem * scale:.{digits}f})"


def mean_sem(values: Sequence[float]) -> MeanSem:
    """Mean, standard error ``s / sqrt(n)`` and ``s``, the sample standard deviation (ddof = 1).

    Args:
        values: one value per run, at least one; a NaN makes mean and sem NaN.

    Returns:
        A :class:`MeanSem`; its ``sem`` is NaN for a single value.

    Raises:
        ValueError: if ``values`` is empty or not 1-D.

    Example:
        >>> m = mean_sem([0.97, 0.98, 0.99])
        >>> round(m.mean, 12), round(m.std, 12), round(m.sem, 12), m.n
        (0.98, 0.01, 0.005773502692, 3)
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence, got shape {array.shape}")
    n = int(array.size)
    mean = float(np.mean(array))
    std = float(np.std(array, ddof=1)) if n > 1 else float("nan")
    return MeanSem(mean=mean, sem=std / math.sqrt(n), n=n, std=std)


def format_mean_sem(mean: float, sem: float, *, scale: float = 100.0, digits: int = 1) -> str:
    """Format as ``"97.7 ± 0.3"``: both multiplied by ``scale`` (100 for percent), ``digits`` decimals.

    A NaN ``sem`` (a single run) prints as ``"97.7 ± n/a"``; a NaN mean prints as ``"nan"``.
    """
    if math.isnan(mean):
        return "nan"
    head = f"{mean * scale:.{digits}f}"
    return f"{head} ± n/a" if math.isnan(sem) else f"{head} ± {sem * scale:.{digits}f}"


def summarize_seeds(runs: Sequence[Mapping[str, float]]) -> dict[str, MeanSem]:
    """Mean ± standard error of each metric over runs, e.g. ``evaluate`` results of 5 seeds.

    Raises:
        ValueError: if ``runs`` is empty or the runs do not all have the same metric names.
    """
    if len(runs) == 0:
        raise ValueError("runs is empty; need at least one run's metrics")
    names = list(runs[0])
    for index, run in enumerate(runs):
        if set(run) != set(names):
            raise ValueError(f"run {index} has metrics {sorted(run)} but run 0 has {sorted(names)}")
    return {name: mean_sem([run[name] for run in runs]) for name in names}


def category_table(results: Mapping[str, Sequence[Mapping[str, float]]]) -> dict[str, dict[str, MeanSem]]:
    """Per-category mean ± standard error over seeds, plus a ``"mean"`` row over categories.

    The ``"mean"`` row first averages the categories within each seed, then takes mean and
    standard error of those per-seed averages over seeds; its mean is the mean of the category
    means, its error reflects seed-to-seed variation of the overall score. Run ``i`` of every
    category must come from the same seed.

    Args:
        results: ``{category: [metrics of seed 0, metrics of seed 1, ...]}``, each metrics a
            mapping such as :func:`evaluate` returns.

    Returns:
        ``{category: {metric: MeanSem}}`` in the given category order, then ``"mean"``.

    Raises:
        ValueError: if ``results`` is empty, a category is named ``"mean"``, or categories differ
            in their number of seeds or metric names.
    """
    if len(results) == 0:
        raise ValueError("results is empty; need at least one category")
    if "mean" in results:
        raise ValueError("a category is named 'mean', which is the name of the overall row; rename it")
    categories = list(results)
    n_seeds = {name: len(runs) for name, runs in results.items()}
    if len(set(n_seeds.values())) != 1:
        raise ValueError(f"every category needs the same number of seeds, got {n_seeds}")
    table = {name: summarize_seeds(results[name]) for name in categories}
    metrics = list(table[categories[0]])
    for name in categories:
        if set(table[name]) != set(metrics):
            raise ValueError(f"category {name!r} has metrics {sorted(table[name])} but "
                             f"{categories[0]!r} has {sorted(metrics)}")
    seeds = range(n_seeds[categories[0]])
    table["mean"] = {metric: mean_sem([float(np.mean([results[name][seed][metric] for name in categories]))
                                       for seed in seeds]) for metric in metrics}
    return table


def format_table(table: Mapping[str, Mapping[str, MeanSem | float]], *, scale: float = 100.0,
                 digits: int = 1, row_header: str = "category", spread: str = "sem") -> str:
    """A Markdown table: one row per key of ``table``, one column per metric of its first row.

    Cells are ``"97.7 ± 0.3"`` for :class:`MeanSem` values (``spread`` as :meth:`MeanSem.format`)
    and ``"97.7"`` for plain floats.

    Raises:
        ValueError: if ``table`` is empty.
    """
    if len(table) == 0:
        raise ValueError("table is empty")
    metrics = list(next(iter(table.values())))

    def cell(value: MeanSem | float | None) -> str:
        if value is None:
            return ""
        if isinstance(value, MeanSem):
            return value.format(scale=scale, digits=digits, spread=spread)
        return "nan" if math.isnan(value) else f"{value * scale:.{digits}f}"

    lines = ["| " + " | ".join([row_header, *metrics]) + " |", "|" + "---|" * (len(metrics) + 1)]
    for row, values in table.items():
        lines.append("| " + " | ".join([str(row), *(cell(values.get(m)) for m in metrics)]) + " |")
    return "\n".join(lines)
