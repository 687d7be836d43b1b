"""NSA on the device (nsad.synth.device): the same examples as the CPU engine, labels by the same definitions."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from nsad.synth import NSA, PatchPlacementWarning, get_preset
from nsad.synth._types import Box
from nsad.synth.device import (
    apply_plan,
    boxes_mask,
    collate_plans,
    median_disk_at,
    nsa_label_batch,
    pack_plan,
)
from nsad.synth.labels import disk, nsa_label

BOTTLE = get_preset("mvtec/bottle")
CARPET = get_preset("mvtec/carpet")
DEFAULT = get_preset("default")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def smooth_image(height, width, channels, dtype, seed):
    """A smooth random image (sum of cosines) with some noise, so that blending changes it visibly."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width] / max(height, width)
    planes = []
    for _ in range(channels):
        fx, fy, phase = rng.uniform(1, 6, 3)
        planes.append(0.5 + 0.35 * np.cos(2 * np.pi * (fx * xx + fy * yy) + phase) + rng.normal(0, 0.03, xx.shape))
    top = np.iinfo(dtype).max
    return (np.clip(np.stack(planes, axis=2), 0, 1) * top).astype(dtype)


def centre_crop(image, side=224):
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return np.ascontiguousarray(image[top:top + side, left:left + side])


def mode_of(task):
    return "paste" if task.paste else (task.mode or task.preset.mode)


def plans_and_references(task, images, sources, seed=0):
    """Each example's plan drawn from default_rng([seed, i]) and the CPU engine's result for it."""
    plans, references = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PatchPlacementWarning)
        for i, (image, source) in enumerate(zip(images, sources, strict=True)):
            plans.append(task.plan(image, source, rng=np.random.default_rng([seed, i])))
            references.append(task.apply(image, plans[-1]))
    return plans, references


def run_on_device(task, images, plans, device="cpu", **options):
    items = [{"image": torch.from_numpy(image.transpose(2, 0, 1).copy()),
              "plan": pack_plan(plan, image.dtype)} for image, plan in zip(images, plans, strict=True)]
    batch = collate_plans(items)
    plan = {key: value.to(device) for key, value in batch["plan"].items()}
    out, labels = apply_plan(batch["image"].to(device), plan, mode=mode_of(task), label=task.label,
                             y0=task.preset.y0, k=task.preset.k, **options)
    return out.cpu().numpy().transpose(0, 2, 3, 1), labels.cpu().numpy(), batch


