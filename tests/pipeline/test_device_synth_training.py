"""Training examples made on the device (nsad.pipeline.device_synth): same draws, any worker count, a real run.

(Not named test_device_synth.py: tests/synth has that basename, and the tests folders are not packages.)
"""

import json
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from nsad.data.folder import sample_data_path
from nsad.data.io import read_image
from nsad.data.transforms import Geometry, TransformConfig, apply_geometry, to_tensor_normalized
from nsad.models import load_run
from nsad.pipeline import TrainConfig, train
from nsad.pipeline._sampling import EpochSampler
from nsad.pipeline.datasets import CONTINUOUS_LABEL_SCALE, SynthTrainingSet
from nsad.pipeline.device_synth import DevicePlanSet, DeviceSynth, DeviceSynthModule, collate_plans
from nsad.synth import PatchPlacementWarning, get_preset, get_task

BOTTLE = get_preset("mvtec/bottle")
SMALL = TransformConfig.from_preset(BOTTLE, 96)


@pytest.fixture(scope="module")
def small_images():
    """Eight of the bottle images bundled with nsad, resized to 96 px."""
    paths = sorted((sample_data_path() / "train" / "good").glob("*.png"))[:8]
    return [apply_geometry(read_image(path), Geometry(96, 96, 0, 0)) for path in paths]


def plan_set(images, name="nsa-logistic", seed=5):
    task = get_task(name, BOTTLE)
    return DevicePlanSet(images, task, SMALL, BOTTLE, seed, length=12), SynthTrainingSet(images, task, SMALL, BOTTLE,
                                                                                           seed, length=12)


@pytest.mark.parametrize("name", ["nsa-logistic", "cutpaste-nsa"])
def test_plans_use_the_draws_of_the_cpu_training_set(small_images, name):
    device_set, cpu_set = plan_set(small_images, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PatchPlacementWarning)
        for epoch, index in [(0, 0), (0, 7), (3, 11)]:
            image, plan = device_set.plan(epoch, index)
            synth = device_set.task.apply(image, plan)
            expected_image, expected_label = cpu_set.example(epoch, index)
            np.testing.assert_array_equal(synth.image, expected_image)
            np.testing.assert_array_equal(synth.label, expected_label)


def batches(dataset, workers):
    loader = DataLoader(dataset, batch_size=6, sampler=EpochSampler(len(dataset), seed=1), num_workers=workers,
                        collate_fn=collate_plans)
    loader.sampler.set_epoch(2)
    return list(loader)


def test_plans_do_not_depend_on_the_worker_count(small_images):
    device_set, _ = plan_set(small_images)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PatchPlacementWarning)
        alone, parallel = batches(device_set, 0), batches(device_set, 2)
    assert len(alone) == len(parallel) == 2
    for a, b in zip(alone, parallel, strict=True):
        assert torch.equal(a["image"], b["image"])
        assert a["plan"].keys() == b["plan"].keys()
        for key in a["plan"]:
            assert torch.equal(a["plan"][key], b["plan"][key]), key
    assert int(sum(batch["plan"]["count"].sum() for batch in alone)) >= 12


@pytest.mark.parametrize("name", ["nsa-logistic", "nsa-continuous"])
def test_device_batches_match_the_cpu_loader(small_images, name):
    device_set, cpu_set = plan_set(small_images, name)
    keys = [(1, i) for i in range(12)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PatchPlacementWarning)
        batch = collate_plans([device_set[key] for key in keys])
        expected = [cpu_set[key] for key in keys]
    module = DeviceSynthModule(label_kind=device_set.task.label_kind)
    module.device_synth = DeviceSynth.from_task(device_set.task, BOTTLE)
    out = module.on_after_batch_transfer(batch, 0)
    assert set(out) == {"image", "label"}
    assert out["image"].dtype == torch.float32 and out["image"].shape == (12, 3, 84, 84)
    assert out["label"].shape == (12, 1, 84, 84)
    images = torch.stack([e["image"] for e in expected])
    labels = torch.stack([e["label"] for e in expected])
    one_level = 1 / 255 / 0.224                                # one 8-bit level after ImageNet normalisation
    assert (out["image"] - images).abs().max() <= one_level * 1.001
    same = [b for b in range(12) if torch.allclose(out["image"][b], images[b], atol=1e-6)]
    assert len(same) >= 6
    torch.testing.assert_close(out["label"][same], labels[same], rtol=1e-5, atol=1e-6)
    if name == "nsa-continuous":
        assert out["label"].max() <= 1.0 and out["label"].max() > 10 * CONTINUOUS_LABEL_SCALE
    assert module.on_after_batch_transfer({"image": images}, 0)["image"] is images   # plain batches pass


