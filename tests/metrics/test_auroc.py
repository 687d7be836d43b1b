"""Image and pixel AUROC: agreement with scikit-learn, hand values, input types, undefined cases."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from nsad.metrics import UndefinedMetricWarning, image_auroc, pixel_auroc


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("levels", [2, 10, None], ids=["2-levels", "10-levels", "continuous"])
def test_image_auroc_matches_sklearn(seed, levels):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    scores = rng.random(n) if levels is None else rng.integers(0, levels, n).astype(float)
    scores = scores + 0.3 * labels * rng.random()  # some separation, ties kept for integer levels
    assert image_auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_pixel_auroc_matches_sklearn_with_ties_and_normal_images(seed):
    rng = np.random.default_rng(seed)
    masks = (rng.random((5, 24, 20)) < 0.1).astype(np.uint8) * 255
    masks[0] = 0  # a normal image: its pixels count as normal samples
    maps = (rng.integers(0, 30, masks.shape) + 5 * (masks > 0)).astype(np.float32)
    expected = roc_auc_score(masks.ravel() > 0, maps.ravel())
    assert pixel_auroc(maps, masks) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "scores, labels, expected",
    [([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),  # pairs (a, n): .35>.1, .35<.4, .8>.1, .8>.4
     ([1, 2, 3, 4], [0, 0, 1, 1], 1.0),
     ([4, 3, 2, 1], [0, 0, 1, 1], 0.0),
     ([5, 5, 5], [0, 1, 1], 0.5),  # all tied: each pair counts 1/2
     ([1, 2, 2, 3], [0, 0, 1, 1], 0.875)],  # (2 vs 1: 1) (2 vs 2: .5) (3: 1, 1) = 3.5 / 4
    ids=["doc", "perfect", "inverted", "all-tied", "one-tie"])
def test_image_auroc_hand_values(scores, labels, expected):
    assert image_auroc(scores, labels) == expected


def test_pixel_auroc_mask_encodings_agree():
    rng = np.random.default_rng(7)
    positive = rng.random((3, 8, 8)) < 0.2
    maps = rng.random(positive.shape)
    encodings = (positive, positive.astype(np.uint8), positive.astype(np.uint8) * 255,
                 positive.astype(np.float32))
    values = [pixel_auroc(maps, mask) for mask in encodings]
    assert len(set(values)) == 1


def test_float32_maps_are_not_rounded_to_a_grid():
    # Two scores 1 ulp apart in float32 must stay distinct (no binning, no float16).
    low = np.float32(0.5)
    high = np.nextafter(low, np.float32(1))
    maps = np.array([[[low, high]]], np.float32)
    assert pixel_auroc(maps, np.array([[[0, 1]]])) == 1.0


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    scores, labels = rng.random(50), rng.integers(0, 2, 50)
    expected = image_auroc(scores, labels)
    assert image_auroc(torch.tensor(scores, requires_grad=True), torch.tensor(labels)) == expected
    maps = torch.rand(2, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.bfloat16)
    masks = torch.zeros(2, 6, 6, dtype=torch.bool)
    masks[1, 2:4, 2:4] = True
    assert pixel_auroc(maps, masks) == pixel_auroc(maps.float().numpy(), masks.numpy())


def test_metrics_package_never_imports_torch():
    code = "import sys, nsad.metrics; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("labels, found", [([0, 0, 0], "0 anomalous and 3 normal"),
                                           ([1, 1, 1], "3 anomalous and 0 normal")],
                         ids=["no-anomalous", "no-normal"])
def test_image_auroc_with_one_class_is_nan_with_warning(labels, found):
    with pytest.warns(UndefinedMetricWarning, match=f"image AUROC is undefined with {found} images"):
        assert np.isnan(image_auroc([0.1, 0.2, 0.3], labels))


def test_pixel_auroc_with_one_class_is_nan_with_warning():
    with pytest.warns(UndefinedMetricWarning,
                      match="pixel AUROC is undefined with 0 anomalous and 8 normal pixels"):
        assert np.isnan(pixel_auroc(np.zeros((2, 2, 2)), np.zeros((2, 2, 2), np.uint8)))
