import doctest

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

import nsad.synth.cutpaste as cutpaste_module
from nsad.synth import Box, SynthDataset, get_task
from nsad.synth.cutpaste import (
    CutPaste,
    CutPasteDraw,
    CutPasteScar,
    Jitter,
    ScarDraw,
    cutpaste_size,
    jitter_patch,
    paste_patch,
    paste_scar,
    rotate_patch,
    rotated_size,
    sample_area_aspect,
    sample_cutpaste,
    sample_jitter,
    sample_scar,
    sample_scar_size,
)

NO_JITTER = Jitter()


def noise_image(height, width, channels, dtype, seed):
    top = np.iinfo(dtype).max
    return np.random.default_rng(seed).integers(0, top, (height, width, channels), dtype=dtype, endpoint=True)


# ----------------------------------------------------------------------------------------------
# properties


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), height=st.integers(48, 300), width=st.integers(48, 300),
       channels=st.sampled_from([1, 3]), dtype=st.sampled_from([np.uint8, np.uint16]),
       scar=st.booleans())
def test_cutpaste_properties(seed, height, width, channels, dtype, scar):
    image = noise_image(height, width, channels, dtype, seed)
    before = image.copy()
    task = CutPasteScar() if scar else CutPaste()
    out = task(image, image, rng=np.random.default_rng(seed))
    again = task(image, image, rng=np.random.default_rng(seed))
    np.testing.assert_array_equal(out.image, again.image)                  # same seed, same example
    np.testing.assert_array_equal(out.label, again.label)
    assert out.patches == again.patches
    np.testing.assert_array_equal(image, before)                           # the input is not modified
    assert out.image.shape == image.shape and out.image.dtype == image.dtype
    assert out.label.shape == (height, width) and out.label.dtype == np.float32
    (record,) = out.patches
    src, dst = record.src_box, record.dst_box
    assert record.mode == "paste" and record.scale == 1.0
    for box in (src, dst):
        assert 0 <= box.x0 < box.x1 <= width and 0 <= box.y0 < box.y1 <= height
    inside = np.zeros((height, width), bool)
    inside[dst.slices()] = True
    assert set(np.unique(out.label)) <= {0.0, 1.0}
    assert not out.label[~inside].any()                                   # label 0 outside the box
    changed = (out.image != image).any(axis=2)
    assert not (changed & (out.label == 0)).any()                         # only labelled pixels change
    if scar:
        assert (dst.height, dst.width) == rotated_size(src.height, src.width, record.params["angle_deg"])
        assert -45.0 <= record.params["angle_deg"] <= 45.0
        assert out.label.sum() > 0
    else:
        assert (src.width, src.height) == (dst.width, dst.height)
        assert out.label[inside].all()
        assert 0.02 <= record.params["area_frac"] <= 0.15
        assert 0.3 <= record.params["aspect"] <= 3.3
    if channels == 1:
        assert record.params["saturation"] == 1.0 and record.params["hue"] == 0.0


# ----------------------------------------------------------------------------------------------
# sampler statistics


def test_area_fraction_is_uniform_and_aspect_picks_each_range_half_the_time():
    rng = np.random.default_rng(0)
    draws = np.array([sample_area_aspect(rng) for _ in range(4000)])
    area, aspect = draws[:, 0], draws[:, 1]
    assert stats.kstest(area, stats.uniform(0.02, 0.13).cdf).pvalue > 1e-3
    low = aspect < 1.0
    assert stats.binomtest(int(low.sum()), len(aspect), 0.5).pvalue > 1e-3
    assert stats.kstest(aspect[low], stats.uniform(0.3, 0.7).cdf).pvalue > 1e-3
    assert stats.kstest(aspect[~low], stats.uniform(1.0, 2.3).cdf).pvalue > 1e-3


