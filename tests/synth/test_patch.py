import numpy as np
import pytest
from scipy import stats

from nsad.synth import get_preset, get_task
from nsad.synth._patch import (
    check_image_fits,
    sample_destination_box,
    sample_patch_fraction,
    sample_scale,
    sample_source_box,
)

BOTTLE = get_preset("mvtec/bottle")


def test_patch_fraction_follows_offset_gamma_eq5():
    # Untruncated bounds: f = 0.06 + Gamma(shape 2, scale 0.1) exactly (eq. 5).
    rng = np.random.default_rng(0)
    draws = [sample_patch_fraction(rng, (0.0, 100.0)) for _ in range(3000)]
    result = stats.kstest(draws, stats.gamma(a=2, loc=0.06, scale=0.1).cdf)
    assert result.pvalue > 0.01


def test_patch_fraction_truncation_puts_the_tails_on_the_bounds():
    rng = np.random.default_rng(1)
    low, high = 0.15, 0.35
    draws = np.array([sample_patch_fraction(rng, (low, high)) for _ in range(4000)])
    assert draws.min() == low and draws.max() == high
    gamma = stats.gamma(a=2, loc=0.06, scale=0.1)
    for value, probability in ((low, gamma.cdf(low)), (high, gamma.sf(high))):
        count = int(np.sum(draws == value))
        assert stats.binomtest(count, len(draws), probability).pvalue > 0.01
    inside = draws[(draws > low) & (draws < high)]
    conditional = lambda x: (gamma.cdf(x) - gamma.cdf(low)) / (gamma.cdf(high) - gamma.cdf(low))  # noqa: E731
    assert stats.kstest(inside, conditional).pvalue > 0.01


def test_cxr_preset_uses_its_own_size_constants():
    preset = get_preset("cxr")
    assert (preset.size_offset, preset.size_gamma_scale) == (0.10, 0.06)
    rng = np.random.default_rng(2)
    draws = [sample_patch_fraction(rng, (0.0, 100.0), preset.size_offset, preset.size_gamma_scale)
             for _ in range(2000)]
    assert stats.kstest(draws, stats.gamma(a=2, loc=0.10, scale=0.06).cdf).pvalue > 0.01


def test_scale_eq9_is_a_clipped_normal_within_the_size_bounds():
    rng = np.random.default_rng(3)
    scales = np.array([sample_scale(rng, BOTTLE, 0.3, 0.3) for _ in range(4000)])
    s_min, s_max = BOTTLE.scale_bounds
    assert scales.min() == s_min and scales.max() == s_max
    normal = stats.norm(1.0, 0.5)
    assert stats.binomtest(int(np.sum(scales == s_min)), len(scales), normal.cdf(s_min)).pvalue > 0.01
    inside = scales[(scales > s_min) & (scales < s_max)]
    conditional = lambda x: (normal.cdf(x) - normal.cdf(s_min)) / (normal.cdf(s_max) - normal.cdf(s_min))  # noqa: E731
    assert stats.kstest(inside, conditional).pvalue > 0.01


@pytest.mark.parametrize("h_frac, w_frac", [(0.06, 0.06), (0.79, 0.1), (0.1, 0.79), (0.5, 0.5)])
def test_scale_keeps_the_resized_patch_within_the_size_bounds(h_frac, w_frac):
    rng = np.random.default_rng(4)
    for _ in range(500):
        s = sample_scale(rng, BOTTLE, h_frac, w_frac)
        assert BOTTLE.h_bounds[0] - 1e-9 <= s * h_frac <= BOTTLE.h_bounds[1] + 1e-9
        assert BOTTLE.w_bounds[0] - 1e-9 <= s * w_frac <= BOTTLE.w_bounds[1] + 1e-9


def test_source_centres_are_uniform_eq7_and_boxes_clipped():
    rng = np.random.default_rng(5)
    boxes = [sample_source_box(rng, BOTTLE, 20, 20, 200, 300) for _ in range(3000)]
    assert all(0 <= b.x0 < b.x1 <= 300 and 0 <= b.y0 < b.y1 <= 200 for b in boxes)
    interior = [b for b in boxes if b.width == 20]  # unclipped boxes: centre = x0 + 10
    low, high = 300 * 0.06 / 2, 300 - 300 * 0.06 / 2
    centres = np.array([b.x0 + 10 for b in interior], float)
    # Rounding makes centres integers; compare with the uniform law on the unclipped range.
    assert stats.kstest(centres, stats.uniform(low, high - low).cdf).statistic < 0.05


def test_destination_boxes_lie_inside_the_image_eq10():
    rng = np.random.default_rng(6)
    for _ in range(1000):
        b = sample_destination_box(rng, 30, 50, 64, 80)
        assert 0 <= b.x0 and b.x1 <= 80 and 0 <= b.y0 and b.y1 <= 64 and (b.height, b.width) == (30, 50)


def test_number_of_patches_follows_the_coin_flips():
    # n_max = 3: one patch always, then two fair coins -> 1 + Binomial(2, 1/2).
    task = get_task("cutpaste-nsa", "default")
    image = np.random.default_rng(7).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    counts = np.bincount([len(task(image, image, rng=np.random.default_rng(i)).patches) for i in range(800)],
                         minlength=4)
    assert counts[0] == 0
    expected = 800 * np.array([0.25, 0.5, 0.25])
    assert stats.chisquare(counts[1:4], expected).pvalue > 0.01


def test_screw_preset_allows_four_patches():
    task = get_task("cutpaste-nsa", get_preset("mvtec/screw").replace(background=None, t_brightness=None))
    image = np.random.default_rng(8).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    counts = [len(task(image, image, rng=np.random.default_rng(i)).patches) for i in range(200)]
    assert max(counts) == 4 and min(counts) == 1


def test_too_small_image_is_rejected_with_sizes():
    with pytest.raises(ValueError, match=r"a 50x50 image is too small for preset 'mvtec/bottle'.*at least 67x67"):
        check_image_fits(BOTTLE, 50, 50)
    check_image_fits(BOTTLE, 67, 67)
