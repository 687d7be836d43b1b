"""The paper's transforms: sizes, seeded randomness, geometry shared by images and masks, normalisation."""

from __future__ import annotations

import doctest
import itertools
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

import nsad.data.transforms as transforms_module
from nsad.data.folder import find_dataset, read_mask
from nsad.data.io import read_image
from nsad.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FrameConfig,
    Geometry,
    TransformConfig,
    apply_geometry,
    apply_test_transform,
    apply_train_transform,
    denormalize,
    frame_map,
    jitter_intensity,
    place_in_frame,
    resize_map,
    restore_map,
    sample_train_geometry,
    split_tiles,
    stitch_tiles,
    tile_boxes,
    to_grayscale,
    to_tensor_normalized,
)
from nsad.data.transforms import test_geometry as centre_geometry
from nsad.synth.presets import get_preset

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BOTTLE_256 = SHARED_DATA / "mvtec_ad_256" / "bottle"
BOTTLE_FULLRES = SHARED_DATA / "mvtec_ad_fullres_xs" / "bottle"

OBJECT = TransformConfig(rotation_deg=5.0)
TEXTURE = TransformConfig(kind="texture")


def _needs(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"real MVTec AD data not found at {folder}")
    return folder


def _smooth_image(size: int = 256, channels: int = 3, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).random((size // 8, size // 8, channels)).astype(np.float32)
    image = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC).reshape(size, size, channels)
    return (np.clip(image, 0, 1) * np.iinfo(dtype).max).astype(dtype)


def test_docstring_examples():
    assert doctest.testmod(transforms_module, optionflags=doctest.ELLIPSIS).failed == 0


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize("size, expected", [(256, (256, 230, 224, 264)), (128, (128, 115, 112, 132)),
                                            (512, (512, 460, 448, 528))], ids=["paper", "demo", "double"])
def test_for_size_keeps_the_paper_proportions(size, expected):
    config = TransformConfig.for_size("object", size)
    assert (config.resize, config.pre_crop, config.crop, config.texture_resize) == expected


@pytest.mark.parametrize("preset, kind, rotation, grayscale, input_size", [
    ("mvtec/bottle", "object", 5.0, False, 224), ("mvtec/cable", "object", 0.0, False, 224),
    ("mvtec/carpet", "texture", 0.0, False, 256), ("cxr", "xray", 3.0, True, 224)],
    ids=["bottle", "cable", "carpet", "cxr"])
def test_from_preset(preset, kind, rotation, grayscale, input_size):
    config = TransformConfig.from_preset(get_preset(preset))
    assert (config.kind, config.rotation_deg, config.grayscale, config.input_size) == (
        kind, rotation, grayscale, input_size)


@pytest.mark.parametrize("options, message", [
    ({"kind": "objekt"}, "unknown transform kind 'objekt'.*Did you mean 'object'"),
    ({"crop": 240}, "need crop <= pre_crop <= resize, got crop=240, pre_crop=230, resize=256"),
    ({"pre_crop": 300}, "need crop <= pre_crop <= resize"),
    ({"texture_resize": 200}, "texture_resize must be at least resize=256, got 200"),
    ({"resize": 0}, "resize must be a positive int, got 0"),
    ({"crop": 22.5}, "crop must be a positive int, got 22.5"),
    ({"rotation_deg": -1.0}, r"rotation_deg must be in \[0.0, 180.0\], got -1.0"),
], ids=["kind", "crop", "pre_crop", "texture", "zero", "float", "rotation"])
def test_config_rejections(options, message):
    with pytest.raises(ValueError, match=message):
        TransformConfig(**options)


@pytest.mark.parametrize("size", [4, 64.0, True], ids=["small", "float", "bool"])
def test_for_size_rejects_bad_sizes(size):
    with pytest.raises(ValueError, match="image_size must be an int of at least 8"):
        TransformConfig.for_size("object", size)


@pytest.mark.parametrize("options, message", [
    ({"crop": 300}, "need 1 <= crop <= resize per side, got crop=300, resize=256"),
    ({"top": 40}, r"top must be in \[0, 32\], got 40"),
    ({"left": -1}, r"left must be in \[0, 32\], got -1"),
    ({"angle_deg": 200.0}, r"angle_deg must be in \[-180.0, 180.0\], got 200.0"),
], ids=["crop", "top", "left", "angle"])
def test_geometry_rejections(options, message):
    with pytest.raises(ValueError, match=message):
        Geometry(**{"resize": 256, "crop": 224, "top": 0, "left": 0, **options})


# ---------------------------------------------------------------- sizes and determinism


@pytest.mark.parametrize("config, train_shape, test_shape", [
    (OBJECT, 224, 224), (TEXTURE, 256, 256),
    (TransformConfig.for_size("object", 128, rotation_deg=5.0), 112, 112),
    (TransformConfig.for_size("texture", 128), 128, 128),
], ids=["object", "texture", "object128", "texture128"])
@pytest.mark.parametrize("source", [(256, 256), (300, 200), (64, 64)], ids=["256", "wide", "small"])
def test_output_sizes(config, train_shape, test_shape, source):
    image = np.zeros((*source, 3), np.uint8)
    out, geometry = apply_train_transform(image, config, np.random.default_rng(0))
    assert out.shape == (train_shape, train_shape, 3) and out.dtype == np.uint8
    assert geometry.crop == train_shape
    assert apply_test_transform(image, config).shape == (test_shape, test_shape, 3)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_and_16_bit_are_kept(dtype):
    image = _smooth_image(channels=1, dtype=dtype)
    out, _ = apply_train_transform(image, OBJECT, np.random.default_rng(1))
    assert out.shape == (224, 224, 1) and out.dtype == dtype
    assert apply_test_transform(image, TEXTURE).shape == (256, 256, 1)


def test_grayscale_config_converts_rgb():
    image = _smooth_image()
    config = TransformConfig.from_preset(get_preset("cxr"))
    out, _ = apply_train_transform(image, config, np.random.default_rng(0))
    assert out.shape == (224, 224, 1)
    np.testing.assert_array_equal(apply_test_transform(image, config)[..., 0],
                                  cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[16:240, 16:240])


def test_to_grayscale_weights_and_rejections():
    image = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    # BT.601 luma: 0.299 R + 0.587 G + 0.114 B, rounded
    np.testing.assert_array_equal(to_grayscale(image)[0, :, 0], [76, 150, 29])
    gray = np.zeros((2, 2, 1), np.uint16)
    assert to_grayscale(gray) is gray
    with pytest.raises(TypeError, match="image must have dtype uint8 or uint16, got float32"):
        to_grayscale(np.zeros((2, 2, 3), np.float32))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["object", "texture", "xray"]),
       size=st.integers(8, 96), rotation=st.floats(0, 10))
