"""Heatmaps on a fixed per-run scale: the scale from held-out normal maps, regions, outlines, colour bar."""

import cv2
import numpy as np
import pytest

from nsad.postprocess import calibrate_threshold, segment_defects
from nsad.viz import (
    REGION_COLOUR,
    TRUTH_COLOUR,
    HeatmapScale,
    colorize,
    colour_bar,
    draw_outlines,
    fallback_scale,
    fit_scale,
    heatmap_figure,
    heatmap_overlay,
    run_scale,
)
from nsad.viz.scale import REGION_AREA_FRACTION, THRESHOLD_POSITION


def normal_maps(seed=0, count=6, side=48):
    rng = np.random.default_rng(seed)
    maps = rng.gamma(2.0, 0.02, size=(count, side, side)).astype(np.float32)
    return cv2.GaussianBlur(maps.transpose(1, 2, 0), (5, 5), 1.5).transpose(2, 0, 1).copy()


def test_mean_rule_scale_is_bauers_threshold_on_the_held_out_maps():
    maps = normal_maps()
    scale = fit_scale(maps, "mean", image_threshold=0.05, frame_side=64)
    min_area = round(REGION_AREA_FRACTION * 64 * 64)
    assert scale.region_min_area == min_area == 1
    assert scale.region_threshold == calibrate_threshold(maps, min_area).threshold
    assert scale.low == pytest.approx(float(np.median(maps)))
    assert scale.position(scale.region_threshold) == pytest.approx(THRESHOLD_POSITION)
    # no held-out map has a region at the threshold; just below it one does (the threshold is tight)
    assert not segment_defects(maps, scale.region_rule((64, 64))).any()
    below = np.nextafter(np.float32(scale.region_threshold), np.float32(0))
    assert (maps > below).any()


def test_larger_frame_needs_larger_regions():
    maps = normal_maps(side=200)
    scale = fit_scale(maps, "topk:0.01", None, frame_side=256)
    assert scale.region_min_area == 16
    assert scale.region_threshold == calibrate_threshold(maps, 16).threshold
    assert scale.region_rule((512, 512)).min_area == 64  # four times the pixels at twice the side


@pytest.mark.parametrize(("rule", "area"), [("max", 1), ("area:9", 9)])
def test_max_and_area_rules_outline_exactly_what_the_decision_uses(rule, area):
    scale = fit_scale(normal_maps(), rule, image_threshold=0.123, frame_side=48)
    assert (scale.region_threshold, scale.region_min_area) == (0.123, area)


def test_scale_round_trips_and_rejects_bad_records():
    scale = fit_scale(normal_maps(), "mean", 0.05, 64)
    assert HeatmapScale.from_dict(scale.to_dict()) == scale
    with pytest.raises(ValueError, match="heatmap_scale must be an object with keys"):
        HeatmapScale.from_dict({"low": 0.0})
    with pytest.raises(ValueError, match="high > low"):
        HeatmapScale(0.5, 0.5, None, 1, 64, "x")
    with pytest.raises(ValueError, match="finite"):
        fit_scale(np.full((1, 4, 4), np.nan, np.float32), "mean", None, 4)


def test_fallback_for_runs_without_a_recorded_scale():
    maps = np.array([[[0.0, 3.0]]], np.float32)
    bounded = run_scale(None, "bounded", maps, 64)
    assert (bounded.low, bounded.high, bounded.region_threshold) == (0.0, 1.0, 0.5) and bounded.is_fallback
    continuous = fallback_scale("continuous", maps, 64)
    assert (continuous.low, continuous.high, continuous.region_threshold) == (0.0, 3.0, None)
    recorded = fit_scale(normal_maps(), "mean", 0.05, 64)
    assert run_scale(recorded.to_dict(), "bounded", maps, 64) == recorded and not recorded.is_fallback


