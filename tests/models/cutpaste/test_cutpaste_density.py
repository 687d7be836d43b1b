import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from scipy.spatial.distance import mahalanobis
from sklearn.covariance import LedoitWolf

from nsad.models.cutpaste.density import GaussianDensity, estimate_ledoit_wolf


def _data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    # Correlated features with different scales and a non-zero mean.
    mixing = rng.normal(size=(d, d)) * rng.uniform(0.1, 3.0, size=d)
    return rng.normal(size=(n, d)) @ mixing + rng.normal(scale=5.0, size=d)


@pytest.mark.parametrize(
    "n, d", [(10, 20), (200, 5), (50, 50), (7, 1)], ids=["n<d", "n>d", "n=d", "one-feature"]
)
def test_ledoit_wolf_matches_sklearn(n, d):
    data = _data(n, d)
    reference = LedoitWolf().fit(data)
    mean, covariance, shrinkage = estimate_ledoit_wolf(data, chunk_size=3)  # chunked sums
    np.testing.assert_allclose(mean, reference.location_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(covariance, reference.covariance_, rtol=1e-10, atol=1e-12)
    assert shrinkage == pytest.approx(reference.shrinkage_, rel=1e-10, abs=1e-14)
    if n < d:
        assert 0 < shrinkage <= 1  # more dimensions than samples: the covariance must be shrunk


def test_ledoit_wolf_on_torch_returns_tensors():
    data = _data(30, 4)
    mean, covariance, shrinkage = estimate_ledoit_wolf(torch.tensor(data, dtype=torch.float32))
    assert isinstance(mean, torch.Tensor) and mean.dtype == torch.float64
    reference = LedoitWolf().fit(data.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(covariance.numpy(), reference.covariance_, rtol=1e-9, atol=1e-12)
    assert shrinkage == pytest.approx(reference.shrinkage_)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_score_is_scipy_mahalanobis_with_sklearn_covariance(kind):
    train, test = _data(40, 16, seed=1), _data(6, 16, seed=2)
    reference = LedoitWolf().fit(train)
    inverse = np.linalg.inv(reference.covariance_)
    expected = np.array([mahalanobis(x, reference.location_, inverse) for x in test])
    convert = (lambda a: a) if kind == "numpy" else torch.tensor
    density = GaussianDensity.fit(convert(train))
    scores = density.score(convert(test))
    assert isinstance(scores, np.ndarray if kind == "numpy" else torch.Tensor)
    np.testing.assert_allclose(np.asarray(scores), expected, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(density.score(convert(test), squared=True)), expected**2, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(density.log_density(convert(test))), -0.5 * expected**2, rtol=1e-9)


def test_score_accepts_any_leading_shape():
    density = GaussianDensity.fit(_data(20, 3))
    grid = _data(2 * 4 * 5, 3, seed=3)
    scores = density.score(grid.reshape(2, 4, 5, 3))
    assert scores.shape == (2, 4, 5)
    np.testing.assert_allclose(scores.reshape(-1), density.score(grid))


def test_mean_scores_zero_and_outliers_score_higher():
    train = _data(100, 8)
    density = GaussianDensity.fit(train)
    assert density.score(train.mean(axis=0, keepdims=True))[0] == pytest.approx(0.0, abs=1e-6)
    inlier, outlier = train[:1], train[:1] + 100.0 * train.std(axis=0)
    assert density.score(outlier)[0] > 10 * density.score(inlier)[0]


def test_state_dict_round_trips_through_safetensors():
    density = GaussianDensity.fit(_data(25, 6))
    restored = GaussianDensity.from_state_dict(load_safetensors(save_safetensors(density.state_dict())))
    test = _data(4, 6, seed=9)
    np.testing.assert_array_equal(restored.score(test), density.score(test))
    assert restored.shrinkage == density.shrinkage and restored.dim == 6


def test_from_state_dict_accepts_numpy_arrays():
    density = GaussianDensity.fit(_data(25, 3))
    state = {k: v.numpy() for k, v in density.state_dict().items()}
    np.testing.assert_array_equal(GaussianDensity.from_state_dict(state).mean.numpy(), density.mean.numpy())


def test_fit_rejects_bad_embeddings():
    with pytest.raises(ValueError, match=r"at least 2 rows"):
        GaussianDensity.fit(np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        GaussianDensity.fit(np.zeros(4))
    with pytest.raises(ValueError, match="finite"):
        GaussianDensity.fit(np.array([[0.0, 1.0], [np.nan, 2.0]]))
    with pytest.raises(TypeError, match="numpy array or a torch tensor, got list"):
        GaussianDensity.fit([[0.0, 1.0], [1.0, 2.0]])
    with pytest.raises(TypeError, match="real numbers"):
        GaussianDensity.fit(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match="chunk_size must be a positive int, got 0"):
        estimate_ledoit_wolf(np.zeros((3, 2)), chunk_size=0)


def test_score_rejects_wrong_dimension_and_nan():
    density = GaussianDensity.fit(_data(10, 3))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\), got \(2, 4\)"):
        density.score(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="finite"):
        density.score(np.array([[np.inf, 0.0, 0.0]]))


def test_state_rejections():
    density = GaussianDensity.fit(_data(10, 3))
    state = density.state_dict()
    with pytest.raises(ValueError, match=r"missing \['shrinkage'\], unknown \['extra'\]"):
        GaussianDensity.from_state_dict({"mean": state["mean"], "precision": state["precision"], "extra": 1})
    with pytest.raises(ValueError, match=r"mean must be \(D,\) and precision \(D, D\)"):
        GaussianDensity(mean=torch.zeros(3), precision=torch.eye(2))
    with pytest.raises(ValueError, match=r"shrinkage must be in \[0.0, 1.0\], got 1.5"):
        GaussianDensity(mean=torch.zeros(2), precision=torch.eye(2), shrinkage=1.5)
    with pytest.raises(TypeError, match="mean must be a torch tensor"):
        GaussianDensity(mean=np.zeros(2), precision=torch.eye(2))
