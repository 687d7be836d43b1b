"""Bauer's heatmap: channel-mean reconstruction error, smoothed like SciPy's Gaussian filter."""


import numpy as np
import pytest
import scipy.ndimage
import torch

from nsad.models.ssae import (
    gaussian_blur,
    reconstruction_anomaly_map,
)

pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")

TINY = dict(base_channels=4, sdc_blocks=1, sdc_kernel_size=3)


@pytest.mark.parametrize("sigma", [0.7, 2.0, 5.0])
def test_gaussian_blur_matches_scipy(sigma):
    maps = np.random.default_rng(0).random((2, 13, 19)).astype(np.float32)
    expected = np.stack([scipy.ndimage.gaussian_filter(m, sigma, mode="nearest") for m in maps])
    np.testing.assert_allclose(gaussian_blur(torch.tensor(maps), sigma).numpy(), expected, atol=1e-6)


def test_reconstruction_anomaly_map_equals_numpy():
    rng = np.random.default_rng(1)
    recon, image = rng.random((2, 2, 3, 12, 10)).astype(np.float32)
    expected = np.stack(
        [scipy.ndimage.gaussian_filter(m, 1.5, mode="nearest") for m in np.abs(recon - image).mean(axis=1)]
    )
    got = reconstruction_anomaly_map(torch.tensor(recon), torch.tensor(image), sigma_px=1.5)
    assert got.shape == (2, 12, 10) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)
    unsmoothed = reconstruction_anomaly_map(torch.tensor(recon), torch.tensor(image), sigma_px=0)
    np.testing.assert_allclose(unsmoothed.numpy(), np.abs(recon - image).mean(axis=1), atol=1e-7)


def test_heatmap_rejections():
    with pytest.raises(ValueError, match="sigma_px must be a finite number >= 0, got -1"):
        gaussian_blur(torch.zeros(1, 4, 4), -1)
    with pytest.raises(ValueError, match=r"maps must have shape \(B, H, W\)"):
        gaussian_blur(torch.zeros(4, 4), 1)
    with pytest.raises(ValueError, match="same shape"):
        reconstruction_anomaly_map(torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 4))