def test_train_transform_is_seeded_and_in_bounds(seed, kind, size, rotation):
    config = TransformConfig.for_size(kind, size, rotation_deg=rotation)
    image = _smooth_image(64, seed=seed % 1000)
    out, geometry = apply_train_transform(image, config, np.random.default_rng(seed))
    again, same = apply_train_transform(image, config, np.random.default_rng(seed))
    np.testing.assert_array_equal(out, again)
    assert geometry == same and out.shape == (config.input_size, config.input_size, 3)
    assert abs(geometry.angle_deg) <= rotation
    if kind == "texture":
        assert geometry.resize == config.texture_resize and geometry.angle_deg == 0.0
    else:  # the window lies inside the centred pre-crop square
        margin = (config.resize - config.pre_crop) // 2
        for offset in (geometry.top, geometry.left):
            assert margin <= offset <= margin + config.pre_crop - config.crop


def test_different_seeds_give_different_crops():
    image = _smooth_image()
    outs = [apply_train_transform(image, OBJECT, np.random.default_rng(seed))[0] for seed in range(4)]
    assert all(not np.array_equal(outs[0], other) for other in outs[1:])


def test_crop_offsets_cover_every_position_uniformly():
    rng = np.random.default_rng(0)
    tops = np.array([sample_train_geometry(rng, OBJECT).top for _ in range(3500)]) - 13
    counts = np.bincount(tops, minlength=7)
    assert counts.size == 7 and scipy.stats.chisquare(counts).pvalue > 1e-3
    rng = np.random.default_rng(1)
    lefts = np.array([sample_train_geometry(rng, TEXTURE).left for _ in range(900)])
    assert set(lefts) == set(range(9))