def check_labels_follow_nsa_label(task, images, out, labels, plans):
    """Labels of the device's own images equal nsa_label's: binary exactly, others to float32 rounding."""
    for b, (image, plan) in enumerate(zip(images, plans, strict=True)):
        expected = nsa_label(out[b], image, [p.record.dst_box for p in plan], task.label, task.preset.y0,
                             task.preset.k)
        if task.label == "binary":
            np.testing.assert_array_equal(labels[b], expected)
        else:
            np.testing.assert_allclose(labels[b], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("label, ellipses", [("logistic", 0), ("binary", 3), ("continuous", 0)],
                         ids=["logistic-rect", "binary-ellipses", "continuous-rect"])
def test_real_bottle_crops_match_the_cpu_engine(bottle_images, label, ellipses):
    images = [centre_crop(image) for image in bottle_images]
    sources = images[1:] + images[:1]
    task = NSA(BOTTLE, label=label, ellipses=ellipses)
    plans, references = plans_and_references(task, images, sources)
    assert sum(len(p) for p in plans) >= len(images)
    out, labels, _ = run_on_device(task, images, plans)
    difference = np.abs(out.astype(np.int64) - np.stack([r.image for r in references]))
    assert difference.max() <= 1 and difference.mean() < 1e-3
    changed = np.stack([r.image for r in references]) != np.stack(images)
    assert changed.mean() > 0.02                          # the patches really changed the images
    check_labels_follow_nsa_label(task, images, out, labels, plans)
    exact = [b for b in range(len(images)) if np.array_equal(out[b], references[b].image)]
    for b in exact:                                       # same image, same label as the CPU engine
        np.testing.assert_allclose(labels[b], references[b].label, rtol=1e-5, atol=1e-5)
    assert len(exact) >= len(images) // 3


@pytest.mark.parametrize("preset, dtype, channels, paste", [
    (BOTTLE, np.uint8, 3, True), (CARPET, np.uint8, 3, False), (DEFAULT, np.uint16, 1, False),
    (CARPET, np.uint16, 3, False),
], ids=["paste", "mixed-rgb", "normal-gray16", "mixed-rgb16"])
def test_synthetic_images_match_the_cpu_engine(preset, dtype, channels, paste):
    images = [smooth_image(96, 112, channels, dtype, seed) for seed in range(6)]
    sources = [smooth_image(96, 112, channels, dtype, seed + 50) for seed in range(6)]
    task = NSA(preset, label="logistic", paste=paste, ellipses=2 if paste else 0)
    plans, references = plans_and_references(task, images, sources, seed=7)
    assert sum(len(p) for p in plans) >= 6
    out, labels, _ = run_on_device(task, images, plans)
    reference = np.stack([r.image for r in references])
    assert np.abs(out.astype(np.int64) - reference).max() <= 1
    if paste:
        np.testing.assert_array_equal(out, reference)
        np.testing.assert_array_equal(labels, np.stack([r.label for r in references]))
    else:
        check_labels_follow_nsa_label(task, images, out, labels, plans)


def test_size_groups_do_not_change_the_result():
    images = [smooth_image(80, 80, 3, np.uint8, seed) for seed in range(8)]
    task = NSA(DEFAULT)
    plans, _ = plans_and_references(task, images, images[::-1])
    grouped, grouped_labels, _ = run_on_device(task, images, plans, group_ratio=1.2)
    single, _, _ = run_on_device(task, images, plans, group_ratio=None)
    assert np.abs(grouped.astype(int) - single).max() <= 1
    check_labels_follow_nsa_label(task, images, grouped, grouped_labels, plans)


def test_empty_plans_leave_the_images_and_give_zero_labels():
    images = [smooth_image(64, 64, 3, np.uint8, seed) for seed in range(3)]
    out, labels, batch = run_on_device(NSA(DEFAULT), images, [(), (), ()])
    np.testing.assert_array_equal(out, np.stack(images))
    assert labels.shape == (3, 64, 64) and not labels.any()
    assert batch["plan"]["boxes"].shape == (3, 0, 4)


def test_collate_offsets_and_padding():
    images = [smooth_image(80, 80, 3, np.uint8, seed) for seed in range(4)]
    task = NSA(DEFAULT)
    plans, _ = plans_and_references(task, images, images[::-1], seed=3)
    packed = [pack_plan(p) for p in plans]
    plan = collate_plans([{"plan": p, "index": i} for i, p in enumerate(packed)])["plan"]
    counts = [len(p) for p in plans]
    assert plan["count"].tolist() == counts and plan["boxes"].shape == (4, max(counts), 4)
    for b, p in enumerate(plans):
        for slot, planned in enumerate(p):
            x, y, w, h = plan["boxes"][b, slot].tolist()
            start = int(plan["pixel_offsets"][b, slot])
            pixels = plan["pixels"][start:start + 3 * h * w].numpy().reshape(3, h, w).transpose(1, 2, 0)
            dst = planned.record.dst_box
            np.testing.assert_array_equal(pixels, planned.patch[y - dst.y0:y - dst.y0 + h, x - dst.x0:x - dst.x0 + w])
            start = int(plan["mask_offsets"][b, slot])
            mask = plan["masks"][start:start + h * w].numpy().reshape(h, w)
            assert mask.all() if not task.ellipses else mask.any()   # rectangles: the mask's box is all inside
            assert plan["label_boxes"][b, slot].tolist() == dst.as_list()
        assert not plan["boxes"][b, len(p):].any()


# -- labels on tensors against nsa_label -------------------------------------------------------------

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), height=st.integers(12, 40), width=st.integers(12, 40),
       channels=st.sampled_from([1, 3]), dtype=st.sampled_from([np.uint8, np.uint16]),
       kind=st.sampled_from(["binary", "continuous", "logistic"]))
