"""The report's plots (matplotlib, drawn off-screen): each returns the PNG and the numbers it drew.

Every function takes the numbers to plot and hands back exactly those numbers beside the picture
(:class:`Plot`), so a test can compare what was drawn with what was reported without reading pixels.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from nsad.metrics import ProCurve, RocCurve  # noqa: E402

FIGURE_INCHES = (4.2, 3.2)
DPI = 110
NORMAL_COLOUR, ANOMALOUS_COLOUR, THRESHOLD_COLOUR = "tab:blue", "tab:red", "black"


@dataclass(frozen=True)
class Plot:
    """One plot: its PNG bytes, a title and the numbers drawn (``data``; keys depend on the plot)."""

    png: bytes
    title: str
    data: Mapping[str, Any] = field(default_factory=dict)


def _finish(figure: plt.Figure, title: str, data: Mapping[str, Any]) -> Plot:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    return Plot(buffer.getvalue(), title, dict(data))


def roc_plot(curve: RocCurve, reported_auroc: float) -> Plot:
    """The image ROC curve; ``data``: ``fpr``, ``tpr`` (as drawn) and the reported AUROC."""
    figure, axes = plt.subplots(figsize=FIGURE_INCHES)
    axes.plot(curve.fpr, curve.tpr, color=ANOMALOUS_COLOUR, drawstyle="default", lw=1.8,
              label=f"AUROC {100 * reported_auroc:.1f}%")
    axes.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--", label="chance")
    axes.set(xlabel="false-positive rate (normal images flagged)", ylabel="true-positive rate", xlim=(0, 1),
             ylim=(0, 1.01))
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    return _finish(figure, "Image ROC", {"fpr": curve.fpr, "tpr": curve.tpr, "auroc": reported_auroc})


def pro_plot(curve: ProCurve, fpr_limit: float, reported_aupro: float) -> Plot:
    """The per-region-overlap curve up to ``fpr_limit``, area shaded; ``data``: ``fpr``, ``pro`` as drawn."""
    keep = curve.fpr <= fpr_limit
    fpr, pro = curve.fpr[keep], curve.pro[keep]
    if fpr[-1] < fpr_limit and keep.sum() < curve.fpr.size:  # end exactly at the limit, as the area does
        after = int(keep.sum())
        step = (fpr_limit - curve.fpr[after - 1]) / (curve.fpr[after] - curve.fpr[after - 1])
        fpr = np.append(fpr, fpr_limit)
        pro = np.append(pro, curve.pro[after - 1] + step * (curve.pro[after] - curve.pro[after - 1]))
    figure, axes = plt.subplots(figsize=FIGURE_INCHES)
    axes.plot(fpr, pro, color=ANOMALOUS_COLOUR, lw=1.8)
    axes.fill_between(fpr, pro, color=ANOMALOUS_COLOUR, alpha=0.15,
                      label=f"AU-PRO@{fpr_limit:g} {100 * reported_aupro:.1f}%")
    axes.set(xlabel="pixel false-positive rate", ylabel="per-region overlap", xlim=(0, fpr_limit), ylim=(0, 1.01))
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    return _finish(figure, f"PRO curve to FPR {fpr_limit:g}", {"fpr": fpr, "pro": pro, "aupro": reported_aupro,
                                                             "n_regions": curve.n_regions})


def score_histogram(scores: np.ndarray, anomalous: np.ndarray, threshold: float | None, bins: int = 30) -> Plot:
    """Image scores of normal and anomalous test images on shared bins, the threshold as a line.

    ``data``: ``edges`` and the ``normal`` and ``anomalous`` counts matplotlib drew.
    """
    scores = np.asarray(scores, np.float64)
    anomalous = np.asarray(anomalous, bool)
    values = scores if threshold is None else np.append(scores, threshold)
    edges = np.histogram_bin_edges(values, bins=bins)
    figure, axes = plt.subplots(figsize=FIGURE_INCHES)
    normal_counts, _, _ = axes.hist(scores[~anomalous], bins=edges, color=NORMAL_COLOUR, alpha=0.6,
                                    label=f"normal ({int((~anomalous).sum())})")
    anomalous_counts, _, _ = axes.hist(scores[anomalous], bins=edges, color=ANOMALOUS_COLOUR, alpha=0.6,
                                       label=f"defective ({int(anomalous.sum())})")
    if threshold is not None:
        axes.axvline(threshold, color=THRESHOLD_COLOUR, lw=1.5, ls="--", label=f"threshold {threshold:.4g}")
    axes.set(xlabel="image score", ylabel="test images")
    axes.xaxis.set_major_locator(MaxNLocator(5))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend()
    return _finish(figure, "Scores of the test images", {"edges": edges, "normal": np.asarray(normal_counts, int),
                                            "anomalous": np.asarray(anomalous_counts, int)})


def confusion_plot(anomalous: np.ndarray, flagged: np.ndarray, threshold: float) -> Plot:
    """The 2x2 confusion matrix at ``threshold``.

    ``data['matrix']``: rows are the truth (normal, defective), columns the decision (normal, anomalous).
    """
    anomalous, flagged = np.asarray(anomalous, bool), np.asarray(flagged, bool)
    matrix = np.array([[np.sum(~anomalous & ~flagged), np.sum(~anomalous & flagged)],
                       [np.sum(anomalous & ~flagged), np.sum(anomalous & flagged)]], dtype=int)
    figure, axes = plt.subplots(figsize=(3.4, 3.0))
    axes.imshow(matrix, cmap="Blues", vmin=0, vmax=max(1, int(matrix.max())))
    for (row, col), count in np.ndenumerate(matrix):
        axes.text(col, row, str(count), ha="center", va="center", fontsize=14,
                  color="white" if count > matrix.max() / 2 else "black")
    axes.set_xticks([0, 1], ["normal", "anomalous"])
    axes.set_yticks([0, 1], ["normal", "defective"])
    axes.set(xlabel="decision", ylabel="truth")
    return _finish(figure, f"Decisions at threshold {threshold:.4g}", {"matrix": matrix})


def loss_plot(curves: Mapping[str, Sequence[tuple[int, float]]]) -> Plot:
    """Loss per epoch, one line per logged loss (e.g. ``train_loss``, ``val_loss``); ``data``: the curves."""
    figure, axes = plt.subplots(figsize=FIGURE_INCHES)
    for name, points in curves.items():
        epochs, values = zip(*points, strict=True)
        axes.plot(np.asarray(epochs) + 1, values, marker="o" if len(points) < 30 else None, ms=3, label=name)
    axes.set(xlabel="epoch", ylabel="loss")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend()
    axes.grid(alpha=0.3)
    return _finish(figure, "Training loss", {"curves": {name: list(points) for name, points in curves.items()}})
