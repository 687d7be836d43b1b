"""Anomaly maps and masks to numbers, exactly as MVTec AD's own evaluation computes them.

Plain functions on NumPy arrays (torch tensors are accepted and converted; this package never
imports torch). Every metric is exact: each distinct score is a threshold, nothing is binned.
A sample is flagged anomalous iff ``score >= threshold``.

- :func:`image_auroc`, :func:`pixel_auroc`: ROC AUC (Mann-Whitney, ties count 1/2); :func:`roc_curve`.
- :func:`aupro`, :func:`pro_curve`: MVTec AD's AU-PRO up to an FPR limit (Bergmann et al., IJCV 2021, Sec. 4.2).
- :func:`image_f1_max`, :func:`pixel_f1_max`: best F1 and its threshold;
  :func:`threshold_at_fpr`: a threshold from normal scores only.
- :func:`evaluate`, :func:`evaluate_by_defect_type`: all metrics at once (one sort of the pixels);
  :func:`mean_sem`, :func:`summarize_seeds`, :func:`category_table`, :func:`format_table`: mean ±
  standard error over seeds, as the NSA paper reports.

Undefined metrics (one class only) return NaN with an :class:`UndefinedMetricWarning`.
"""

from nsad.metrics._validate import UndefinedMetricWarning
from nsad.metrics.aggregate import (
    IMAGE_METRICS,
    PIXEL_METRICS,
    MeanSem,
    category_table,
    evaluate,
    evaluate_by_defect_type,
    format_mean_sem,
    format_table,
    mean_sem,
    summarize_seeds,
)
from nsad.metrics.aupro import ProCurve, aupro, pro_curve
from nsad.metrics.auroc import RocCurve, image_auroc, pixel_auroc, roc_curve
from nsad.metrics.thresholds import F1Max, image_f1_max, pixel_f1_max, threshold_at_fpr

__all__ = [
    "IMAGE_METRICS",
    "PIXEL_METRICS",
    "F1Max",
    "MeanSem",
    "ProCurve",
    "RocCurve",
    "UndefinedMetricWarning",
    "aupro",
    "category_table",
    "evaluate",
    "evaluate_by_defect_type",
    "format_mean_sem",
    "format_table",
    "image_auroc",
    "image_f1_max",
    "mean_sem",
    "pixel_auroc",
    "pixel_f1_max",
    "pro_curve",
    "roc_curve",
    "summarize_seeds",
    "threshold_at_fpr",
]
