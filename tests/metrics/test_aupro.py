"""AU-PRO and the PRO curve: hand-computed cases, independent references, invariances, errors."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import skimage.measure
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nsad.metrics import UndefinedMetricWarning, aupro, pro_curve

# ---------------------------------------------------------------------------------------------
# Independent references


def reference_curve(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(K + 1, 2) points (fpr, pro): a plain loop over distinct thresholds, regions from skimage."""
    regions = []
    for image, mask in zip(maps, masks, strict=True):
        labels = skimage.measure.label(mask > 0, connectivity=2)  # 8-connectivity
        regions += [image[labels == index] for index in range(1, labels.max() + 1)]
    normal = maps[masks == 0]
    points = [(0.0, 0.0)]
    for threshold in np.unique(maps)[::-1]:
        points.append((np.mean(normal >= threshold), np.mean([np.mean(r >= threshold) for r in regions])))
    return np.array(points)


def reference_area(points: np.ndarray, limit: float) -> float:
    """Segment by segment: clip each segment at ``limit``, interpolating y there."""
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:], strict=True):
        if x0 >= limit:
            break
        if x1 > limit:
            x1, y1 = limit, y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
        area += (x1 - x0) * (y0 + y1) / 2
    return area / limit


def mvtec_style_aupro(maps: np.ndarray, masks: np.ndarray, limit: float = 0.3) -> float:
    """The published evaluation's algorithm: per-pixel FPR/PRO increments, one global argsort,
    cumulative sums, keep the last index of each run of equal scores, prepend (0, 0), trapezoid
    up to ``limit`` with interpolation."""
    fp_change = np.zeros(maps.shape)
    pro_change = np.zeros(maps.shape)
    fp_change[masks == 0] = 1.0 / np.count_nonzero(masks == 0)
    labelled = [skimage.measure.label(mask > 0, connectivity=2) for mask in masks]
    n_regions = sum(int(labels.max()) for labels in labelled)
    for index, labels in enumerate(labelled):
        for region in range(1, labels.max() + 1):
            inside = labels == region
            pro_change[index][inside] = 1.0 / (n_regions * inside.sum())
    order = np.argsort(maps.ravel())[::-1]
    scores = maps.ravel()[order]
    fprs = np.cumsum(fp_change.ravel()[order])
    pros = np.cumsum(pro_change.ravel()[order])
    keep = np.append(np.diff(scores) != 0, True)
    fprs = np.concatenate([[0.0], np.clip(fprs[keep], 0, 1)])
    pros = np.concatenate([[0.0], np.clip(pros[keep], 0, 1)])
    inside = fprs <= limit
    area = np.sum(np.diff(fprs[inside]) * (pros[inside][1:] + pros[inside][:-1]) / 2)
    if limit not in fprs:
        after = int(np.argmax(fprs > limit))
        x0, x1, y0, y1 = fprs[after - 1], fprs[after], pros[after - 1], pros[after]
        y_limit = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
        area += (limit - x0) * (y0 + y_limit) / 2
    return float(area / limit)


# ---------------------------------------------------------------------------------------------
# Hand-computed cases