def test_rotation_angles_are_uniform_within_the_range():
    rng = np.random.default_rng(0)
    angles = np.array([sample_train_geometry(rng, OBJECT).angle_deg for _ in range(2000)])
    assert np.abs(angles).max() <= 5.0 and angles.min() < -4.9 and angles.max() > 4.9
    assert scipy.stats.kstest(angles, scipy.stats.uniform(-5, 10).cdf).pvalue > 1e-3
    assert sample_train_geometry(rng, TransformConfig()).angle_deg == 0.0


def _orientation_deg(image: np.ndarray) -> float:
    """Counter-clockwise angle of a bar's long axis from intensity moments (rows grow downwards)."""
    moments = cv2.moments(image.astype(np.float32))
    theta = 0.5 * np.arctan2(2 * moments["mu11"], moments["mu20"] - moments["mu02"])
    return -float(np.degrees(theta))


def test_the_image_turns_by_the_angle_drawn():
    bar = np.zeros((256, 256, 1), np.uint8)
    bar[118:138, 20:236] = 255
    rng = np.random.default_rng(3)
    measured, drawn = [], []
    for _ in range(20):
        out, geometry = apply_train_transform(bar, OBJECT, rng)
        measured.append(_orientation_deg(out[..., 0]))
        drawn.append(geometry.angle_deg)
    np.testing.assert_allclose(measured, drawn, atol=0.15)
    assert max(np.abs(drawn)) > 3  # real rotations were measured, not only near-zero ones


# ---------------------------------------------------------------- test transform and the same geometry


def test_test_transform_is_the_centre_crop_or_the_image():
    image = _smooth_image()
    np.testing.assert_array_equal(apply_test_transform(image, OBJECT), image[16:240, 16:240])
    np.testing.assert_array_equal(apply_test_transform(image, TEXTURE), image)
    small = TransformConfig.for_size("object", 128)
    assert centre_geometry(small) == Geometry(128, 112, 8, 8, 0.0)


def test_tiny_rotation_matches_the_plain_crop():
    # The warp's rotation centre and crop offset agree with slicing: a rotation of 1e-9 degrees
    # reproduces the unrotated window exactly.
    image = _smooth_image()
    plain = apply_geometry(image, Geometry(256, 224, 10, 20, 0.0))
    np.testing.assert_array_equal(plain, image[10:234, 20:244])
    np.testing.assert_array_equal(apply_geometry(image, Geometry(256, 224, 10, 20, 1e-9)), plain)


@pytest.mark.parametrize("angle, turns", [(90.0, 1), (180.0, 2), (-90.0, 3)], ids=["90", "180", "-90"])
def test_quarter_turns_are_exact(angle, turns):
    # Rotation about the pixel grid's centre ((N - 1) / 2), counter-clockwise as displayed: np.rot90.
    image = _smooth_image(64)
    turned = apply_geometry(image, Geometry(64, 64, 0, 0, angle))
    np.testing.assert_array_equal(turned, np.rot90(image, turns))
    label = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    window = apply_geometry(label, Geometry(64, 40, 5, 9, angle), "nearest")
    np.testing.assert_array_equal(window, np.rot90(label, turns)[5:45, 9:49])


def test_texture_train_transform_resizes_up_then_crops():
    image = _smooth_image()
    out, geometry = apply_train_transform(image, TEXTURE, np.random.default_rng(0))
    bigger = cv2.resize(image, (264, 264), interpolation=cv2.INTER_LINEAR)
    top, left = geometry.top, geometry.left
    np.testing.assert_array_equal(out, bigger[top:top + 256, left:left + 256])


def test_same_geometry_aligns_image_and_mask():
    # Sharp-edged blobs (50 or 200 per channel): thresholding the transformed image can only differ
    # from the transformed mask where interpolation mixes the two levels, i.e. at the edges.
    blocks = np.random.default_rng(5).random((16, 16, 1)) > 0.5
    blobs = cv2.resize(blocks.astype(np.uint8), (256, 256), interpolation=cv2.INTER_NEAREST)[..., None]
    image = np.where(blobs, np.array([200, 180, 220], np.uint8), np.array([50, 60, 40], np.uint8))
    mask = image.mean(axis=2) > 127
    rng = np.random.default_rng(2)
    for _ in range(5):
        out, geometry = apply_train_transform(image, OBJECT, rng)
        warped = apply_geometry(mask, geometry, "nearest")
        assert warped.dtype == bool and warped.shape == (224, 224)
        disagree = warped != (out.mean(axis=2) > 127)
        assert disagree.mean() < 0.005
        # interpolation only moves the threshold at the edges of the mask (within 2 px; an edge just
        # outside the window can show in its outermost pixels, which are left out)
        edge = cv2.dilate(cv2.morphologyEx(warped.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3))),
                          np.ones((3, 3)))
        assert not (disagree & (edge == 0))[1:-1, 1:-1].any()
        other = apply_geometry(mask, Geometry(256, 224, 13, 19, geometry.angle_deg + 4), "nearest")
        assert (other != warped).mean() > 0.05  # the check above can fail


