"""The authors' variant of NSA against what their code does (measured on real bottle images), the paper's unchanged."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

from nsad.cli.bench import centre_crop
from nsad.data.transforms import Geometry, TransformConfig, apply_geometry, sample_train_geometry
from nsad.synth import NSA, get_preset, get_task, object_mask
from nsad.synth._types import Box, PatchRecord
from nsad.synth.nsa import PlannedPatch, label_region, sample_placement

PLACEMENTS = 400


@pytest.fixture(scope="module")
def bottle_224(bottle_dir):
    """40 real bottle training images, centre 224 crops as in training, with their object masks (eq. 8)."""
    from nsad.data.io import read_image

    preset = get_preset("mvtec/bottle")
    paths = sorted((bottle_dir / "train" / "good").glob("*.png"))[:40]
    images = [centre_crop(read_image(path), 224) for path in paths]
    return preset, images, [object_mask(image, preset.background, preset.t_brightness) for image in images]


def placements(bottle_224, variant):
    preset, images, objects = bottle_224
    rng = np.random.default_rng(0)
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(PLACEMENTS):
            dest, source = i % 40, (i + 7) % 40
            placement = sample_placement(rng, preset, 224, 224, objects[source], objects[dest], variant=variant)
            if placement is not None:
                found.append((placement, dest, source))
    return found


def test_half_size_clip_keeps_bottle_patches_within_0_4_of_the_side(bottle_224):
    # The authors clip the resized sides to their half-width bounds: bottle's 0.8 becomes 0.4 of the side,
    # at most round(0.4 * 224) = 90 px; the paper's clip lets about a quarter of the patches exceed that.
    authors = placements(bottle_224, "authors")
    paper = placements(bottle_224, "paper")
    authors_sides = np.array([max(p.dst_box.height, p.dst_box.width) for p, _, _ in authors])
    paper_sides = np.array([max(p.dst_box.height, p.dst_box.width) for p, _, _ in paper])
    assert len(authors) > 0.95 * PLACEMENTS and len(paper) > 0.95 * PLACEMENTS
    assert authors_sides.max() <= round(0.4 * 224)
    assert min(min(p.dst_box.height, p.dst_box.width) for p, _, _ in authors) >= round(0.03 * 224)
    assert 0.15 < np.mean(paper_sides > 90) < 0.35          # 24% with this seed
    assert paper_sides.max() > 1.5 * 90                      # up to 0.8 of the side (179 px)


def test_destination_test_uses_the_source_object_mask(bottle_224):
    preset, _, objects = bottle_224
    for placement, dest, _ in placements(bottle_224, "paper"):      # eq. 11 on the destination
        assert objects[dest][placement.dst_box.slices()].mean() > preset.t_object
    authors = placements(bottle_224, "authors")
    crossing = 0
    for placement, dest, _ in authors:
        patch_object = placement.patch_object
        assert patch_object.mean() > preset.t_object                 # eq. 11 on the resized source
        overlap = np.count_nonzero(objects[dest][placement.dst_box.slices()] & patch_object)
        assert overlap / np.count_nonzero(patch_object) > preset.t_overlap   # eq. 12 still acts
        crossing += objects[dest][placement.dst_box.slices()].mean() <= preset.t_object
    assert crossing / len(authors) > 0.02                            # 5% of the boxes with this seed


def test_source_object_fraction_is_taken_over_the_clipped_box(bottle_224):
    preset, _, objects = bottle_224
    for placement, _, source in placements(bottle_224, "authors"):
        box = placement.src_box
        assert np.count_nonzero(objects[source][box.slices()]) / (box.height * box.width) > preset.t_object


def _planned(box: Box, region: np.ndarray | None) -> PlannedPatch:
    shape = (box.height, box.width)
    return PlannedPatch(PatchRecord(box, box, 1.0, "normal"), np.zeros((*shape, 3), np.uint8), np.ones(shape, np.uint8),
                        region)


def test_label_region_is_set_patch_by_patch_later_ones_overwriting():
    first = _planned(Box(0, 0, 6, 6), None)                         # no object masks: the whole box
    second = _planned(Box(3, 3, 8, 8), np.zeros((5, 5), bool))      # background in both images
    region = label_region((first, second), (10, 10))
    expected = np.zeros((10, 10), bool)
    expected[:6, :6] = True
    expected[3:8, 3:8] = False
    np.testing.assert_array_equal(region, expected)


def test_authors_labels_only_source_or_destination_object(bottle_224):
    preset, images, objects = bottle_224
    task = NSA(preset, variant="authors")
    trimmed = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(30):
            dest, source = i % 40, (i + 11) % 40
            plan = task.plan(images[dest], images[source], rng=np.random.default_rng([1, 0, i]),
                             image_object=objects[dest], source_object=objects[source])
            if not plan:
                continue
            for planned in plan:
                box = planned.record.dst_box
                assert planned.label_region.shape == (box.height, box.width)
                assert np.all(planned.label_region >= objects[dest][box.slices()])   # destination object inside
            region = label_region(plan, (224, 224))
            authors = task.apply(images[dest], plan).label
            boxes_only = NSA(preset).apply(images[dest], plan).label        # the paper's region: whole boxes
            assert np.all(authors <= boxes_only + 1e-6)                     # medians are monotone
            grown = cv2.dilate(region.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0   # the 5x5 median's reach
            assert not authors[~grown].any()
            trimmed += bool((boxes_only > authors + 1e-6).any())
    assert trimmed >= 3      # patches over the white background lose part of their label


def test_authors_rotation_is_nearest_neighbour_with_black_fill():
    rng = np.random.default_rng(0)
    image = rng.integers(1, 256, (64, 64, 3), dtype=np.uint8)
    config = TransformConfig(kind="object", resize=64, crop=64, pre_crop=64, rotation_deg=30.0, variant="authors")
    geometry = sample_train_geometry(np.random.default_rng(3), config)
    assert geometry.nearest_black and geometry.angle_deg != 0
    rotated = apply_geometry(image, Geometry(64, 64, 0, 0, 30.0, nearest_black=True))
    assert np.all(rotated[0, 0] == 0) and np.all(rotated[-1, -1] == 0)     # corners outside: black
    inside = rotated.reshape(-1, 3)[rotated.reshape(-1, 3).any(axis=1)]
    present = {tuple(v) for v in image.reshape(-1, 3)}
    assert all(tuple(v) in present for v in inside)                         # every pixel copied, none mixed
    paper = apply_geometry(image, Geometry(64, 64, 0, 0, 30.0))
    assert np.all(paper[0, 0] > 0)                                          # mirrored border
    assert sum(tuple(v) not in present for v in paper.reshape(-1, 3)) > 1000   # bilinear mixes


def test_authors_flip_textures_vertically_half_the_time():
    image = np.random.default_rng(1).integers(0, 256, (70, 70, 3), dtype=np.uint8)
    authors = TransformConfig(kind="texture", resize=64, crop=64, pre_crop=64, texture_resize=70, variant="authors")
    paper = TransformConfig(kind="texture", resize=64, crop=64, pre_crop=64, texture_resize=70)
    flips = 0
    for i in range(400):
        a = sample_train_geometry(np.random.default_rng([5, i]), authors)
        p = sample_train_geometry(np.random.default_rng([5, i]), paper)
        assert (a.top, a.left) == (p.top, p.left) and not p.flip
        flips += a.flip
        if i < 20:
            expected = apply_geometry(image, p)[::-1] if a.flip else apply_geometry(image, p)
            np.testing.assert_array_equal(apply_geometry(image, a), expected)
    assert 0.4 < flips / 400 < 0.6          # a fair coin: 4 standard deviations either side


def test_paper_variant_draws_the_same_examples_as_before(bottle_images):
    # Patch records of nsa-logistic on mvtec/bottle from before the variant option existed.
    expected = [
        [([51, 193, 109, 243], [98, 168, 158, 220], 1.030072), ([94, 94, 135, 165], [103, 164, 156, 256], 1.3)],
        [([180, 28, 213, 124], [21, 124, 50, 209], 0.880666), ([8, 88, 119, 162], [78, 9, 209, 96], 1.181282)],
        [([143, 119, 210, 256], [20, 18, 92, 166], 1.081768), ([181, 185, 203, 209], [96, 138, 111, 155], 0.70153)],
    ]
    for variant in ({}, {"variant": "paper"}):
        task = get_task("nsa-logistic", "mvtec/bottle", **variant)
        for i, records in enumerate(expected):
            synth = task(bottle_images[i], bottle_images[i + 1], rng=np.random.default_rng([7, 0, i]))
            assert [(p.src_box.as_list(), p.dst_box.as_list(), round(p.scale, 6)) for p in synth.patches] == records


def test_variant_errors_name_the_value():
    with pytest.raises(ValueError, match="unknown variant 'author'; choose one of"):
        NSA(get_preset("mvtec/bottle"), variant="author")
    with pytest.raises(ValueError, match="unknown variant"):
        TransformConfig(variant="code")
    with pytest.raises(ValueError, match=r"task 'fpi' does not accept the options \['variant'\]"):
        get_task("fpi", "mvtec/bottle", variant="authors")