def test_single_region_half_detected():
    # One 2x2 region scored [.9, .9, .1, .1]; 12 normal pixels, 3 at .5 and 9 at 0.
    # Points: (0,0) (0,.5)@.9 (.25,.5)@.5 (.25,1)@.1 (1,1)@0.
    # Area to .3: .25*.5 + .05*1 = .175; /.3 = 7/12. Area to exactly .25: .125; /.25 = .5.
    maps = np.zeros((1, 4, 4))
    maps[0, :2, :2] = [[0.9, 0.9], [0.1, 0.1]]
    maps[0, 3, 1:] = 0.5
    masks = np.zeros((1, 4, 4), np.uint8)
    masks[0, :2, :2] = 255
    curve = pro_curve(maps, masks)
    np.testing.assert_allclose(curve.fpr, [0, 0, 0.25, 0.25, 1])
    np.testing.assert_allclose(curve.pro, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_array_equal(curve.thresholds, [np.inf, 0.9, 0.5, 0.1, 0.0])
    assert curve.n_regions == 1
    assert aupro(maps, masks) == pytest.approx(7 / 12, abs=1e-12)
    assert aupro(maps, masks, fpr_limit=0.25) == pytest.approx(0.5, abs=1e-12)  # limit on a point


@pytest.mark.parametrize("detected", ["small", "large"], ids=["1px-found", "9px-found"])
def test_two_regions_of_very_different_sizes_count_equally(detected):
    # A 1-pixel and a 9-pixel region; one scored 1, the other 0 like the 90 normal pixels.
    # PRO is a mean over regions, so either way: (0,0) (0,.5) (1,1); PRO(.3) = .65;
    # area .3 * (.5 + .65) / 2; /.3 = .575. (A pixel-weighted overlap would give .1 vs .9.)
    maps = np.zeros((1, 10, 10))
    masks = np.zeros((1, 10, 10), bool)
    masks[0, 1, 1] = True
    masks[0, 5:8, 5:8] = True
    if detected == "small":
        maps[0, 1, 1] = 1.0
    else:
        maps[0, 5:8, 5:8] = 1.0
    assert pro_curve(maps, masks).n_regions == 2
    assert aupro(maps, masks) == pytest.approx(0.575, abs=1e-12)


def test_ties_between_normal_and_anomalous_pixels_and_limit_between_points():
    # 5-pixel region scored [2, 2, 1, 1, 1]; 10 normal pixels [2, 2, 1, 1, 1, 0, 0, 0, 0, 0].
    # Tied scores move FPR and PRO together: (0,0) (.2,.4)@2 (.5,1)@1 (1,1)@0.
    # The limit .3 falls between (.2,.4) and (.5,1): PRO(.3) = .4 + .6 * .1/.3 = .6.
    # Area = .2*.4/2 + .1*(.4+.6)/2 = .09; /.3 = .3. Whole curve: .04 + .21 + .5 = .75.
    maps = np.array([[[2, 2, 1, 1, 1], [2, 2, 1, 1, 1], [0, 0, 0, 0, 0]]], np.float32)
    masks = np.zeros((1, 3, 5), np.uint8)
    masks[0, 0] = 1
    curve = pro_curve(maps, masks)
    np.testing.assert_allclose(curve.fpr, [0, 0.2, 0.5, 1])
    np.testing.assert_allclose(curve.pro, [0, 0.4, 1, 1])
    assert aupro(maps, masks) == pytest.approx(0.3, abs=1e-12)
    assert aupro(maps, masks, fpr_limit=1.0) == pytest.approx(0.75, abs=1e-12)
    assert curve.area(0.3) == pytest.approx(0.3, abs=1e-12)


def test_normal_only_images_contribute_to_fpr():
    # Image 0: region = one pixel at .9, three normal pixels at .1. Alone: (0,0) (0,1) (1,1) -> 1.
    # Image 1 is normal with one pixel at .95 above the region: now 7 normal pixels and
    # (0,0) (1/7,0)@.95 (1/7,1)@.9 (1,1)@.1 -> area (.3 - 1/7) * 1; /.3 = 11/21.
    maps = np.array([[[0.9, 0.1], [0.1, 0.1]], [[0.95, 0.1], [0.1, 0.1]]])
    masks = np.array([[[1, 0], [0, 0]], [[0, 0], [0, 0]]])
    assert aupro(maps[:1], masks[:1]) == pytest.approx(1.0, abs=1e-12)
    assert aupro(maps, masks) == pytest.approx(11 / 21, abs=1e-12)


def test_regions_touching_at_a_corner_are_one_region():
    # Pixel (0,0) scored 1 touches the pair (1,1)-(1,2), scored 0, only at a corner.
    # 8-connected: one 3-pixel region, PRO 1/3 at threshold 1: (0,0) (0,1/3) (1,1);
    # PRO(.3) = 1/3 + 2/3 * .3; area/.3 = (1/3 + 1/3 + .2) / 2 = 13/30.
    # (4-connectivity would see two regions, PRO .5, and give .575.)
    maps = np.zeros((1, 4, 4))
    maps[0, 0, 0] = 1.0
    masks = np.zeros((1, 4, 4), np.uint8)
    masks[0, 0, 0] = masks[0, 1, 1] = masks[0, 1, 2] = 1
    assert pro_curve(maps, masks).n_regions == 1
    assert aupro(maps, masks) == pytest.approx(13 / 30, abs=1e-12)


def test_regions_never_connect_across_images():
    masks = np.ones((2, 3, 3), np.uint8)
    masks[:, 1, 1] = 0  # one ring per image, stacked exactly on top of each other
    assert pro_curve(np.zeros((2, 3, 3)), masks).n_regions == 2


@pytest.mark.parametrize("limit", [0.05, 0.3, 0.35, 1.0], ids=["0.05", "0.3", "0.35", "1.0"])
def test_analytic_value_pro_equals_fpr(limit):
    # Row 0 is one 10-pixel region, row 1 ten normal pixels, both scored 0..9: every threshold
    # adds one pixel of each, so PRO = FPR = k/10 on every point and AU-PRO = (L^2 / 2) / L = L / 2,
    # whether L is a curve point (.3, 1) or falls between points (.05, .35).
    maps = np.tile(np.arange(10.0), (1, 2, 1))
    masks = np.zeros((1, 2, 10), np.uint8)
    masks[0, 0] = 255
    assert aupro(maps, masks, fpr_limit=limit) == pytest.approx(limit / 2, abs=1e-12)


def test_perfect_and_inverted_detectors():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 16, 16)) < 0.2
    maps = masks + 0.5 * rng.random(masks.shape)  # every anomalous pixel above every normal one
    assert aupro(maps, masks) == pytest.approx(1.0, abs=1e-12)  # PRO sums weights 1/(R |r|): rounding
    assert aupro(-maps, masks) == 0.0


