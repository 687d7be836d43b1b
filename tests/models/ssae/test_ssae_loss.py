"""Bauer's objectives (1)-(3) against NumPy transcriptions of the equations."""


import numpy as np
import pytest
import torch

from nsad.models.ssae import (
    change_weighted_loss,
    masked_loss,
    ssae_loss,
)

pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")

TINY = dict(base_channels=4, sdc_blocks=1, sdc_kernel_size=3)


def _arrays(seed=0, b=2, c=3, h=5, w=6):
    rng = np.random.default_rng(seed)
    recon, target, distorted = rng.random((3, b, c, h, w))
    region = np.zeros((b, 1, h, w))
    region[0, :, 1:3, 2:5] = 1
    region[1, :, 3:5, 0:2] = 1
    distorted = np.where(region > 0, distorted, target)
    return recon, target, region, distorted


def _eq_term(weights, diff, kind):
    # ||W ⊙ e||₂^q / ||W||₁ per image, with W broadcast to the channels.
    weights = np.broadcast_to(weights, diff.shape)
    numerator = ((weights * diff) ** 2).sum(axis=(1, 2, 3))
    numerator = numerator if kind == "squared" else np.sqrt(numerator)
    return numerator / np.abs(weights).sum(axis=(1, 2, 3))


@pytest.mark.parametrize("kind", ["squared", "norm"])
@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_objective_1_equals_numpy(kind, lam):
    recon, target, region, _ = _arrays()
    diff = recon - target
    expected = (lam * _eq_term(1 - region, diff, kind) + (1 - lam) * _eq_term(region, diff, kind)).mean()
    got = masked_loss(*(torch.tensor(a) for a in (recon, target, region)), lam=lam, error=kind)
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_objective_1_squared_is_regional_mse():
    # With a binary region and squared errors the terms are the mean squared errors of the regions.
    recon, target, region, _ = _arrays()
    full = np.broadcast_to(region, recon.shape).astype(bool)
    sq = (recon - target) ** 2
    per_image = [0.5 * sq[i][~full[i]].mean() + 0.5 * sq[i][full[i]].mean() for i in range(2)]
    got = masked_loss(*(torch.tensor(a) for a in (recon, target, region)))
    assert float(got) == pytest.approx(np.mean(per_image), rel=1e-12)


@pytest.mark.parametrize("kind", ["squared", "norm"])
def test_objective_3_equals_numpy(kind):
    recon, target, region, distorted = _arrays(seed=1)
    change = np.abs(distorted - target)  # per channel, as in the paper
    diff = recon - target
    lam = 0.7
    expected = (lam * _eq_term(1 - region, diff, kind) - (1 - lam) * _eq_term(change, diff, kind)).mean()
    tensors = [torch.tensor(a) for a in (recon, target, region, change)]
    got = change_weighted_loss(*tensors, lam=lam, error=kind)
    assert float(got) == pytest.approx(expected, rel=1e-12)
    assert float(ssae_loss(*tensors[:3], objective=3, lam=lam, change=tensors[3], error=kind)) == float(got)


def test_objective_2_is_objective_3_weighted_by_the_region():
    recon, target, region, _ = _arrays(seed=2)
    diff = recon - target
    expected = (0.5 * _eq_term(1 - region, diff, "squared") - 0.5 * _eq_term(region, diff, "squared")).mean()
    got = ssae_loss(*(torch.tensor(a) for a in (recon, target, region)), objective=2)
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_region_broadcasts_like_a_full_channel_mask():
    recon, target, region, _ = _arrays(seed=3)
    tensors = [torch.tensor(a) for a in (recon, target)]
    narrow = masked_loss(*tensors, torch.tensor(region), lam=0.4, error="norm")
    wide = masked_loss(
        *tensors, torch.tensor(np.broadcast_to(region, recon.shape).copy()), lam=0.4, error="norm"
    )
    no_channel = masked_loss(*tensors, torch.tensor(region[:, 0]).bool(), lam=0.4, error="norm")
    assert float(narrow) == float(wide) == float(no_channel)


def test_empty_region_term_is_zero():
    recon, target, _, _ = _arrays(seed=4)
    empty = torch.zeros(2, 1, 5, 6)
    got = masked_loss(torch.tensor(recon), torch.tensor(target), empty, lam=0.5)
    assert float(got) == pytest.approx(0.5 * ((recon - target) ** 2).mean(axis=(1, 2, 3)).mean(), rel=1e-12)


def test_objectives_have_gradients():
    recon = torch.rand(1, 3, 8, 8, requires_grad=True)
    target, region = torch.rand(1, 3, 8, 8), (torch.rand(1, 1, 8, 8) > 0.7).float()
    ssae_loss(recon, target, region, objective=3, change=(torch.rand(1, 1, 8, 8) * region)).backward()
    assert torch.isfinite(recon.grad).all() and recon.grad.abs().sum() > 0


def test_objective_rejections():
    recon, target, region = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4), torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"lam must be in \[0.0, 1.0\], got 1.5"):
        masked_loss(recon, target, region, lam=1.5)
    with pytest.raises(ValueError, match="unknown error 'l1'"):
        masked_loss(recon, target, region, error="l1")
    with pytest.raises(ValueError, match=r"region must have shape .* got \(1, 2, 4, 4\)"):
        masked_loss(recon, target, torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="same shape"):
        masked_loss(recon, target[:, :1], region)
    with pytest.raises(ValueError, match=r"objective must be one of \[1, 2, 3\], got 4"):
        ssae_loss(recon, target, region, objective=4)
    with pytest.raises(ValueError, match="objective 3 needs change"):
        ssae_loss(recon, target, region, objective=3)


