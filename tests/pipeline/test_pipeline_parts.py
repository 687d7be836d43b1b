import dataclasses
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from nsad.config import TrainConfig
from nsad.data.transforms import TransformConfig
from nsad.pipeline._checkpoint import AtomicCheckpointIO
from nsad.pipeline._sampling import EpochSampler, one_thread_for_loading
from nsad.pipeline.datasets import SynthTrainingSet
from nsad.postprocess import image_scores, parse_score_rule
from nsad.synth import get_preset, get_task


def test_epoch_sampler_orders_are_seeded_per_epoch():
    sampler = EpochSampler(10, seed=3)
    first = list(sampler)
    assert sorted(index for _, index in first) == list(range(10)) and {epoch for epoch, _ in first} == {0}
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert [i for _, i in second] != [i for _, i in first] and {e for e, _ in second} == {1}
    assert [i for _, i in EpochSampler(10, seed=3, shuffle=False)] == list(range(10))
    with pytest.raises(ValueError, match="at least one example"):
        EpochSampler(0, seed=0)


@pytest.fixture(scope="module")
def training_set(bottle_images):
    preset = get_preset("mvtec/bottle")
    transform = TransformConfig.from_preset(preset, 128)
    from nsad.pipeline.datasets import Geometry, apply_geometry

    images = [apply_geometry(image, Geometry(128, 128, 0, 0)) for image in bottle_images[:6]]
    return SynthTrainingSet(images, get_task("nsa-logistic", preset), transform, preset, seed=5, length=12)


def test_training_examples_do_not_depend_on_workers(training_set):
    def collect(workers):
        sampler = EpochSampler(len(training_set), seed=5)
        sampler.set_epoch(2)
        loader = DataLoader(training_set, batch_size=4, sampler=sampler, num_workers=workers)
        with one_thread_for_loading():
            batches = list(loader)
        return torch.cat([batch["image"] for batch in batches]), torch.cat([batch["label"] for batch in batches])

    serial, parallel = collect(0), collect(2)
    torch.testing.assert_close(serial[0], parallel[0], rtol=0, atol=0)
    torch.testing.assert_close(serial[1], parallel[1], rtol=0, atol=0)
    image, label = training_set[(2, 0)]["image"], training_set[(2, 0)]["label"]
    assert image.shape == (3, 112, 112) and label.shape == (1, 112, 112)
    assert not torch.equal(training_set[(3, 0)]["image"], image)


def test_intensity_jitter_changes_the_example_and_not_its_label(training_set):
    jittered = SynthTrainingSet(training_set.images, training_set.task, training_set.transform,
                                training_set.preset.replace(intensity_jitter=0.3), seed=5, length=12)
    for index in range(4):
        plain_image, plain_label = training_set.example(1, index)
        image, label = jittered.example(1, index)
        np.testing.assert_array_equal(label, plain_label)  # the synthesis draws come first and are unchanged
        assert image.dtype == plain_image.dtype and not np.array_equal(image, plain_image)
        np.testing.assert_array_equal(jittered.example(1, index)[0], image)  # reproducible from (seed, epoch, index)
        unclipped = (plain_image > 60) & (plain_image < 180)  # gain 0.7-1.3 and shift +-38 levels stay in range
        gain = np.polyfit(plain_image[unclipped].astype(float), image[unclipped].astype(float), 1)[0]
        assert 0.7 - 0.01 <= gain <= 1.3 + 0.01  # one global gain for the whole example


def test_atomic_checkpoint_keeps_the_old_file_when_a_save_fails(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "ckpt" / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)
    assert torch.load(path)["step"] == 1

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path)["step"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


def test_image_score_rules():
    maps = np.zeros((2, 10, 10), np.float32)
    maps[0, :2, :5] = 1.0   # 10 hot pixels
    maps[1, 0, 0] = 0.5
    np.testing.assert_allclose(image_scores(maps, "mean"), [0.1, 0.005])
    np.testing.assert_allclose(image_scores(maps, "max"), [1.0, 0.5])
    np.testing.assert_allclose(image_scores(maps, "topk:0.05"), [1.0, 0.1])
    assert parse_score_rule("topk:0.01") == ("topk", 0.01)
    for rule in ("median", "topk", "topk:2", "max:3", "toppx:0", "toppx:1.5", "smoothmax:0", "smoothmax:x"):
        with pytest.raises(ValueError, match="score rule"):
            parse_score_rule(rule)


def test_small_defect_score_rules():
    """toppx:N is the mean of the N highest pixels; smoothmax:S the peak of SciPy's Gaussian blur (reflected)."""
    import scipy.ndimage

    rng = np.random.default_rng(0)
    maps = rng.random((3, 40, 70)).astype(np.float32)
    ordered = np.sort(maps.reshape(3, -1), axis=1)[:, ::-1]
    np.testing.assert_allclose(image_scores(maps, "toppx:25"), ordered[:, :25].mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(image_scores(maps, "toppx:1"), maps.reshape(3, -1).max(axis=1))
    np.testing.assert_allclose(image_scores(maps, "toppx:99999"), maps.reshape(3, -1).mean(axis=1), rtol=1e-6)
    for sigma in (1.0, 2.5, 4.0):
        blurred = [scipy.ndimage.gaussian_filter(m.astype(np.float64), sigma, mode="reflect").max() for m in maps]
        np.testing.assert_allclose(image_scores(maps, f"smoothmax:{sigma:g}"), blurred, rtol=2e-3)
    edge = np.zeros((1, 40, 70), np.float32)
    edge[0, 10:14, 68:] = 1.0  # 2 px at the border, mirrored: as high as 4 px inside, not dimmed by zeros beyond
    centre = np.zeros((1, 40, 70), np.float32)
    centre[0, 10:14, 30:34] = 1.0
    assert image_scores(edge, "smoothmax:2")[0] == pytest.approx(image_scores(centre, "smoothmax:2")[0], rel=0.05)


def test_bf16_on_a_cpu_without_avx512_is_flagged(tmp_path, monkeypatch):
    from nsad.pipeline.train import CheckpointOnInterrupt, make_trainer, slow_precision_warning

    assert slow_precision_warning("bf16-mixed", "cpu", "AVX2") and slow_precision_warning("bf16-true", "cpu", "DEFAULT")
    assert slow_precision_warning("bf16-mixed", "cpu", "AVX512") is None  # native or fast emulated kernels
    assert slow_precision_warning("bf16-mixed", "cuda", "AVX2") is None
    assert slow_precision_warning("32-true", "cpu", "AVX2") is None
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    config = TrainConfig(data=tmp_path, out=tmp_path / "run", accelerator="cpu", progress=False)
    with pytest.warns(UserWarning, match="bf16-mixed on this CPU .AVX2.*4x or more slower than 32-true"):
        make_trainer(dataclasses.replace(config, precision="bf16-mixed"), 1, tmp_path / "run",
                     CheckpointOnInterrupt(tmp_path / "c.ckpt"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_trainer(config, 1, tmp_path / "run", CheckpointOnInterrupt(tmp_path / "c.ckpt"))  # 32-true: silent
    assert not [w for w in caught if "bf16" in str(w.message)]