def test_normalize_matches_to_tensor_normalized():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 65536, (2, 1, 5, 7), dtype=np.uint16)
    rgb = rng.integers(0, 256, (2, 3, 5, 7), dtype=np.uint8)
    cases = [(rgb, "imagenet", 3), (gray, "unit", 1), (gray, "imagenet", 3), (gray, "unit", 3)]
    for images, normalization, channels in cases:
        synth = DeviceSynth(mode="normal", normalization=normalization, channels=channels)
        got = synth.normalize(torch.from_numpy(images))
        expected = np.stack([to_tensor_normalized(x.transpose(1, 2, 0), normalization, channels) for x in images])
        np.testing.assert_array_equal(got.numpy(), expected)


def test_rejections(small_images):
    with pytest.raises(TypeError, match=r"made on the device for the NSA tasks .* only, got FPI"):
        DevicePlanSet(small_images, get_task("fpi", BOTTLE), SMALL, BOTTLE, 0)
    with pytest.raises(TypeError, match=r"made on the device for the NSA tasks .* only, got CutPaste"):
        DeviceSynth.from_task(get_task("cutpaste", BOTTLE), BOTTLE)
    with pytest.raises(ValueError, match="channels must be 1 or 3, got 2"):
        DeviceSynth(mode="normal", channels=2)
    with pytest.raises(ValueError, match="imagenet normalisation needs 3 channels"):
        DeviceSynth(mode="normal", normalization="imagenet", channels=1)
    with pytest.raises(ValueError, match="the model takes 1 channel but the images have 3"):
        DeviceSynth(mode="normal", normalization="unit", channels=1).normalize(torch.zeros((1, 3, 4, 4),
                                                                                        dtype=torch.uint8))
    device_set, _ = plan_set(small_images)
    with pytest.raises(RuntimeError, match="without device_synth"):
        DeviceSynthModule().on_after_batch_transfer(collate_plans([device_set[(0, 0)]]), 0)
    with pytest.raises(ValueError, match=r"unknown synth_device 'gpu'.*Did you mean 'cpu'"):
        TrainConfig(data=".", out=".", synth_device="gpu")
    with pytest.raises(ValueError, match=r"synth_device='batch' makes the examples of nsa-logistic.*method 'fpi'"):
        TrainConfig(data=".", out=".", method="fpi", synth_device="batch")


def test_three_training_steps_on_the_device_path(tmp_path):
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PatchPlacementWarning)
        train(TrainConfig(data=sample_data_path(), out=out, preset="mvtec/bottle", epochs=1, seed=2, image_size=96,
                          batch_size=4, examples_per_epoch=12, holdout=0.0, workers=0, progress=False,
                          synth_device="batch"))
    run = load_run(out)
    assert run.metadata.training["steps"] == 3
    assert json.loads((out / "config.json").read_text())["synth_device"] == "batch"
    losses = [line.split(",") for line in (out / "logs" / "version_0" / "metrics.csv").read_text().splitlines()]
    header = losses[0]
    values = [float(row[header.index("train_loss_step")]) for row in losses[1:] if row[header.index("train_loss_step")]]
    assert len(values) == 3 and all(np.isfinite(values)) and 0 < values[0] < 2


def test_cli_flag():
    from nsad.cli import build_parser
    from nsad.cli.train import config_from_args

    parser = build_parser()
    base = ["train", "--data", "d", "--out", "o"]
    assert config_from_args(parser.parse_args(base)).synth_device == "cpu"
    assert config_from_args(parser.parse_args([*base, "--synth-on-device"])).synth_device == "batch"