def test_fullres_image_and_mask_through_the_resize_path():
    fullres, small = _needs(BOTTLE_FULLRES), _needs(BOTTLE_256)
    sample = next(s for s in find_dataset(fullres).test if s.is_anomalous)
    image = read_image(sample.path)
    assert image.shape == (900, 900, 3)
    # The shared 256 copy was made with Lanczos; pixel-area averaging gives nearly the same image.
    ours = apply_test_transform(image, OBJECT).astype(np.float32)
    small_image = read_image(small / "test" / sample.defect_type / sample.path.name)
    reference = apply_test_transform(small_image, OBJECT)
    assert np.abs(ours - reference).mean() < 2.0
    # The same geometry on the full-resolution mask and on the image keep the defect in place.
    geometry = sample_train_geometry(np.random.default_rng(0), OBJECT)
    warped = apply_geometry(read_mask(sample.mask_path), geometry, "nearest")
    small_mask = read_mask(small / "ground_truth" / sample.defect_type / sample.mask_path.name)
    from_small = apply_geometry(small_mask, geometry, "nearest")
    assert (warped & from_small).sum() / (warped | from_small).sum() > 0.95


def test_apply_geometry_layouts_and_rejections():
    geometry = Geometry(32, 16, 4, 4, 10.0)
    label = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    assert apply_geometry(label, geometry).shape == (16, 16)
    many = np.random.default_rng(0).integers(0, 255, (40, 40, 6), dtype=np.uint8)
    stacked = apply_geometry(many, geometry, "nearest")
    assert stacked.shape == (16, 16, 6)
    np.testing.assert_array_equal(stacked[..., 4], apply_geometry(many[..., 4], geometry, "nearest"))
    with pytest.raises(ValueError, match="a bool mask must use interpolation='nearest'"):
        apply_geometry(label > 0.5, geometry)
    with pytest.raises(ValueError, match="unknown interpolation 'cubic'"):
        apply_geometry(label, geometry, "cubic")
    with pytest.raises(TypeError, match="dtype bool, uint8, uint16, float32 or float64, got int64"):
        apply_geometry(label.astype(np.int64), geometry)
    with pytest.raises(TypeError, match="image must be a numpy array, got list"):
        apply_geometry([[1]], geometry)
    with pytest.raises(ValueError, match=re.escape("image must have shape (H, W) or (H, W, C), got (4,)")):
        apply_geometry(np.zeros(4, np.uint8), geometry)


def test_nearest_keeps_label_values():
    labels = np.random.default_rng(0).integers(0, 4, (300, 300)).astype(np.uint8)
    out = apply_geometry(labels, Geometry(256, 224, 3, 9, -4.0), "nearest")
    assert set(np.unique(out)) <= {0, 1, 2, 3}


# ---------------------------------------------------------------- normalisation


def test_imagenet_normalisation_reference_values():
    image = np.array([[[255, 0, 128]]], np.uint8)
    out = to_tensor_normalized(image)
    # ((1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225)
    np.testing.assert_allclose(out[:, 0, 0], [2.2489083, -2.0357143, 0.4264926], rtol=1e-6)
    assert out.shape == (3, 1, 1) and out.dtype == np.float32 and out.flags.c_contiguous


def test_imagenet_normalisation_matches_torchvision():
    torch = pytest.importorskip("torch")
    from torchvision.transforms import functional

    image = _smooth_image(32)
    reference = functional.normalize(functional.to_tensor(image), IMAGENET_MEAN.tolist(),
                                     IMAGENET_STD.tolist())
    np.testing.assert_allclose(to_tensor_normalized(image), reference.numpy(), atol=1e-6)
    assert torch.is_tensor(reference)


def test_16_bit_is_scaled_by_65535():
    image8 = _smooth_image(16)
    image16 = image8.astype(np.uint16) * 257
    np.testing.assert_allclose(to_tensor_normalized(image16), to_tensor_normalized(image8), atol=1e-5)
    np.testing.assert_allclose(to_tensor_normalized(image16[..., :1], "unit"), image8[None, ..., 0] / 255,
                               atol=1e-6)


