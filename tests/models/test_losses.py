import math

import pytest
import torch

from nsad.models.loss import bce_loss, mse_loss, segmentation_loss


def eq15(logits, labels):
    """NSA paper eq. 15 written out: mean of -y log s - (1 - y) log(1 - s), s = sigmoid(logit)."""
    s = 1 / (1 + torch.exp(-logits.double()))
    y = labels.double()
    return (-y * torch.log(s) - (1 - y) * torch.log(1 - s)).mean()


def eq16(logits, labels):
    """NSA paper eq. 16 written out: mean of (y - relu(logit))^2."""
    return ((labels.double() - logits.double().clamp(min=0)) ** 2).mean()


def test_bce_reference_values():
    # sigmoid(0) = 0.5, so every pixel costs log 2 whatever its label
    logits = torch.zeros(1, 1, 2, 2)
    labels = torch.tensor([[[[0.0, 1.0], [0.25, 0.9]]]])
    assert bce_loss(logits, labels).item() == pytest.approx(math.log(2))
    # one pixel, logit log(3): s = 3/4, label 1 -> -log(3/4)
    assert bce_loss(torch.full((1, 1, 1, 1), math.log(3)), torch.ones(1, 1, 1, 1)).item() == pytest.approx(
        -math.log(0.75)
    )


def test_mse_reference_values():
    # relu([-1, 2]) = [0, 2]; ((0.5 - 0)^2 + (1 - 2)^2) / 2 = 0.625
    logits = torch.tensor([[[[-1.0, 2.0]]]])
    labels = torch.tensor([[[[0.5, 1.0]]]])
    assert mse_loss(logits, labels).item() == pytest.approx(0.625)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_losses_equal_the_papers_equations(seed):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 1, 5, 7, generator=gen) * 3
    bounded = torch.rand(3, 1, 5, 7, generator=gen)
    continuous = torch.rand(3, 5, 7, generator=gen) * 40  # (B, H, W) labels in intensity levels
    assert segmentation_loss(logits, bounded, "bounded").item() == pytest.approx(
        eq15(logits, bounded).item(), rel=1e-5
    )
    assert segmentation_loss(logits, continuous, "continuous").item() == pytest.approx(
        eq16(logits, continuous.unsqueeze(1)).item(), rel=1e-5
    )


def test_bce_is_stable_for_extreme_logits_and_low_precision():
    logits = torch.tensor([[[[100.0, -100.0]]]])
    assert bce_loss(logits, torch.tensor([[[[0.0, 1.0]]]])).item() == pytest.approx(100.0)
    assert bce_loss(logits, torch.tensor([[[[1.0, 0.0]]]])).item() == pytest.approx(0.0, abs=1e-30)
    loss = bce_loss(
        torch.zeros(1, 1, 2, 2, dtype=torch.bfloat16), torch.ones(1, 1, 2, 2, dtype=torch.bfloat16)
    )
    assert loss.dtype == torch.float32


def test_gradients_flow_to_logits_only_above_zero_for_mse():
    logits = torch.tensor([[[[-1.0, 2.0]]]], requires_grad=True)
    mse_loss(logits, torch.tensor([[[[0.5, 1.0]]]])).backward()
    # d/dl mean((y - relu(l))^2) = -(y - relu(l)) for l > 0 (mean over 2 pixels), 0 for l < 0
    torch.testing.assert_close(logits.grad, torch.tensor([[[[0.0, 1.0]]]]))


@pytest.mark.parametrize(
    "logits, labels, kind, error, match",
    [
        (
            torch.zeros(2, 1, 4, 4),
            torch.zeros(2, 1, 4, 5),
            "bounded",
            ValueError,
            r"labels must have shape \(2, 1, 4, 4\) or \(B, H, W\) to match the logits, got \(2, 1, 4, 5\)",
        ),
        (
            torch.zeros(2, 2, 4, 4),
            torch.zeros(2, 2, 4, 4),
            "continuous",
            ValueError,
            r"logits must have shape \(B, 1, H, W\), got \(2, 2, 4, 4\)",
        ),
        (
            torch.zeros(2, 1, 4, 4),
            torch.zeros(2, 4, 4, dtype=torch.long),
            "bounded",
            TypeError,
            r"labels must be a floating-point tensor, got torch.int64",
        ),
        (
            torch.zeros(2, 1, 4, 4),
            torch.zeros(2, 4, 4),
            "logistic",
            ValueError,
            r"unknown label_kind 'logistic'; choose one of \['bounded', 'continuous'\]",
        ),
    ],
    ids=["shape", "channels", "dtype", "kind"],
)
def test_rejections(logits, labels, kind, error, match):
    with pytest.raises(error, match=match):
        segmentation_loss(logits, labels, kind)