# ---------------------------------------------------------------------------------------------
# Against the references, invariances


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n_images=st.integers(1, 3), height=st.integers(2, 7),
       width=st.integers(2, 7), levels=st.sampled_from([3, 8, 1000]), density=st.sampled_from([0.1, 0.3]),
       limit=st.sampled_from([0.05, 0.3, 0.5, 1.0]))
def test_matches_slow_reference(seed, n_images, height, width, levels, density, limit):
    rng = np.random.default_rng(seed)
    masks = (rng.random((n_images, height, width)) < density).astype(np.uint8)
    if n_images > 1:
        masks[0] = 0  # a normal image
    assume(masks.any() and not masks.all())
    maps = rng.integers(0, levels, masks.shape).astype(np.float64) + masks * rng.integers(0, 2)
    points = reference_curve(maps, masks)
    curve = pro_curve(maps, masks)
    np.testing.assert_allclose(curve.fpr, points[:, 0], atol=1e-12)
    np.testing.assert_allclose(curve.pro, points[:, 1], atol=1e-12)
    np.testing.assert_array_equal(curve.thresholds[1:], np.unique(maps)[::-1])
    expected = reference_area(points, limit)
    assert aupro(maps, masks, fpr_limit=limit) == pytest.approx(expected, abs=1e-12)
    assert curve.area(limit) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("transform", [lambda x: 3 * x + 1, lambda x: np.exp(x / 7), lambda x: x**3 - 50],
                         ids=["affine", "exp", "cube"])
def test_invariant_to_monotone_transforms(transform):
    rng = np.random.default_rng(1)
    masks = np.zeros((4, 12, 12), np.uint8)
    masks[1, 2:6, 3:9] = masks[2, 7:, 7:] = masks[3, 0, :] = 1
    maps = rng.integers(0, 20, masks.shape) + 4 * masks * rng.random(masks.shape)  # ties and overlap
    assert aupro(transform(maps), masks) == pytest.approx(aupro(maps, masks), abs=1e-12)


def test_float32_and_float64_maps_agree_and_curve_is_monotone():
    rng = np.random.default_rng(2)
    masks = rng.random((5, 20, 20)) < 0.1
    maps = (rng.random(masks.shape) + 0.3 * masks).astype(np.float32)
    assert aupro(maps, masks) == pytest.approx(aupro(maps.astype(np.float64), masks), abs=1e-12)
    curve = pro_curve(maps, masks)
    assert curve.thresholds.dtype == np.float32
    assert (np.diff(curve.fpr) >= 0).all() and (np.diff(curve.pro) >= 0).all()
    assert (np.diff(curve.thresholds) < 0).all()
    assert curve.fpr[-1] == 1.0 and curve.pro[-1] == pytest.approx(1.0)
    assert not curve.fpr.flags.writeable