def test_gray_is_replicated_for_three_channel_models():
    gray = _smooth_image(16, channels=1)
    out = to_tensor_normalized(gray, "imagenet", channels=3)
    np.testing.assert_allclose(out, to_tensor_normalized(np.repeat(gray, 3, axis=2)), atol=0)
    assert to_tensor_normalized(gray, "unit").shape == (1, 16, 16)
    assert to_tensor_normalized(gray, "unit", channels=3).shape == (3, 16, 16)


@pytest.mark.parametrize("image, options, error, message", [
    (np.zeros((4, 4, 3), np.uint8), {"channels": 1}, ValueError,
     "the model takes 1 channel but the image has 3"),
    (np.zeros((4, 4, 1), np.uint8), {}, ValueError, "imagenet normalisation needs 3 channels"),
    (np.zeros((4, 4, 3), np.uint8), {"channels": 2}, ValueError, "channels must be 1 or 3, got 2"),
    (np.zeros((4, 4, 3), np.uint8), {"normalization": "imagnet"}, ValueError,
     "unknown normalization 'imagnet'.*Did you mean 'imagenet'"),
    (np.zeros((4, 4, 3), np.float32), {}, TypeError, "dtype uint8 or uint16, got float32"),
], ids=["rgb-to-1", "imagenet-gray", "channels", "name", "dtype"])
def test_to_tensor_rejections(image, options, error, message):
    with pytest.raises(error, match=message):
        to_tensor_normalized(image, **options)


