"""Published MVTec AD results per category, to print beside a run's own (percent, mean over 5 seeds).

Image and pixel AUROC: Schlüter et al., "Natural Synthetic Anomalies for Self-Supervised Anomaly
Detection and Localization", ECCV 2022, Tables 1 and 2 (their re-implementations of CutPaste
end-to-end, FPI and PII, and CutPaste 3-way as Li et al. 2021 report it). AU-PRO up to FPR 0.3: the
same work's arXiv version, Table 5 (not reported for CutPaste 3-way).
"""

from __future__ import annotations

_COLUMNS = ("image_auroc", "pixel_auroc", "aupro")

_TABLE: dict[str, dict[str, tuple[float, ...]]] = {
    "nsa-logistic": {
        "bottle": (97.7, 98.3, 92.9),
        "cable": (94.5, 96.0, 89.9),
        "capsule": (95.2, 97.6, 91.4),
        "hazelnut": (94.7, 97.6, 93.6),
        "metal_nut": (98.7, 98.4, 94.6),
        "pill": (99.2, 98.5, 96.0),
        "screw": (90.2, 96.5, 90.1),
        "toothbrush": (100.0, 94.9, 90.7),
        "transistor": (95.1, 88.0, 75.3),
        "zipper": (99.8, 94.2, 89.2),
        "carpet": (95.6, 95.5, 85.0),
        "grid": (99.9, 99.2, 96.8),
        "leather": (99.9, 99.5, 98.7),
        "tile": (100.0, 99.3, 95.3),
        "wood": (97.5, 90.7, 85.3),
    },
    "nsa-binary": {
        "bottle": (97.6, 98.4, 93.0),
        "cable": (92.1, 93.3, 87.6),
        "capsule": (93.2, 98.1, 91.8),
        "hazelnut": (93.5, 97.2, 93.6),
        "metal_nut": (99.4, 98.2, 94.9),
        "pill": (97.0, 98.5, 93.7),
        "screw": (90.3, 96.7, 90.6),
        "toothbrush": (100.0, 95.6, 91.2),
        "transistor": (93.5, 87.8, 72.6),
        "zipper": (99.8, 94.2, 88.9),
        "carpet": (85.6, 94.5, 84.0),
        "grid": (99.9, 99.1, 96.5),
        "leather": (99.9, 99.6, 98.9),
        "tile": (99.7, 99.0, 93.9),
        "wood": (96.7, 94.0, 89.2),
    },
    "nsa-continuous": {
        "bottle": (97.5, 97.3, 89.9),
        "cable": (90.2, 91.0, 85.4),
        "capsule": (92.8, 91.6, 79.9),
        "hazelnut": (89.3, 97.7, 93.1),
        "metal_nut": (94.6, 97.3, 90.8),
        "pill": (94.3, 97.1, 92.5),
        "screw": (90.1, 92.3, 80.6),
        "toothbrush": (99.6, 94.5, 89.0),
        "transistor": (92.8, 80.2, 63.3),
        "zipper": (99.5, 90.7, 83.6),
        "carpet": (90.9, 81.8, 71.1),
        "grid": (98.5, 98.0, 94.2),
        "leather": (100.0, 99.5, 98.6),
        "tile": (100.0, 97.4, 90.3),
        "wood": (97.8, 90.6, 86.1),
    },
    "cutpaste-e2e": {
        "bottle": (100.0, 97.7, 91.2),
        "cable": (75.4, 81.0, 59.8),
        "capsule": (89.2, 97.5, 83.5),
        "hazelnut": (81.4, 94.8, 81.3),
        "metal_nut": (70.6, 68.1, 54.4),
        "pill": (90.3, 98.1, 83.1),
        "screw": (65.5, 90.7, 72.6),
        "toothbrush": (96.7, 95.7, 88.1),
        "transistor": (88.2, 85.9, 68.5),
        "zipper": (98.7, 92.9, 84.9),
        "carpet": (53.1, 83.3, 50.4),
        "grid": (99.7, 97.6, 91.5),
        "leather": (86.6, 96.4, 83.7),
        "tile": (87.8, 72.7, 54.4),
        "wood": (84.6, 84.0, 64.0),
    },
    "fpi": {
        "bottle": (90.2, 91.8, 66.0),
        "cable": (68.0, 66.5, 51.9),
        "capsule": (87.5, 95.9, 79.9),
        "hazelnut": (86.0, 89.8, 71.4),
        "metal_nut": (88.4, 96.2, 72.2),
        "pill": (71.8, 62.3, 50.4),
        "screw": (61.2, 90.4, 69.8),
        "toothbrush": (85.8, 81.8, 60.3),
        "transistor": (79.6, 78.5, 55.4),
        "zipper": (97.7, 91.8, 81.2),
        "carpet": (56.0, 70.8, 21.6),
        "grid": (99.5, 94.2, 86.0),
        "leather": (91.7, 88.3, 84.1),
        "tile": (90.2, 65.0, 42.0),
        "wood": (74.4, 71.1, 41.7),
    },
    "pii": {
        "bottle": (97.6, 93.1, 79.0),
        "cable": (68.9, 70.2, 55.7),
        "capsule": (84.9, 90.2, 67.6),
        "hazelnut": (82.7, 97.0, 90.9),
        "metal_nut": (98.9, 95.4, 91.5),
        "pill": (86.3, 95.3, 65.2),
        "screw": (74.7, 92.8, 78.4),
        "toothbrush": (93.1, 81.3, 66.8),
        "transistor": (90.1, 86.9, 57.4),
        "zipper": (99.8, 93.8, 86.6),
        "carpet": (65.6, 97.2, 93.5),
        "grid": (100.0, 98.9, 95.9),
        "leather": (100.0, 99.2, 98.1),
        "tile": (98.4, 98.0, 83.2),
        "wood": (91.9, 91.1, 81.7),
    },
    "cutpaste-3way": {
        "bottle": (98.3, 97.6),
        "cable": (80.6, 90.0),
        "capsule": (96.2, 97.4),
        "hazelnut": (97.3, 97.3),
        "metal_nut": (99.3, 93.1),
        "pill": (92.4, 95.7),
        "screw": (86.3, 96.7),
        "toothbrush": (98.3, 98.1),
        "transistor": (95.5, 93.0),
        "zipper": (99.4, 99.3),
        "carpet": (93.1, 98.3),
        "grid": (99.9, 97.5),
        "leather": (100.0, 99.5),
        "tile": (93.4, 90.5),
        "wood": (98.6, 95.5),
    },
}


def published_result(method: str, category: str) -> dict[str, float]:
    """The paper's figures for ``method`` on MVTec AD ``category`` as fractions, or ``{}`` when there are none.

    Example:
        >>> published_result("nsa-logistic", "bottle")
        {'image_auroc': 0.977, 'pixel_auroc': 0.983, 'aupro': 0.929}
    """
    values = _TABLE.get(method, {}).get(category, ())
    return {name: round(value / 100, 6) for name, value in zip(_COLUMNS, values, strict=False)}