def test_label_batch_equals_nsa_label(seed, height, width, channels, dtype, kind):
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    original = rng.integers(0, top, (height, width, channels), dtype=dtype, endpoint=True)
    image = original.copy()
    boxes = []
    for _ in range(int(rng.integers(1, 4))):
        x0, y0 = int(rng.integers(0, width - 2)), int(rng.integers(0, height - 2))
        box = Box(x0, y0, int(rng.integers(x0 + 1, width + 1)), int(rng.integers(y0 + 1, height + 1)))
        boxes.append(box)
        region = image[box.slices()]
        step = int(rng.integers(0, 40)) * (1 if dtype == np.uint8 else 257)
        noise = rng.integers(-step, step + 1, region.shape)
        image[box.slices()] = np.clip(region.astype(np.int64) + noise, 0, top).astype(dtype)
    image[rng.random((height, width)) < 0.05] = original[0, 0]       # changes outside the boxes are ignored
    expected = nsa_label(image, original, boxes, kind, y0=15.0, k=1 / 6)
    batch = torch.tensor([[b.x0, b.y0, b.x1, b.y1] for b in boxes])[None]
    got = nsa_label_batch(torch.from_numpy(image.transpose(2, 0, 1).copy())[None],
                          torch.from_numpy(original.transpose(2, 0, 1).copy())[None], batch,
                          torch.tensor([len(boxes)]), kind, y0=15.0, k=1 / 6)[0].numpy()
    if kind == "binary" or dtype == np.uint8 and kind == "continuous":
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), height=st.integers(1, 30), width=st.integers(1, 30),
       sparsity=st.floats(0.0, 0.9))
def test_median_disk_at_equals_scipy(seed, height, width, sparsity):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 20, (2, height, width)).astype(np.float32) * (rng.random((2, height, width)) > sparsity)
    where = rng.random((2, height, width)) < 0.5
    got = median_disk_at(torch.from_numpy(values), torch.from_numpy(where)).numpy()
    for b in range(2):
        expected = ndimage.median_filter(values[b], footprint=disk(5), mode="reflect")
        np.testing.assert_array_equal(got[b][where[b]], expected[where[b]])
        assert not got[b][~where[b]].any()