def test_realised_patches_cover_their_area_fraction_and_positions_are_uniform():
    rng = np.random.default_rng(1)
    draws = [sample_cutpaste(rng, 256, 256, 3) for _ in range(2000)]
    for draw in draws:
        box = draw.src_box
        assert (box.height, box.width) == cutpaste_size(draw.area_frac, draw.aspect, 256, 256)
        # flooring each side loses at most sqrt(A)(sqrt(r) + 1/sqrt(r)) pixels of the area A
        assert 0.0187 <= box.height * box.width / 256**2 <= 0.15
        assert 0.3 * 0.9 <= box.width / box.height <= 3.3 / 0.9
    # the free corner position x0 / (W - w) is uniform on [0, 1] for source and destination
    for attr in ("src_box", "dst_box"):
        u = np.array([getattr(d, attr).x0 / (256 - getattr(d, attr).width) for d in draws])
        assert stats.kstest(u, "uniform").pvalue > 1e-3


@pytest.mark.parametrize("area_frac, aspect, expected", [
    (0.1, 1.0, (80, 80)),        # floor(sqrt(0.1 * 256 * 256)) = floor(80.95)
    (0.02, 3.3, (19, 65)),       # w = floor(sqrt(1310.72 * 3.3)) = 65, h = floor(sqrt(1310.72 / 3.3)) = 19
    (0.15, 0.3, (181, 54)),      # h = floor(sqrt(9830.4 / 0.3)) = 181, w = floor(sqrt(9830.4 * 0.3)) = 54
], ids=["square", "wide", "tall"])
def test_cutpaste_size_reference_values(area_frac, aspect, expected):
    assert cutpaste_size(area_frac, aspect, 256, 256) == expected


def test_cutpaste_size_is_clipped_to_elongated_images():
    # A = 0.15 * 256 * 40 = 1536: w = floor(sqrt(1536 * 3.3)) = 71 > 40, h = floor(sqrt(1536 / 3.3)) = 21
    assert cutpaste_size(0.15, 3.3, 256, 40) == (21, 40)


def test_scar_angle_is_uniform_and_sizes_are_the_authors_integers_at_256_px():
    rng = np.random.default_rng(2)
    draws = [sample_scar(rng, 256, 256, 3) for _ in range(3000)]
    angles = np.array([d.angle_deg for d in draws])
    assert stats.kstest(angles, stats.uniform(-45.0, 90.0).cdf).pvalue > 1e-3
    widths = np.array([d.src_box.width for d in draws])
    lengths = np.array([d.src_box.height for d in draws])
    assert set(widths) == set(range(2, 17)) and set(lengths) == set(range(10, 26))
    assert stats.chisquare(np.bincount(widths)[2:]).pvalue > 1e-3
    assert stats.chisquare(np.bincount(lengths)[10:]).pvalue > 1e-3


@pytest.mark.parametrize("height, width, widths, lengths", [
    (512, 512, (4, 32), (20, 50)),
    (512, 1024, (4, 32), (20, 50)),    # the shorter side sets the scale
    (128, 300, (1, 8), (5, 12)),       # 2 * 0.5 = 1, 25 * 0.5 = 12.5 -> 12 (round half to even)
], ids=["512", "512x1024", "128x300"])
def test_scar_size_scales_with_the_shorter_side(height, width, widths, lengths):
    rng = np.random.default_rng(3)
    sizes = np.array([sample_scar_size(rng, height, width) for _ in range(2000)])
    assert (sizes[:, 1].min(), sizes[:, 1].max()) == widths
    assert (sizes[:, 0].min(), sizes[:, 0].max()) == lengths


def test_grayscale_jitter_draws_no_saturation_or_hue():
    rng, reference = np.random.default_rng(4), np.random.default_rng(4)
    jitter = sample_jitter(rng, channels=1)
    b, c = reference.uniform(0.9, 1.1), reference.uniform(0.9, 1.1)
    assert jitter == Jitter(b, c, 1.0, 0.0)
    assert rng.random() == reference.random()                           # exactly two values drawn


def test_zero_jitter_ranges_draw_neutral_factors():
    assert sample_jitter(np.random.default_rng(5), 3, 0.0, 0.0, 0.0, 0.0) == NO_JITTER
    image = noise_image(64, 64, 3, np.uint8, 0)
    out = CutPaste(brightness=0, contrast=0, saturation=0, hue=0)(image, image, rng=np.random.default_rng(5))
    src, dst = out.patches[0].src_box, out.patches[0].dst_box
    np.testing.assert_array_equal(out.image[dst.slices()], image[src.slices()])