@pytest.mark.parametrize("normalization", ["imagenet", "unit"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_denormalize_inverts_exactly(normalization, dtype):
    image = _smooth_image(24, dtype=dtype)
    back = denormalize(to_tensor_normalized(image, normalization), normalization, dtype)
    np.testing.assert_array_equal(back, image)


def test_denormalize_clips_and_accepts_tensors():
    torch = pytest.importorskip("torch")
    tensor = torch.full((1, 2, 2), 1.5, requires_grad=True)
    assert (denormalize(tensor, "unit") == 255).all()
    assert (denormalize(-np.ones((3, 2, 2), np.float32) * 10) == 0).all()
    with pytest.raises(ValueError, match="imagenet normalisation has 3 channels; this tensor has 1"):
        denormalize(np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match=re.escape("must have shape (C, H, W) with C in (1, 3), got (2, 2)")):
        denormalize(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="dtype must be uint8 or uint16, got float32"):
        denormalize(np.zeros((3, 2, 2)), dtype=np.float32)


# ---------------------------------------------------------------- maps back to images


def test_place_in_frame_undoes_the_centre_crop():
    image = _smooth_image(channels=1)
    crop = apply_test_transform(image, OBJECT)[..., 0]
    framed = place_in_frame(crop, 256)
    np.testing.assert_array_equal(framed[16:240, 16:240], image[16:240, 16:240, 0])
    outside = np.ones((256, 256), bool)
    outside[16:240, 16:240] = False
    assert not framed[outside].any()
    batch = place_in_frame(np.ones((2, 5, 224, 224), np.float32))
    assert batch.shape == (2, 5, 256, 256) and batch.sum() == 2 * 5 * 224 * 224
    with pytest.raises(ValueError, match="anomaly_map 300x224 does not fit in a 256x256 frame"):
        place_in_frame(np.zeros((300, 224)))
    with pytest.raises(ValueError, match=re.escape("must have shape (..., H, W), got (5,)")):
        place_in_frame(np.zeros(5))


def test_resize_map_is_bilinear():
    ramp = np.tile(np.arange(4, dtype=np.float32), (4, 1))
    out = resize_map(ramp, (4, 8))
    assert out.shape == (4, 8) and out.dtype == np.float32
    # pixel centres: output column j sits at (j + 0.5) / 2 - 0.5 in the input, clamped at the border
    np.testing.assert_allclose(out[0], [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3])
    np.testing.assert_allclose(resize_map(np.full((7, 7), 0.3, np.float32), (900, 600)), 0.3, atol=1e-6)
    with pytest.raises(ValueError, match=re.escape("must have shape (H, W), got (1, 4, 4)")):
        resize_map(ramp[None], (8, 8))
    with pytest.raises(ValueError, match="shape must be \\(height, width\\) with positive values"):
        resize_map(ramp, (0, 8))


def test_restore_map_to_original_resolution():
    restored = restore_map(np.ones((224, 224), np.float32), OBJECT, (900, 900))
    assert restored.shape == (900, 900)
    # the centre crop covers 224/256 of the side: [56.25, 843.75) at 900 px
    np.testing.assert_array_equal(restored[450, [50, 60, 840, 850]], [0, 1, 1, 0])
    np.testing.assert_array_equal(restored[[50, 60, 840, 850], 450], [0, 1, 1, 0])
    texture = restore_map(np.ones((256, 256), np.float32), TEXTURE, (500, 400))
    assert texture.shape == (500, 400) and (texture == 1).all()
    message = "must have the test input's shape (224, 224), got (256, 256)"
    with pytest.raises(ValueError, match=re.escape(message)):
        restore_map(np.ones((256, 256)), OBJECT, (900, 900))


# The whole-image protocol and tiles.

def test_frame_keeps_the_aspect_ratio_at_the_papers_pixel_count():
    tall = FrameConfig.for_images((1260, 500))  # a KolektorSDD part
    assert tall.frame_hw == (416, 160) and tall.crop_hw == (352, 128)
    assert abs(tall.frame_hw[0] * tall.frame_hw[1] / 256**2 - 1) < 0.05
    wide = FrameConfig.for_images((100, 200), 128)
    assert wide.frame_hw == (96, 192) and wide.frame_hw[1] == 2 * wide.frame_hw[0]
    square = FrameConfig.for_images((900, 900))
    assert (square.frame_hw, square.crop_hw) == ((256, 256), (224, 224))  # the paper's sizes
    for config in (tall, wide, square):
        assert all(side % 32 == 0 for side in (*config.frame_hw, *config.crop_hw))


def test_training_windows_are_squares_bounded_by_the_frame():
    assert FrameConfig.for_images((1260, 500), window=128).crop_hw == (128, 128)
    assert FrameConfig.for_images((1260, 500), window=128).frame_hw == (416, 160)  # the frame does not change
    assert FrameConfig.for_images((100, 200), 128, window=128).crop_hw == (96, 128)  # the 96-px side bounds it
    for window, message in ((100, "multiple of 32"), (16, "at least 32"), (True, "got True")):
        with pytest.raises(ValueError, match=f"training window must be a .*{message}"):
            FrameConfig.for_images((1260, 500), window=window)
    with pytest.raises(ValueError, match="a training window and tiles exclude each other"):
        FrameConfig.for_images((1260, 500), tile=256, window=128)


def test_whole_frame_geometry_round_trips_through_run_json():
    config = FrameConfig.for_images((1260, 500), tile=256)
    assert (config.frame_hw, config.crop_hw, config.tile, config.tile_overlap) == ((1260, 500), (256, 256), 256, 64)
    assert FrameConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown geometry keys"):
        FrameConfig.from_dict({**config.to_dict(), "zoom": 2})


@pytest.mark.parametrize("tile, overlap, message", [
    (100, 0, "tile must be a multiple of 32"), (512, 64, r"tile 512 px is larger than the images .*at most 480"),
    (256, 200, "tile overlap must be an int from 0 to half the tile"),
])
def test_bad_tiles_are_rejected(tile, overlap, message):
    with pytest.raises(ValueError, match=message):
        FrameConfig.for_images((1260, 500), tile=tile, tile_overlap=overlap)


def test_training_windows_cover_the_whole_frame():
    config = FrameConfig.for_images((100, 200), 128)
    rng = np.random.default_rng(0)
    draws = [sample_train_geometry(rng, config) for _ in range(400)]
    assert {g.crop_hw for g in draws} == {config.crop_hw} and {g.resize_hw for g in draws} == {config.frame_hw}
    tops, lefts = {g.top for g in draws}, {g.left for g in draws}
    assert tops == set(range(config.frame_hw[0] - config.crop_hw[0] + 1))
    assert lefts == set(range(config.frame_hw[1] - config.crop_hw[1] + 1))


def test_a_two_to_one_image_keeps_its_defect_in_place():
    """A defect pasted at a known place of a 2:1 image lands there in the frame and back at full size."""
    image = np.full((300, 600, 1), 100, np.uint8)
    mask = np.zeros((300, 600), bool)
    mask[40:100, 450:560] = True  # near the right edge, where the paper's centre crop would not look
    image[mask] = 250
    config = FrameConfig.for_images(image.shape[:2], 128)
    framed = apply_test_transform(image, config)
    assert framed.shape[:2] == config.frame_hw == (96, 192)  # 2:1
    as_map = (framed[:, :, 0].astype(np.float32) - 100) / 150  # the defect's own brightness, as a map
    assert frame_map(as_map, config) is as_map  # nothing zeroed at the border
    restored = restore_map(as_map, config, image.shape[:2]) > 0.5
    iou = (restored & mask).sum() / (restored | mask).sum()
    assert iou > 0.95


def test_the_papers_protocol_leaves_a_dead_band_the_whole_frame_does_not():
    paper = TransformConfig()
    framed = frame_map(np.ones((1, 224, 224), np.float32), paper)
    assert framed.shape == (1, 256, 256) and framed[0, :16].max() == 0 and framed[0, 16:240, 16:240].min() == 1
    whole = FrameConfig.for_images((256, 256))
    assert frame_map(np.ones((1, 256, 256), np.float32), whole).min() == 1


@pytest.mark.parametrize("frame_hw, tile, overlap", [((1260, 500), 256, 64), ((300, 97), 96, 24), ((64, 64), 64, 16),
                                                     ((200, 330), 64, 0)])
def test_tiles_stitch_without_seams(frame_hw, tile, overlap):
    boxes = tile_boxes(frame_hw, tile, overlap)
    starts_y, starts_x = sorted({b[0] for b in boxes}), sorted({b[1] for b in boxes})
    assert starts_y[0] == 0 and starts_y[-1] == frame_hw[0] - tile and starts_x[-1] == frame_hw[1] - tile
    assert all(b - a <= tile - overlap for a, b in itertools.pairwise(starts_y))
    constant = stitch_tiles(np.full((len(boxes), tile, tile), 0.37, np.float32), boxes, frame_hw, overlap)
    np.testing.assert_allclose(constant, 0.37, rtol=1e-6)  # constant across every tile edge
    yy, xx = np.mgrid[:frame_hw[0], :frame_hw[1]]
    smooth = np.sin(yy / 17.0) + np.cos(xx / 11.0)  # tiles cut from one map stitch back to that map
    np.testing.assert_allclose(stitch_tiles(split_tiles(smooth, boxes, tile), boxes, frame_hw, overlap), smooth,
                               atol=1e-6)


def test_overlaps_are_blended_not_overwritten():
    frame_hw, tile, overlap = (64, 112), 64, 16
    boxes = tile_boxes(frame_hw, tile, overlap)
    assert boxes == [(0, 0), (0, 48)]
    stitched = stitch_tiles(np.stack([np.zeros((tile, tile)), np.ones((tile, tile))]), boxes, frame_hw, overlap)
    row = stitched[10]
    assert row[:48].max() == 0 and row[64:].min() == 1
    assert np.all(np.diff(row[48:64]) > 0)  # a linear ramp across the overlap, no step
    np.testing.assert_allclose(row[48:64], (np.arange(16) + 0.5) / 16, atol=1e-6)


def test_jitter_intensity_draws_a_uniform_gain_and_shift():
    """The gain and shift recovered from two pixels follow U(1 - j, 1 + j) and U(-j, j) / 2 of the range."""
    image = np.array([[[10000], [30000]]], np.uint16)  # no clipping for j = 0.2: 6,000 to 49,553
    rng = np.random.default_rng(0)
    outputs = np.array([jitter_intensity(image, rng, 0.2)[0, :, 0].astype(float) for _ in range(2000)])
    gain = (outputs[:, 1] - outputs[:, 0]) / 20000
    shift = (outputs[:, 0] - 10000 * gain) / 65535
    assert scipy.stats.kstest(gain, "uniform", args=(0.8, 0.4)).pvalue > 1e-3
    assert scipy.stats.kstest(shift, "uniform", args=(-0.1, 0.2)).pvalue > 1e-3
    assert scipy.stats.kstest(gain, "uniform", args=(0.85, 0.3)).pvalue < 1e-6  # the test can tell a narrower range
    bright = jitter_intensity(np.full((4, 4, 1), 250, np.uint8), np.random.default_rng(1), 0.5)
    assert bright.dtype == np.uint8 and bright.max() <= 255