def test_boxes_mask_reference():
    boxes = torch.tensor([[[1, 0, 3, 2], [0, 3, 1, 4]], [[2, 2, 4, 4], [0, 0, 4, 4]]])
    mask = boxes_mask(boxes, torch.tensor([2, 1]), 4, 4).numpy().astype(int)
    np.testing.assert_array_equal(mask[0], [[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(mask[1], [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]])


def test_binary_label_reference_at_the_image_corner():
    # A 2x2 change in the corner. With SciPy's reflect border (row -1 is row 0, row -2 is row 1) the
    # 5x5 window at (r, c) holds R(r) R(c) changed pixels, R = 4, 3, 2, 1, 0 for r = 0..4, so only
    # (0, 0) reaches 13 (16). Reflect-101 (R = 3, 3, ...) or zero padding would give no pixel at all.
    original = np.zeros((10, 10, 1), np.uint8)
    image = original.copy()
    image[:2, :2] = 9
    got = nsa_label_batch(torch.from_numpy(image.transpose(2, 0, 1).copy())[None],
                          torch.from_numpy(original.transpose(2, 0, 1).copy())[None],
                          torch.tensor([[[0, 0, 10, 10]]]), torch.tensor([1]), "binary")[0].numpy()
    np.testing.assert_array_equal(np.argwhere(got), [[0, 0]])
    np.testing.assert_array_equal(got, nsa_label(image, original, [Box(0, 0, 10, 10)], "binary"))


# -- rejections -------------------------------------------------------------------------------------

def one_example():
    image = smooth_image(80, 80, 3, np.uint8, 0)
    plan = NSA(DEFAULT).plan(image, image[::-1].copy(), rng=np.random.default_rng(1))
    batch = collate_plans([{"image": torch.from_numpy(image.transpose(2, 0, 1).copy()), "plan": pack_plan(plan)}])
    return batch["image"], batch["plan"]


@pytest.mark.parametrize("change, error, message", [
    (dict(mode="poisson"), ValueError, r"unknown plan mode 'poisson'"),
    (dict(label="logstic"), ValueError, r"unknown label kind 'logstic'.*Did you mean 'logistic'"),
    (dict(group_ratio=0.5), ValueError, r"group_ratio must be at least 1 or None, got 0.5"),
], ids=["mode", "label", "group_ratio"])
def test_apply_plan_rejects_bad_options(change, error, message):
    images, plan = one_example()
    with pytest.raises(error, match=message):
        apply_plan(images, plan, **{"mode": "normal", **change})


def test_apply_plan_rejects_bad_images():
    images, plan = one_example()
    with pytest.raises(TypeError, match="images must be uint8 or uint16, got torch.float32"):
        apply_plan(images.float(), plan, mode="normal")
    with pytest.raises(ValueError, match=r"images must be \(B, C, H, W\), got shape \(3, 80, 80\)"):
        apply_plan(images[0], plan, mode="normal")
    with pytest.raises(ValueError, match="the plan is for 1 images, got 2"):
        apply_plan(images.repeat(2, 1, 1, 1), plan, mode="normal")


def test_collate_and_pack_reject_bad_input():
    with pytest.raises(ValueError, match="needs a non-empty list of dicts with a 'plan' key"):
        collate_plans([{"image": torch.zeros(1)}])
    with pytest.raises(ValueError, match=r"plan 0 lacks \['masks'\]"):
        collate_plans([{"plan": {"boxes": np.zeros((0, 4)), "label_boxes": np.zeros((0, 4)),
                                 "pixels": np.zeros(0, np.uint8)}}])
    image = smooth_image(80, 80, 3, np.uint8, 0)
    planned = NSA(DEFAULT).plan(image, image, rng=np.random.default_rng(1))[0]
    bad = type(planned)(planned.record, planned.patch[:-1], planned.mask[:-1])
    with pytest.raises(ValueError, match="must both cover the"):
        pack_plan([bad])
    gray = type(planned)(planned.record, planned.patch[:, :, :1].copy(), planned.mask)
    with pytest.raises(ValueError, match="patches must share channels and dtype, got 1 uint8 after 3 uint8"):
        pack_plan([planned, gray])
    packed = pack_plan([planned])
    with pytest.raises(ValueError, match=r"plan 0: \d+ pixels and \d+ mask values do not match its boxes'"):
        collate_plans([{"plan": {**packed, "masks": packed["masks"][1:]}}])
    with pytest.raises(ValueError, match=r"plans must share one pixel dtype, got \['uint16', 'uint8'\]"):
        collate_plans([{"plan": packed}, {"plan": {**packed, "pixels": packed["pixels"].astype(np.uint16)}}])
    with pytest.raises(ValueError, match="must match"):
        nsa_label_batch(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), torch.zeros(1, 1, 4, 4, dtype=torch.uint8),
                        torch.zeros(1, 0, 4), torch.zeros(1), "binary")


@needs_cuda
def test_cuda_matches_the_cpu_engine():
    images = [smooth_image(128, 128, 3, np.uint8, seed) for seed in range(16)]
    for task in (NSA(BOTTLE, label="logistic"), NSA(CARPET, label="continuous", ellipses=3)):
        plans, references = plans_and_references(task, images, images[::-1])
        out, labels, _ = run_on_device(task, images, plans, device="cuda")
        assert np.abs(out.astype(np.int64) - np.stack([r.image for r in references])).max() <= 1
        check_labels_follow_nsa_label(task, images, out, labels, plans)