# ----------------------------------------------------------------------------------------------
# reference values


def test_paste_constant_patch_into_constant_image():
    image = np.full((40, 50, 3), 10, np.uint8)
    image[5:15, 20:32] = 200                                              # the patch to cut
    draw = CutPasteDraw(Box(20, 5, 32, 15), Box(2, 25, 14, 35), 0.06, 1.2, NO_JITTER)
    out = paste_patch(image, draw)
    expected = image.copy()
    expected[25:35, 2:14] = 200
    np.testing.assert_array_equal(out.image, expected)
    label = np.zeros((40, 50), np.float32)
    label[25:35, 2:14] = 1.0
    np.testing.assert_array_equal(out.label, label)
    assert out.patches[0].as_dict()["dst_box"] == [2, 25, 14, 35]


def test_paste_overlapping_boxes_copies_the_original_patch():
    image = np.arange(8 * 8, dtype=np.uint16).reshape(8, 8, 1)
    out = paste_patch(image, CutPasteDraw(Box(0, 0, 4, 4), Box(2, 2, 6, 6), 0.25, 1.0, NO_JITTER))
    np.testing.assert_array_equal(out.image[2:6, 2:6], image[0:4, 0:4])


@pytest.mark.parametrize("pixel, jitter, expected", [
    ((100, 100, 100), Jitter(brightness=1.1), (110, 110, 110)),
    ((100, 100, 100), Jitter(contrast=0.5), (100, 100, 100)),          # a flat patch is its own mean
    ((255, 0, 0), Jitter(saturation=0.0), (76, 76, 76)),               # gray = 0.299 * 255 = 76.2
    ((255, 0, 0), Jitter(hue=1 / 3), (0, 255, 0)),                     # red + 120 degrees = green
    ((255, 0, 0), Jitter(hue=0.5), (0, 255, 255)),                     # red + 180 degrees = cyan
    ((250, 20, 20), Jitter(brightness=1.1), (255, 22, 22)),            # clipped at 255
], ids=["brightness", "contrast-flat", "saturation-0", "hue-third", "hue-half", "clip"])
def test_jitter_reference_values(pixel, jitter, expected):
    patch = np.empty((3, 4, 3), np.uint8)
    patch[:] = pixel
    out = jitter_patch(patch, jitter)
    np.testing.assert_array_equal(out, np.broadcast_to(np.array(expected, np.uint8), (3, 4, 3)))


def test_jitter_contrast_and_16_bit_reference_values():
    gray = np.array([[50, 150]], np.uint8)[..., None]
    np.testing.assert_array_equal(jitter_patch(gray, Jitter(contrast=0.5))[..., 0], [[75, 125]])  # mean 100
    deep = np.full((2, 2, 1), 1000, np.uint16)
    np.testing.assert_array_equal(jitter_patch(deep, Jitter(brightness=1.1)), 1100)


def test_jitter_matches_torchvision():
    torch = pytest.importorskip("torch")
    functional = pytest.importorskip("torchvision.transforms.functional")
    patch = noise_image(9, 11, 3, np.uint8, 6)
    jitter = Jitter(1.08, 0.93, 1.07, 0.06)
    tensor = torch.from_numpy(patch).permute(2, 0, 1).float() / 255
    tensor = functional.adjust_brightness(tensor, jitter.brightness)
    tensor = functional.adjust_contrast(tensor, jitter.contrast)
    tensor = functional.adjust_saturation(tensor, jitter.saturation)
    tensor = functional.adjust_hue(tensor, jitter.hue)
    reference = np.rint(tensor.permute(1, 2, 0).numpy() * 255).astype(int)
    assert np.abs(jitter_patch(patch, jitter).astype(int) - reference).max() <= 1