def test_a_value_has_the_same_colour_whatever_else_is_drawn():
    scale = HeatmapScale(0.1, 0.4, 0.3, 1, 32, "test")
    faint = np.full((32, 32), 0.2, np.float32)
    with_defect = faint.copy()
    with_defect[5:10, 5:10] = 0.9
    image = np.full((32, 32, 3), 128, np.uint8)
    a, b = heatmap_overlay(image, faint, scale), heatmap_overlay(image, with_defect, scale)
    assert np.array_equal(a[20:, 20:], b[20:, 20:])
    expected = colorize(np.array([[0.2]], np.float32), 0.1, 0.4)[0, 0]
    weight = 0.25 + 0.5 * (0.2 - 0.1) / 0.3
    assert np.abs(a[25, 25].astype(float) - (128 * (1 - weight) + expected * weight)).max() <= 1


def test_regions_and_ground_truth_are_outlined_in_their_colours():
    scale = HeatmapScale(0.0, 1.0, 0.5, 4, 64, "test")
    anomaly_map = np.zeros((64, 64), np.float32)
    anomaly_map[10:30, 10:30] = 0.8
    anomaly_map[50, 50] = 0.9  # one pixel: below the minimum area, not a region
    truth = np.zeros((64, 64), bool)
    truth[40:60, 5:20] = True
    drawn = heatmap_overlay(np.zeros((64, 64, 3), np.uint8), anomaly_map, scale, truth)
    white = np.all(drawn == REGION_COLOUR, axis=2)
    magenta = np.all(drawn == TRUTH_COLOUR, axis=2)
    assert white[10, 10:30].all() and not white[20, 20] and not white[50, 50]
    assert magenta[40, 5:20].all() and not magenta[50, 12]


def test_figure_keeps_the_original_resolution_and_marks_the_threshold_on_the_bar():
    scale = HeatmapScale(0.0, 0.3, 0.2, 1, 64, "test")
    image = np.zeros((300, 120), np.uint8)  # grayscale, not square
    figure = heatmap_figure(image, np.zeros((64, 64), np.float32), scale)
    bar = colour_bar(300, scale)
    assert figure.shape == (300, 240 + bar.shape[1], 3)
    assert np.array_equal(figure[:, 240:], bar)
    # the black threshold line crosses the gradient at 2/3 of its height from the bottom
    margin = max(6, int(round(max(0.35, 300 / 700) * 14)))
    rows = np.flatnonzero(np.all(bar[:, margin + 2] == 0, axis=1))
    expected = round(300 - margin - scale.position(0.2) * (300 - 2 * margin - 1))
    assert rows.size and abs(rows.mean() - expected) <= 2


def test_outlines_follow_a_mask_at_another_resolution():
    mask = np.zeros((16, 16), bool)
    mask[4:12, 4:12] = True
    drawn = draw_outlines(np.zeros((64, 64, 3), np.uint8), mask, TRUTH_COLOUR, thickness=1)
    assert np.all(drawn[16, 16:48] == TRUTH_COLOUR) and not drawn[32, 32].any()


def test_drawing_does_not_import_torch_or_matplotlib():
    import subprocess
    import sys

    code = ("import sys, nsad.viz, nsad.viz.html; "
            "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_tiny_image_is_enlarged_by_a_whole_factor_so_its_colour_bar_fits():
    from nsad.viz.heatmap import MIN_FIGURE_PX, heatmap_figure
    from nsad.viz.scale import HeatmapScale

    image = np.arange(64, dtype=np.uint8).reshape(8, 8)
    truth = np.zeros((8, 8), bool)
    truth[2:4, 2:4] = True
    figure = heatmap_figure(image, np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8),
                            HeatmapScale(low=0.0, high=1.0, region_threshold=0.5, region_min_area=1,
                                         frame_side=8, basis="test"), truth)
    assert figure.shape[0] == 8 * 12 == MIN_FIGURE_PX  # 12 = ceil(96 / 8)
    np.testing.assert_array_equal(figure[:12, :12], np.zeros((12, 12, 3), np.uint8))  # pixel (0, 0) = 0, 12x12
