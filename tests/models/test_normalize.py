"""The torch normalisation (training device, exported graphs) against the NumPy one (loaders, runtime)."""

import numpy as np
import pytest
import torch

from nsad.data.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize_tensor
from nsad.models.normalize import Normalize


@pytest.mark.parametrize("normalization, channels", [("imagenet", 3), ("unit", 3), ("unit", 1)])
def test_normalize_equals_numpy_bit_for_bit(normalization, channels):
    x = np.random.default_rng(0).random((2, channels, 5, 7), dtype=np.float32)
    got = Normalize(normalization, channels)(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(got, normalize_tensor(x, normalization))


def test_imagenet_is_the_published_statistics():
    x = torch.zeros(1, 3, 1, 1)
    got = Normalize("imagenet", 3)(x).flatten().numpy()
    np.testing.assert_allclose(got, [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225], rtol=1e-6)
    np.testing.assert_allclose(IMAGENET_MEAN, [0.485, 0.456, 0.406], rtol=1e-6)
    np.testing.assert_allclose(IMAGENET_STD, [0.229, 0.224, 0.225], rtol=1e-6)


def test_normalize_refuses_bad_settings():
    with pytest.raises(ValueError, match="3 channels"):
        Normalize("imagenet", 1)
    with pytest.raises(ValueError, match="normalization"):
        Normalize("zscore", 3)