def test_rotate_patch_reference_values():
    patch = np.arange(4 * 7 * 3, dtype=np.uint8).reshape(4, 7, 3)
    same, mask = rotate_patch(patch, 0.0)
    np.testing.assert_array_equal(same, patch)
    assert mask.all()
    quarter, mask = rotate_patch(patch, 90.0)                         # counter-clockwise, as np.rot90
    np.testing.assert_array_equal(quarter, np.rot90(patch))
    assert mask.shape == (7, 4) and mask.all()
    gray, _ = rotate_patch(patch[..., :1], -90.0)
    np.testing.assert_array_equal(gray, np.rot90(patch[..., :1], -1))


@pytest.mark.parametrize("h, w, angle, expected", [
    (25, 16, 0.0, (25, 16)), (25, 16, 90.0, (16, 25)),
    (10, 2, 45.0, (9, 9)),     # (10 + 2) / sqrt(2) = 8.49 -> 9
    (25, 16, -30.0, (30, 27)),  # 25 cos 30 + 16 sin 30 = 29.65; 25 sin 30 + 16 cos 30 = 26.36
], ids=["0", "90", "45", "-30"])
def test_rotated_size_reference_values(h, w, angle, expected):
    assert rotated_size(h, w, angle) == expected


@pytest.mark.parametrize("angle", [-45.0, -30.0, 10.0, 45.0])
def test_rotated_scar_mask_keeps_the_area(angle):
    _, mask = rotate_patch(np.zeros((25, 16, 3), np.uint8), angle)
    assert abs(int(mask.sum()) - 25 * 16) <= (25 + 16)     # the rectangle's area, within half a perimeter


def test_paste_constant_scar_into_constant_image():
    image = np.full((64, 64, 3), 10, np.uint8)
    image[0:25, 0:16] = 200
    canvas_h, canvas_w = rotated_size(25, 16, 30.0)
    dst = Box(30, 20, 30 + canvas_w, 20 + canvas_h)
    out = paste_scar(image, ScarDraw(Box(0, 0, 16, 25), dst, 30.0, NO_JITTER))
    _, mask = rotate_patch(image[0:25, 0:16], 30.0)
    expected, label = image.copy(), np.zeros((64, 64), np.float32)
    expected[dst.slices()][mask] = 200                       # replicated borders: no dark fringe
    label[dst.slices()][mask] = 1.0
    np.testing.assert_array_equal(out.image, expected)
    np.testing.assert_array_equal(out.label, label)
    assert out.patches[0].params["angle_deg"] == 30.0


def test_docstring_examples():
    assert doctest.testmod(cutpaste_module, raise_on_error=False).failed == 0


# ----------------------------------------------------------------------------------------------
# tasks, dataset and real images


def test_tasks_are_registered_and_ignore_the_source():
    image = noise_image(64, 64, 3, np.uint8, 7)
    other = noise_image(64, 64, 3, np.uint8, 8)
    for name, kind in (("cutpaste", CutPaste), ("cutpaste-scar", CutPasteScar)):
        task = get_task(name, "mvtec/bottle")
        assert isinstance(task, kind) and task.label_kind == "bounded"
        a = task(image, image, rng=np.random.default_rng(0))
        b = task(image, other, rng=np.random.default_rng(0), image_object=np.ones((64, 64), bool))
        np.testing.assert_array_equal(a.image, b.image)


def test_yaml_lists_are_accepted_as_ranges():
    task = CutPaste(area=[0.05, 0.1], aspect=[[0.5, 2.0]])
    assert task.area == (0.05, 0.1) and task.aspect == ((0.5, 2.0),)
    assert CutPasteScar(width_px=[3, 5], angle_deg=[-10, 10]).width_px == (3, 5)


def test_bottle_smoke(bottle_images):
    dataset = SynthDataset(bottle_images[:4], CutPaste(), seed=0, length=8)
    for index in range(8):
        out = dataset[index]
        assert out.image.dtype == np.uint8 and out.image.shape == (256, 256, 3)
        assert 0.0187 <= out.label.mean() <= 0.15
    scar = SynthDataset(bottle_images[:4], CutPasteScar(), seed=0, length=8)
    for index in range(8):
        out = scar[index]
        assert 0 < out.label.sum() <= 16 * 25 + 41


