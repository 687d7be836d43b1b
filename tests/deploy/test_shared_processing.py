"""The pre- and post-processing the torch scorer and the deployment runtime share (torch-free)."""

import numpy as np
import pytest
import torch

from nsad.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TransformConfig,
    apply_test_transform,
    frame_map,
    normalize_tensor,
    place_in_frame,
    test_input,
    test_transform_of,
    to_tensor_normalized,
    to_unit_tensor,
)
from nsad.pipeline.datasets import TestImages
from nsad.postprocess import check_score_rule, decisions, final_image_scores, image_scores


def test_unit_tensor_then_normalize_is_to_tensor_normalized_bit_for_bit():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    unit = to_unit_tensor(image, 3)
    np.testing.assert_array_equal(unit, image.transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 255))
    expected = (unit - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]
    np.testing.assert_array_equal(normalize_tensor(unit, "imagenet"), expected)
    np.testing.assert_array_equal(normalize_tensor(unit, "imagenet"), to_tensor_normalized(image, "imagenet", 3))
    np.testing.assert_array_equal(normalize_tensor(unit[None], "imagenet")[0], expected)  # batches too
    assert normalize_tensor(unit, "unit") is unit
    with pytest.raises(ValueError, match="3 channels"):
        normalize_tensor(unit[:1], "imagenet")


def test_test_transform_of_rebuilds_the_run_transform():
    config = test_transform_of("object", (128, 128), (112, 112), 3)
    assert (config.kind, config.resize, config.crop, config.input_size, config.grayscale) == ("object", 128, 112,
                                                                                              112, False)
    texture = test_transform_of("texture", (64, 64), None, 1)
    assert (texture.input_size, texture.grayscale) == (64, True)
    with pytest.raises(ValueError, match="resize_hw"):
        test_transform_of("object", None, None, 3)


def test_test_input_is_what_the_torch_dataset_feeds_after_normalisation(tmp_path):
    from nsad.data.io import write_image

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    write_image(tmp_path / "a.png", image)
    config = TransformConfig.for_size("object", 32)
    unit = test_input(image, config, 3)
    np.testing.assert_array_equal(unit, to_unit_tensor(apply_test_transform(image, config), 3))
    item = TestImages([tmp_path / "a.png"], config, "imagenet", 3)[0]
    assert isinstance(item["image"], torch.Tensor)
    np.testing.assert_array_equal(item["image"].numpy(), normalize_tensor(unit, "imagenet"))


def test_frame_map_places_objects_and_keeps_textures():
    obj = TransformConfig.for_size("object", 32)
    maps = np.arange(2 * obj.crop * obj.crop, dtype=np.float32).reshape(2, obj.crop, obj.crop)
    np.testing.assert_array_equal(frame_map(maps, obj), place_in_frame(maps, 32))
    texture = TransformConfig.for_size("texture", 32)
    same = np.ones((32, 32), np.float32)
    assert frame_map(same, texture) is same
    with pytest.raises(ValueError, match="test input's shape"):
        frame_map(np.ones((31, 31)), obj)


def test_final_scores_and_decisions():
    maps = np.zeros((2, 4, 4), np.float32)
    maps[0, 0, 0] = 1.5
    np.testing.assert_array_equal(final_image_scores(maps, "max"), image_scores(maps, "max"))
    np.testing.assert_array_equal(final_image_scores(maps, "mean"), [1.5 / 16, 0.0])
    np.testing.assert_array_equal(final_image_scores(maps, "density", np.array([3.0, 4.0])), [3.0, 4.0])
    with pytest.raises(ValueError, match="image-level scores"):
        final_image_scores(maps, "density")
    assert decisions([0.1, 0.0], 0.1) == ["anomalous", "normal"]
    assert decisions([0.1, 0.0], None) == ["", ""]
    assert check_score_rule("density", True, "cutpaste") == "density"
    with pytest.raises(ValueError, match="'ssae' run has none"):
        check_score_rule("density", False, "ssae")
