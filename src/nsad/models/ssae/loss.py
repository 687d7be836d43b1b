"""Bauer's training objectives (Bauer 2022, Sec. 3.1, eqs. 1-3) on reconstructions of distorted images.

The autoencoder is fed ``X̂``, a normal image ``X`` with a region ``M`` replaced by an elastically
deformed copy of itself (:mod:`nsad.synth.elastic`), and trained to give back ``X``:

- objective (1) (:func:`masked_loss`) weights the reconstruction error on the untouched region
  ``M̄`` and on the modified region ``M`` by ``λ`` and ``1 - λ``, each normalised by its area;
- objective (3) (:func:`change_weighted_loss`) instead *rewards* error in the modified region,
  weighted by the real-valued mask ``|X̂ - X|`` (objective (2) is the same with the binary ``M``).
"""

from __future__ import annotations

from typing import Literal

import torch

from nsad._checks import check_choice, check_range

ErrorKind = Literal["squared", "norm"]
ERROR_KINDS: tuple[str, ...] = ("squared", "norm")
OBJECTIVES: tuple[int, ...] = (1, 2, 3)




def _broadcast_mask(name: str, mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if mask.ndim == 3:
        mask = mask[:, None]
    if (
        mask.ndim != 4
        or mask.shape[0] != like.shape[0]
        or mask.shape[-2:] != like.shape[-2:]
        or mask.shape[1] not in (1, like.shape[1])
    ):
        raise ValueError(
            f"{name} must have shape (B, 1, H, W), (B, H, W) or (B, C, H, W) matching "
            f"{tuple(like.shape)}, got {tuple(mask.shape)}"
        )
    return mask.to(like.dtype).expand_as(like)


def _weighted_term(weights: torch.Tensor, error: torch.Tensor, kind: str) -> torch.Tensor:
    """Per image ``||W ⊙ e||₂^q / ||W||₁`` (q = 2 for ``squared``, 1 for ``norm``); 0 where ``W`` is empty."""
    numerator = (weights * error).square().flatten(1).sum(dim=1)
    if kind == "norm":
        numerator = numerator.sqrt()
    area = weights.abs().flatten(1).sum(dim=1)
    return torch.where(
        area > 0, numerator / area.clamp_min(torch.finfo(area.dtype).tiny), torch.zeros_like(area)
    )


def _check_pair(reconstruction: torch.Tensor, target: torch.Tensor, lam: float, error: str) -> None:
    if reconstruction.ndim != 4 or reconstruction.shape != target.shape:
        raise ValueError(
            f"reconstruction and target must be (B, C, H, W) of the same shape, got "
            f"{tuple(reconstruction.shape)} and {tuple(target.shape)}"
        )
    check_range("lam", lam, 0.0, 1.0)
    check_choice("error", error, ERROR_KINDS)


def masked_loss(
    reconstruction: torch.Tensor,
    target: torch.Tensor,
    region: torch.Tensor,
    lam: float = 0.5,
    error: ErrorKind = "squared",
) -> torch.Tensor:
    """Objective (1) of Bauer 2022: reconstruct the untouched region and restore the modified one.

    ``L(X̂, X) = λ / ||M̄||₁ · ||M̄ ⊙ (F(X̂) - X)||₂ + (1 - λ) / ||M||₁ · ||M ⊙ (F(X̂) - X)||₂``   (1)

    with ``M`` the modified region (broadcast over the C channels, so ``||M||₁`` counts C values
    per pixel, as the paper's ``M ∈ {0, 1}^{n x m x 3}``) and ``M̄ = 1 - M``. With
    ``error="norm"`` this is eq. (1) literally; with ``error="squared"`` (default) each L2 norm is
    squared, so each term is the mean squared error over its region (for a binary ``M``) and the
    loss does not depend on the region's size. A term whose region is empty is 0. The loss is
    computed per image and averaged over the batch. The paper finds ``λ = 0.5`` works well (Sec. 4.4).

    Args:
        reconstruction: (B, C, H, W) ``F(X̂)``.
        target: (B, C, H, W) the clean image ``X``.
        region: (B, 1, H, W), (B, H, W) or (B, C, H, W) mask ``M``, 1 where ``X̂`` was modified.
        lam: ``λ`` in [0, 1].
        error: ``squared`` or ``norm``.

    Returns:
        Scalar loss.

    Raises:
        ValueError: for mismatched shapes, ``lam`` outside [0, 1] or an unknown ``error``.

    Example:
        A reconstruction that is exact outside the region and off by 1 inside it costs ``1 - λ``:

        >>> import torch
        >>> region = torch.zeros(1, 1, 4, 4)
        >>> region[..., :2] = 1
        >>> target = region.expand(1, 3, 4, 4)
        >>> masked_loss(torch.zeros(1, 3, 4, 4), target, region, lam=0.25)
        tensor(0.7500)
    """
    _check_pair(reconstruction, target, lam, error)
    region = _broadcast_mask("region", region, reconstruction)
    diff = reconstruction - target
    loss = lam * _weighted_term(1.0 - region, diff, error) + (1.0 - lam) * _weighted_term(region, diff, error)
    return loss.mean()


def change_weighted_loss(
    reconstruction: torch.Tensor,
    target: torch.Tensor,
    region: torch.Tensor,
    change: torch.Tensor,
    lam: float = 0.5,
    error: ErrorKind = "squared",
) -> torch.Tensor:
    """Objective (3) of Bauer 2022: reconstruct the untouched region, amplify the error where ``X̂`` changed.

    ``L(X̂, X) = λ / ||M̄||₁ · ||M̄ ⊙ (F(X̂) - X)||₂ - (1 - λ) / ||X̂ - X||₁ · || |X̂ - X| ⊙ (F(X̂) - X) ||₂``   (3)

    The minus sign rewards a large reconstruction error in the modified area, and weighting it by
    ``|X̂ - X|`` instead of ``M`` (objective (2), which is this function with ``change=region``)
    stops the network from pushing error where the distortion changed nothing. ``error``, the
    broadcasting and the empty-region rule are as in :func:`masked_loss`; the loss is negative
    when the second term dominates.

    Args:
        reconstruction: (B, C, H, W) ``F(X̂)``.
        target: (B, C, H, W) the clean image ``X``.
        region: mask ``M`` as in :func:`masked_loss` (defines ``M̄``).
        change: (B, 1, H, W), (B, H, W) or (B, C, H, W) ``|X̂ - X|`` in [0, 1].
        lam: ``λ`` in [0, 1].
        error: ``squared`` or ``norm``.

    Returns:
        Scalar loss.

    Raises:
        ValueError: for mismatched shapes, ``lam`` outside [0, 1] or an unknown ``error``.
    """
    _check_pair(reconstruction, target, lam, error)
    region = _broadcast_mask("region", region, reconstruction)
    change = _broadcast_mask("change", change, reconstruction)
    diff = reconstruction - target
    loss = lam * _weighted_term(1.0 - region, diff, error) - (1.0 - lam) * _weighted_term(change, diff, error)
    return loss.mean()


def ssae_loss(
    reconstruction: torch.Tensor,
    target: torch.Tensor,
    region: torch.Tensor,
    objective: int = 1,
    lam: float = 0.5,
    change: torch.Tensor | None = None,
    error: ErrorKind = "squared",
) -> torch.Tensor:
    """Objective (1), (2) or (3) of Bauer 2022 (see :func:`masked_loss`, :func:`change_weighted_loss`).

    Args:
        reconstruction: (B, C, H, W) ``F(X̂)``.
        target: (B, C, H, W) the clean image ``X``.
        region: mask ``M`` as in :func:`masked_loss`.
        objective: 1, 2 (eq. 3 with the binary ``M`` as weight) or 3.
        lam: ``λ`` in [0, 1].
        change: ``|X̂ - X|`` as in :func:`change_weighted_loss`, required for objective 3.
        error: ``squared`` or ``norm``.

    Raises:
        ValueError: for an unknown ``objective``, a missing ``change`` for objective 3, or the
            errors of the objective functions.
    """
    if isinstance(objective, bool) or objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
    if objective == 1:
        return masked_loss(reconstruction, target, region, lam, error)
    if objective == 2:
        return change_weighted_loss(reconstruction, target, region, region, lam, error)
    if change is None:
        raise ValueError("objective 3 needs change = |X̂ - X| (B, 1 or C, H, W); got None")
    return change_weighted_loss(reconstruction, target, region, change, lam, error)