# ----------------------------------------------------------------------------------------------
# errors


def test_rejects_images_with_a_side_under_32_px():
    image = noise_image(31, 100, 3, np.uint8, 0)
    with pytest.raises(ValueError, match=r"a 100x31 image is too small for CutPaste: .* at least 32 px"):
        CutPaste()(image, image, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"a 100x31 image is too small for CutPaste-Scar"):
        CutPasteScar()(image, image, rng=np.random.default_rng(0))


def test_rejects_mismatched_or_wrong_images():
    image = noise_image(64, 64, 3, np.uint8, 0)
    with pytest.raises(ValueError, match=r"source \(64, 64, 1\) uint8 must match image \(64, 64, 3\) uint8"):
        CutPaste()(image, image[..., :1], rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="image must have dtype uint8 or uint16, got float32"):
        CutPasteScar()(image.astype(np.float32), image, rng=np.random.default_rng(0))


@pytest.mark.parametrize("options, message", [
    ({"area": (0.2, 0.1)}, r"area must be a \(low, high\) pair with low <= high, got \(0.2, 0.1\)"),
    ({"area": (0.0, 0.1)}, r"area must be in \[1e-06, 1.0\], got 0.0"),
    ({"area": 0.1}, r"area must be a \(low, high\) pair, got 0.1"),
    ({"aspect": []}, r"aspect must be a non-empty list of \(low, high\) ranges, got \[\]"),
    ({"aspect": [(0.3, 1.0, 2.0)]}, r"aspect must be a \(low, high\) pair, got \(0.3, 1.0, 2.0\)"),
    ({"hue": 0.6}, r"hue must be in \[0.0, 0.5\], got 0.6"),
    ({"brightness": -0.1}, r"brightness must be in \[0.0, 1.0\], got -0.1"),
], ids=["area-order", "area-zero", "area-scalar", "aspect-empty", "aspect-triple", "hue", "brightness"])
def test_cutpaste_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        CutPaste(**options)


@pytest.mark.parametrize("options, message", [
    ({"width_px": (2.5, 16)}, r"width_px must be whole pixels, got \(2.5, 16\)"),
    ({"length_px": (0, 25)}, r"length_px must be in \[1, 256\], got 0.0"),
    ({"angle_deg": (45, -45)}, r"angle_deg must be a \(low, high\) pair with low <= high"),
    ({"saturation": 2.0}, r"saturation must be in \[0.0, 1.0\], got 2.0"),
], ids=["width-fraction", "length-zero", "angle-order", "saturation"])
def test_scar_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        CutPasteScar(**options)


def test_scar_that_cannot_fit_is_rejected():
    with pytest.raises(ValueError, match=r"a \d+x\d+ px scar .*does not fit the 300x40 image"):
        sample_scar(np.random.default_rng(0), 40, 300, 3, width_px=(200, 200), length_px=(250, 250))


def test_paste_functions_reject_bad_boxes():
    image = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(ValueError, match=r"src_box Box\(x0=15, y0=0, x1=25, y1=5\) must be a non-empty box"):
        paste_patch(image, CutPasteDraw(Box(15, 0, 25, 5), Box(0, 0, 10, 5), 0.1, 1.0, NO_JITTER))
    with pytest.raises(ValueError, match="must have the same size"):
        paste_patch(image, CutPasteDraw(Box(0, 0, 10, 5), Box(0, 0, 5, 10), 0.1, 1.0, NO_JITTER))
    with pytest.raises(ValueError, match=r"dst_box Box\(x0=0, y0=0, x1=5, y1=5\) must be the 3x5 canvas"):
        paste_scar(image, ScarDraw(Box(0, 0, 3, 5), Box(0, 0, 5, 5), 0.0, NO_JITTER))
    with pytest.raises(ValueError, match=r"dst_box .* must be a non-empty box inside the 20x20 image"):
        paste_scar(image, ScarDraw(Box(0, 0, 3, 5), Box(18, 0, 21, 5), 0.0, NO_JITTER))
