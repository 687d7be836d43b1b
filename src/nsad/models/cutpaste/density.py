"""Gaussian density estimator on embeddings, with Ledoit-Wolf shrinkage (CutPaste paper, eq. 2).

CutPaste (Li et al., CVPR 2021), Sec. 2.3: a one-class classifier is built on the learned
representations ``f`` of the normal training images with a Gaussian density estimator (GDE),

    log p_gde(x) ∝ -1/2 (f(x) - µ)ᵀ Σ⁻¹ (f(x) - µ)                                    (eq. 2)

with ``µ`` and ``Σ`` learned from normal training data. The authors' implementation estimates
``Σ`` with Ledoit-Wolf shrinkage (as ``sklearn.covariance.LedoitWolf`` does), which keeps ``Σ``
invertible when there are fewer images than embedding dimensions (209 bottle images, 512-d
embeddings). The anomaly score is the Mahalanobis distance ``sqrt((f - µ)ᵀ Σ⁻¹ (f - µ))`` (the
square root of -2 times eq. 2's log-density up to a constant; the ranking, and so every AUROC, is
the same as for the squared distance, which :meth:`GaussianDensity.score` also gives with
``squared=True``).

Everything is computed in float64 with torch, on the device of the input, and returned in the
input's kind: NumPy in, NumPy out; a tensor in, a tensor out (on the same device). Nothing here
imports scikit-learn; the tests check the estimator against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor
STATE_KEYS: tuple[str, ...] = ("mean", "precision", "shrinkage")


def _to_float64(name: str, value: Any) -> tuple[torch.Tensor, bool]:
    """Return ``value`` as a float64 tensor and whether it came in as a NumPy array."""
    if isinstance(value, np.ndarray):
        if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
            raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float64)), True
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        return value.detach().to(torch.float64), False
    raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(value).__name__}")


def _check_embeddings(name: str, embeddings: torch.Tensor, min_rows: int) -> None:
    if embeddings.ndim != 2 or embeddings.shape[1] < 1:
        raise ValueError(f"{name} must have shape (N, D) with D >= 1, got {tuple(embeddings.shape)}")
    if embeddings.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (embeddings), got {embeddings.shape[0]}")
    if not bool(torch.isfinite(embeddings).all()):
        raise ValueError(f"{name} must be finite; it holds NaN or infinite values")


def estimate_ledoit_wolf(embeddings: ArrayLike, chunk_size: int = 65536) -> tuple[Any, Any, float]:
    """Estimate the mean and the Ledoit-Wolf shrunk covariance of ``embeddings``.

    With ``X`` the centred data (N rows), ``S = XᵀX / N`` the empirical (biased) covariance and
    ``m = trace(S) / D``, the shrunk covariance is ``(1 - s) S + s m I`` with shrinkage
    ``s = min(b, d) / d``, where ``d = ||S - m I||_F² / D`` and
    ``b = (Σ_k ||x_k||⁴ / N - ||S||_F²) / (D N)`` (Ledoit & Wolf, 2004, as scikit-learn's
    ``LedoitWolf`` computes it; ``s = 0`` for one feature or when ``b = 0``).

    The sums are accumulated over chunks of ``chunk_size`` rows, so many patch embeddings can be
    fitted without a float64 copy of them all.

    Args:
        embeddings: (N, D) real values, N >= 2, NumPy array or torch tensor.
        chunk_size: rows per chunk, >= 1.

    Returns:
        ``(mean, covariance, shrinkage)``: (D,) and (D, D) float64 in the input's kind (and device),
        and the shrinkage in [0, 1].

    Raises:
        TypeError: if ``embeddings`` is not a real NumPy array or tensor.
        ValueError: if it is not (N, D) with N >= 2, holds non-finite values, or ``chunk_size < 1``.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    data, was_numpy = _to_float64("embeddings", embeddings)
    _check_embeddings("embeddings", data, min_rows=2)
    n, dim = data.shape
    mean = torch.zeros(dim, dtype=torch.float64, device=data.device)
    for start in range(0, n, chunk_size):
        mean += data[start : start + chunk_size].sum(dim=0)
    mean /= n
    scatter = torch.zeros(dim, dim, dtype=torch.float64, device=data.device)
    fourth = torch.zeros((), dtype=torch.float64, device=data.device)  # Σ_k ||x_k||⁴ (sklearn's beta_)
    for start in range(0, n, chunk_size):
        centred = data[start : start + chunk_size] - mean
        scatter += centred.T @ centred
        fourth += (centred.square().sum(dim=1).square()).sum()
    emp_cov = scatter / n
    mu = torch.trace(emp_cov) / dim
    if dim == 1:
        shrinkage = 0.0
    else:
        frob = emp_cov.square().sum()  # ||S||_F² (sklearn's delta_)
        beta = (fourth / n - frob) / (dim * n)
        delta = (frob - 2.0 * mu * torch.trace(emp_cov) + dim * mu**2) / dim
        beta = torch.minimum(beta, delta)
        shrinkage = 0.0 if float(beta) == 0.0 else float(beta / delta)
    covariance = (1.0 - shrinkage) * emp_cov
    covariance.diagonal().add_(shrinkage * mu)
    if was_numpy:
        return mean.numpy(), covariance.numpy(), shrinkage
    return mean, covariance, shrinkage


