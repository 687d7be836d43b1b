"""CutPaste's localisation: the patch grid, patch embeddings and the receptive-field map."""


import numpy as np
import pytest
import torch

from nsad.models.cutpaste import (
    CutPasteModule,
    embed_patches,
    patch_anomaly_map,
    patch_positions,
)
from nsad.models.cutpaste.density import GaussianDensity

SMALL_HEAD = (32, 16)

pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")


@pytest.mark.parametrize(
    "size, patch, stride, expected",
    [(256, 64, 4, list(range(0, 193, 4))), (10, 4, 3, [0, 3, 6]), (12, 4, 3, [0, 3, 6, 8]), (5, 5, 2, [0])],
    ids=["paper-256-64-4", "fits", "last-flush", "one-patch"],
)
def test_patch_positions(size, patch, stride, expected):
    assert patch_positions(size, patch, stride).tolist() == expected


def test_patch_positions_rejections():
    with pytest.raises(ValueError, match="patch_size must not exceed the image side 8, got 9"):
        patch_positions(8, 9, 1)
    with pytest.raises(ValueError, match="stride must be a positive int, got 0"):
        patch_positions(8, 4, 0)


def test_embed_patches_takes_every_grid_patch():
    images = torch.arange(2 * 3 * 10 * 12, dtype=torch.float32).reshape(2, 3, 10, 12)
    embeddings = embed_patches(
        lambda p: p.reshape(p.shape[0], -1), images, patch_size=4, stride=3, batch_size=5
    )
    rows, cols = patch_positions(10, 4, 3), patch_positions(12, 4, 3)
    assert embeddings.shape == (2, len(rows), len(cols), 3 * 4 * 4)
    for b in range(2):
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                torch.testing.assert_close(
                    embeddings[b, i, j], images[b, :, r : r + 4, c : c + 4].reshape(-1)
                )


def test_embed_patches_with_the_network():
    module = CutPasteModule(num_classes=3, head_dims=SMALL_HEAD)
    embeddings = embed_patches(module.embed, torch.randn(1, 3, 48, 40), patch_size=32, stride=8)
    assert embeddings.shape == (1, 3, 2, 512) and torch.isfinite(embeddings).all()
    assert module.net.training  # embed ran in eval mode and restored the mode


def test_patch_anomaly_map_reference_values():
    # H=3, W=4, 2x2 patches, stride 2: row offsets [0, 1], column offsets [0, 2]. Row 1 is covered
    # by both row patches, so it gets their mean: [[1, 1, 2, 2], [(1+3)/2, ..., (2+4)/2], [3, 3, 4, 4]].
    scores = np.array([[1.0, 2.0], [3.0, 4.0]])
    expected = np.array([[1, 1, 2, 2], [2, 2, 3, 3], [3, 3, 4, 4]], np.float32)
    np.testing.assert_array_equal(
        patch_anomaly_map(scores, (3, 4), patch_size=2, stride=2, sigma_px=0), expected
    )
    batched = patch_anomaly_map(torch.tensor(np.stack([scores, 2 * scores])), (3, 4), 2, 2, sigma_px=0)
    np.testing.assert_array_equal(batched, np.stack([expected, 2 * expected]))


def test_patch_anomaly_map_smoothing_keeps_constant_maps():
    smoothed = patch_anomaly_map(np.full((2, 5, 5), 7.0), (24, 24), patch_size=8, stride=4, sigma_px=3.0)
    assert smoothed.shape == (2, 24, 24) and smoothed.dtype == np.float32
    np.testing.assert_allclose(smoothed, 7.0, rtol=1e-6)


def test_patch_anomaly_map_rejections():
    with pytest.raises(
        ValueError, match=r"patch_scores must have shape \(B, 2, 2\) or \(2, 2\).*got \(3, 2\)"
    ):
        patch_anomaly_map(np.zeros((3, 2)), (3, 4), 2, 2)
    with pytest.raises(ValueError, match="sigma_px must be a finite number >= 0, got -1"):
        patch_anomaly_map(np.zeros((2, 2)), (3, 4), 2, 2, sigma_px=-1)
    with pytest.raises(ValueError, match="patch_scores must be finite"):
        patch_anomaly_map(np.full((2, 2), np.nan), (3, 4), 2, 2)


def test_anomalous_patch_lights_up_its_place():
    # Normal images: a smooth gradient plus noise; the test image has a bright 8x8 square at rows
    # 36-43, columns 28-35. Embedding = per-channel mean and std of a patch (cheap, no network).
    rng = np.random.default_rng(0)
    ramp = np.linspace(0.0, 0.5, 64, dtype=np.float32)[None, None, None, :]

    def make(n):
        return torch.tensor(ramp + 0.05 * rng.standard_normal((n, 3, 64, 64)).astype(np.float32))

    def stats(patches):
        return torch.cat([patches.mean(dim=(2, 3)), patches.std(dim=(2, 3))], dim=1)

    patch, stride = 16, 4
    normal = embed_patches(stats, make(8), patch, stride)
    density = GaussianDensity.fit(normal.reshape(-1, normal.shape[-1]))
    test = make(1)
    test[:, :, 36:44, 28:36] += 1.0
    scores = density.score(embed_patches(stats, test, patch, stride))
    anomaly_map = patch_anomaly_map(scores, (64, 64), patch, stride, sigma_px=4.0)[0]
    y, x = np.unravel_index(np.argmax(anomaly_map), anomaly_map.shape)
    assert 36 <= y < 44 and 28 <= x < 36
    inside, outside = anomaly_map[36:44, 28:36].mean(), anomaly_map[:16].mean()
    assert inside > 5 * outside