def test_curve_cut_at_max_fpr_keeps_the_crossing_point():
    rng = np.random.default_rng(3)
    masks = rng.random((3, 16, 16)) < 0.15
    maps = rng.random(masks.shape) + 0.2 * masks
    full, cut = pro_curve(maps, masks), pro_curve(maps, masks, max_fpr=0.3)
    end = cut.fpr.size
    assert cut.fpr[-1] >= 0.3 > cut.fpr[-2]
    np.testing.assert_array_equal(cut.fpr, full.fpr[:end])
    np.testing.assert_array_equal(cut.pro, full.pro[:end])
    assert cut.area(0.3) == pytest.approx(full.area(0.3), abs=1e-12)
    with pytest.raises(ValueError, match=r"fpr_limit 0.5 lies beyond this curve, which ends at FPR"):
        cut.area(0.5)


def test_streamed_blocks_match_the_whole_curve(monkeypatch):
    # aupro integrates the curve in blocks; with tiny blocks the result must not change.
    module = importlib.import_module("nsad.metrics.aupro")  # the package's `aupro` is the function
    rng = np.random.default_rng(4)
    masks = rng.random((4, 16, 16)) < 0.1
    maps = rng.integers(0, 50, masks.shape) + masks * rng.random(masks.shape)
    expected = reference_area(reference_curve(maps, masks), 0.3)
    monkeypatch.setattr(module, "_BLOCK", 7)
    assert aupro(maps, masks) == pytest.approx(expected, abs=1e-12)
    assert pro_curve(maps, masks).area(0.3) == pytest.approx(expected, abs=1e-12)


def test_matches_mvtec_style_algorithm_on_real_bottle_masks(bottle_dir: Path):
    from nsad.data.io import read_image

    paths = sorted((bottle_dir / "ground_truth").glob("*/*.png"))
    n_good = len(list((bottle_dir / "test" / "good").glob("*.png")))
    masks = np.stack([read_image(path)[..., 0] for path in paths])
    masks = np.concatenate([masks, np.zeros((n_good, *masks.shape[1:]), masks.dtype)])
    rng = np.random.default_rng(5)
    strength = rng.random(masks.shape[0])[:, None, None]
    maps = rng.random(masks.shape, dtype=np.float32) + 0.4 * (masks > 0) * strength
    maps = np.round(maps, 3)  # many ties
    assert aupro(maps, masks) == pytest.approx(mvtec_style_aupro(maps, masks), abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Undefined and invalid input


@pytest.mark.parametrize("case", ["no-region", "no-normal"])
def test_undefined_returns_nan_with_warning(case):
    masks = np.zeros((2, 4, 4), np.uint8) if case == "no-region" else np.ones((2, 4, 4), np.uint8)
    expected = {"no-region": "0 anomalous regions and 32 normal",
                "no-normal": "2 anomalous regions and 0 normal"}[case]
    with pytest.warns(UndefinedMetricWarning, match=f"AU-PRO is undefined with {expected} pixels"):
        assert np.isnan(aupro(np.zeros((2, 4, 4)), masks))
    with pytest.raises(ValueError, match="the PRO curve needs anomalous and normal pixels"):
        pro_curve(np.zeros((2, 4, 4)), masks)


@pytest.mark.parametrize("limit", [0.0, -0.1, 1.5, float("nan")], ids=["0", "neg", "1.5", "nan"])
def test_rejects_fpr_limit_outside_unit_interval(limit):
    masks = np.eye(3, dtype=np.uint8)[None]
    with pytest.raises(ValueError, match=r"fpr_limit must be in \(0, 1\], got"):
        aupro(np.zeros((1, 3, 3)), masks, fpr_limit=limit)
    with pytest.raises(ValueError, match=r"max_fpr must be in \(0, 1\], got"):
        pro_curve(np.zeros((1, 3, 3)), masks, max_fpr=limit)


def test_rejects_maps_that_are_not_n_h_w():
    with pytest.raises(ValueError, match=r"anomaly_maps must have shape \(N, H, W\), got \(2, 1, 3, 3\); "
                                         r"drop the channel axis"):
        aupro(np.zeros((2, 1, 3, 3)), np.zeros((2, 1, 3, 3)))
    with pytest.raises(ValueError, match=r"got \(3, 3\); for a single image use maps\[None\]"):
        aupro(np.zeros((3, 3)), np.zeros((3, 3)))


def test_no_warning_on_valid_input():
    masks = np.eye(4, dtype=np.uint8)[None]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert aupro(np.eye(4)[None], masks) == 1.0