@dataclass(frozen=True, eq=False)
class GaussianDensity:
    """A fitted Gaussian density on embeddings (CutPaste, eq. 2): mean and precision matrix.

    Build one with :meth:`fit`; score new embeddings with :meth:`score`. The state is three
    tensors (:meth:`state_dict`), ready for ``safetensors``.

    Attributes:
        mean: (D,) float64 mean ``µ`` of the training embeddings.
        precision: (D, D) float64 ``Σ⁻¹`` of the shrunk covariance (a pseudo-inverse for a
            singular covariance, which only happens without shrinkage).
        shrinkage: the Ledoit-Wolf shrinkage used, in [0, 1].

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> density = GaussianDensity.fit(rng.normal(size=(50, 4)))
        >>> round(density.shrinkage, 4), density.score(np.zeros((2, 4))).round(4)
        (0.8994, array([0.2124, 0.2124]))
        >>> float(density.score(density.mean.numpy()))  # the mean is the most normal embedding
        0.0
    """

    mean: torch.Tensor
    precision: torch.Tensor
    shrinkage: float = 0.0

    def __post_init__(self) -> None:
        for name in ("mean", "precision"):
            if not isinstance(getattr(self, name), torch.Tensor):
                raise TypeError(f"{name} must be a torch tensor, got {type(getattr(self, name)).__name__}")
        dim = self.mean.shape[0] if self.mean.ndim == 1 else -1
        if self.mean.ndim != 1 or dim < 1 or tuple(self.precision.shape) != (dim, dim):
            raise ValueError(
                f"mean must be (D,) and precision (D, D), got {tuple(self.mean.shape)} "
                f"and {tuple(self.precision.shape)}"
            )
        if not 0.0 <= float(self.shrinkage) <= 1.0:
            raise ValueError(f"shrinkage must be in [0.0, 1.0], got {self.shrinkage!r}")
        object.__setattr__(self, "mean", self.mean.detach().to(torch.float64))
        object.__setattr__(self, "precision", self.precision.detach().to(torch.float64))
        object.__setattr__(self, "shrinkage", float(self.shrinkage))

    @property
    def dim(self) -> int:
        """Embedding dimension D."""
        return int(self.mean.shape[0])

    @classmethod
    def fit(cls, embeddings: ArrayLike, chunk_size: int = 65536) -> GaussianDensity:
        """Fit ``µ`` and the Ledoit-Wolf shrunk ``Σ`` to normal embeddings (see :func:`estimate_ledoit_wolf`).

        Args:
            embeddings: (N, D) embeddings of normal training images (or patches), N >= 2.
            chunk_size: rows per chunk for the sums.

        Raises:
            TypeError: if ``embeddings`` is not a real NumPy array or tensor.
            ValueError: if it is not (N, D) with N >= 2 or holds non-finite values.
        """
        data, _ = _to_float64("embeddings", embeddings)
        mean, covariance, shrinkage = estimate_ledoit_wolf(data, chunk_size=chunk_size)
        precision = torch.linalg.pinv(covariance, hermitian=True)
        return cls(mean=mean, precision=precision, shrinkage=shrinkage)

    def to(self, device: torch.device | str) -> GaussianDensity:
        """Return a copy with ``mean`` and ``precision`` on ``device``."""
        return GaussianDensity(self.mean.to(device), self.precision.to(device), self.shrinkage)

    def score(self, embeddings: ArrayLike, squared: bool = False) -> Any:
        """Return the Mahalanobis distance of each embedding to the fitted Gaussian (higher: more anomalous).

        ``d(f) = sqrt((f - µ)ᵀ Σ⁻¹ (f - µ))``, i.e. ``sqrt(-2 log p_gde(f))`` up to a constant (eq. 2).

        Args:
            embeddings: (..., D) embeddings, any leading shape (e.g. (B, D) or a patch grid
                (B, nh, nw, D)), NumPy or torch.
            squared: return ``d²`` instead of ``d``.

        Returns:
            (...) float64 scores, NumPy for NumPy input, a tensor on the input's device otherwise.

        Raises:
            TypeError: if ``embeddings`` is not a real NumPy array or tensor.
            ValueError: if its last dimension is not D or it holds non-finite values.
        """
        data, was_numpy = _to_float64("embeddings", embeddings)
        if data.ndim < 1 or data.shape[-1] != self.dim:
            raise ValueError(f"embeddings must have shape (..., {self.dim}), got {tuple(data.shape)}")
        if not bool(torch.isfinite(data).all()):
            raise ValueError("embeddings must be finite; they hold NaN or infinite values")
        mean, precision = self.mean.to(data.device), self.precision.to(data.device)
        centred = data - mean
        squared_distance = ((centred @ precision) * centred).sum(dim=-1).clamp_min(0.0)
        result = squared_distance if squared else squared_distance.sqrt()
        return result.cpu().numpy() if was_numpy else result

    def log_density(self, embeddings: ArrayLike) -> Any:
        """Return eq. 2's unnormalised log-density ``-1/2 (f - µ)ᵀ Σ⁻¹ (f - µ)`` (kinds as :meth:`score`)."""
        return -0.5 * self.score(embeddings, squared=True)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Return ``{"mean": (D,), "precision": (D, D), "shrinkage": ()}`` float64 CPU tensors.

        The dict can be written with ``safetensors.torch.save`` as is.
        """
        return {
            "mean": self.mean.detach().cpu().contiguous(),
            "precision": self.precision.detach().cpu().contiguous(),
            "shrinkage": torch.tensor(self.shrinkage, dtype=torch.float64),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> GaussianDensity:
        """Rebuild a density from :meth:`state_dict`'s output (tensors or NumPy arrays).

        Raises:
            ValueError: if keys are missing or unknown, or the shapes do not fit together.
            TypeError: if a value is not an array or tensor.
        """
        missing = sorted(set(STATE_KEYS) - set(state))
        unknown = sorted(set(state) - set(STATE_KEYS))
        if missing or unknown:
            raise ValueError(
                f"a GaussianDensity state needs exactly the keys {list(STATE_KEYS)}; "
                f"missing {missing}, unknown {unknown}"
            )
        mean, _ = _to_float64("mean", state["mean"])
        precision, _ = _to_float64("precision", state["precision"])
        shrinkage, _ = _to_float64("shrinkage", state["shrinkage"])
        if shrinkage.numel() != 1:
            raise ValueError(f"shrinkage must be a scalar, got shape {tuple(shrinkage.shape)}")
        return cls(mean=mean, precision=precision, shrinkage=float(shrinkage.reshape(())))
