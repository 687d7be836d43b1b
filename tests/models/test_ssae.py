import math

import lightning as L
import numpy as np
import pytest
import scipy.ndimage
import torch
from torch.utils.data import DataLoader, Dataset

from nsad.models.ssae import (
    SSAEConfig,
    SSAEModule,
    SSAENet,
    StackedDilatedConv,
    change_weighted_loss,
    gaussian_blur,
    masked_loss,
    reconstruction_anomaly_map,
    ssae_loss,
)
from nsad.postprocess import DefectThreshold, calibrate_threshold, largest_component_area, segment_defects

pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")

TINY = dict(base_channels=4, sdc_blocks=1, sdc_kernel_size=3)

# ---------------------------------------------------------------------------------------------- network


def test_default_network_is_table_1():
    net = SSAENet()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    sdc = [m for m in net.modules() if isinstance(m, StackedDilatedConv)]
    assert len(sdc) == 4 and all(len(block.branches) == 5 for block in sdc)
    assert [b[0].dilation[0] for b in sdc[0].branches] == [1, 2, 4, 8, 16]
    assert all(
        b[0].out_channels == 64 and b[0].kernel_size == (5, 5) for block in sdc for b in block.branches
    )
    assert sdc[1].branches[0][0].in_channels == 320  # 64 x 5 concatenated
    encoder = [m.out_channels for m in net.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert encoder == [32, 32, 64, 64, 128, 128]
    decoder = [
        m.out_channels
        for m in net.decoder.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
    ]
    assert decoder == [256, 256, 256, 128, 128, 128, 64, 64, 64, 32]
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in net.modules()) == 3
    assert net.head.kernel_size == (1, 1) and net.head.out_channels == 3
    assert len(convs) == 6 + 20 + 7 + 1


@pytest.mark.parametrize(
    "channels, size", [(3, (32, 48)), (1, (36, 52))], ids=["rgb-multiple-of-8", "gray-padded"]
)
def test_network_shape_and_range(channels, size):
    net = SSAENet(in_channels=channels, **TINY).eval()
    out = net(torch.rand(2, channels, *size))
    assert out.shape == (2, channels, *size)
    assert 0 < out.min() and out.max() < 1


def test_internal_standardisation_is_applied():
    torch.manual_seed(0)
    plain = SSAENet(**TINY).eval()
    standardised = SSAENet(
        SSAEConfig(**TINY, input_mean=(0.5, 0.5, 0.5), input_std=(0.25, 0.25, 0.25))
    ).eval()
    standardised.load_state_dict(plain.state_dict())
    images = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(standardised(images), plain((images - 0.5) / 0.25))


def test_config_round_trip_and_rejections():
    config = SSAEConfig(in_channels=1, base_channels=8, dilations=[1, 3], input_mean=[0.4], input_std=[0.2])
    assert SSAEConfig.from_dict(config.to_dict()) == config
    assert config.sdc_width == 16
    with pytest.raises(ValueError, match="sdc_kernel_size must be odd"):
        SSAEConfig(sdc_kernel_size=4)
    with pytest.raises(ValueError, match="give both input_mean and input_std or neither"):
        SSAEConfig(input_mean=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match=r"input_std must be None or 3 finite numbers"):
        SSAEConfig(input_mean=(0.5, 0.5, 0.5), input_std=(0.2,))
    with pytest.raises(ValueError, match="dilations must be a sequence of at least 1 positive ints"):
        SSAEConfig(dilations=(1, 0))
    with pytest.raises(ValueError, match=r"unknown SSAE config keys \['width'\]"):
        SSAEConfig.from_dict({"width": 3})
    with pytest.raises(ValueError, match=r"images must have shape \(B, 3, H, W\), got \(1, 1, 8, 8\)"):
        SSAENet(**TINY)(torch.zeros(1, 1, 8, 8))


# -------------------------------------------------------------------------------------------- objectives


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


# --------------------------------------------------------------------------------------------- heatmap


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


# ---------------------------------------------------------------------------------- threshold protocol


def _constructed_map():
    # 12x12 zeros with: a 3x3 block of 5 (9 px), a 2x2 block of 7 (4 px), one pixel of 9.
    m = np.zeros((12, 12))
    m[0:3, 0:3] = 5
    m[5:7, 5:7] = 7
    m[10, 10] = 9
    return m


@pytest.mark.parametrize("min_area, threshold", [(1, 9.0), (2, 7.0), (4, 7.0), (5, 5.0), (9, 5.0), (10, 0.0)])
def test_calibrate_threshold_constructed(min_area, threshold):
    # {> 0}: components of 9, 4, 1 px; {> 5}: 4, 1 px; {> 7}: 1 px; {> 9}: nothing.
    rule = calibrate_threshold(_constructed_map(), min_area=min_area)
    assert rule == DefectThreshold(threshold=threshold, min_area=min_area, connectivity=8)
    assert not segment_defects(_constructed_map(), rule).any()  # normal images: no defect


@pytest.mark.parametrize("connectivity, threshold", [(8, 3.0), (4, 0.0)])
def test_calibrate_threshold_connectivity(connectivity, threshold):
    m = np.zeros((6, 6))
    m[1, 1] = m[2, 2] = 3  # diagonal neighbours: one 2-px component with 8-connectivity, two 1-px with 4
    assert calibrate_threshold(m, min_area=2, connectivity=connectivity).threshold == threshold


def test_calibrate_threshold_uses_the_worst_validation_map():
    quiet, loud = np.zeros((8, 8)), np.zeros((8, 8))
    quiet[0:2, 0:2] = 3.0  # 4 px, high
    loud[4:7, 4:7] = 2.0  # 9 px, lower
    # min_area 5: the loud map's 9 px must go (t >= 2), the quiet map's 4 px may stay.
    assert calibrate_threshold([quiet, loud], min_area=5).threshold == 2.0
    # min_area 4: the quiet map's 4 px must go too (t >= 3).
    assert calibrate_threshold(torch.tensor(np.stack([quiet, loud])), min_area=4).threshold == 3.0
    assert calibrate_threshold([quiet, loud], min_area=10).threshold == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_calibrate_threshold_equals_linear_scan(seed):
    rng = np.random.default_rng(seed)
    maps = scipy.ndimage.gaussian_filter(rng.random((3, 16, 16)), (0, 1.5, 1.5))
    maps = np.round(maps, 3)  # ties
    min_area = int(rng.integers(2, 30))
    scan = next(t for t in np.unique(maps) if all(largest_component_area(m > t) < min_area for m in maps))
    assert calibrate_threshold(maps, min_area).threshold == scan


def test_segment_defects_removes_small_components():
    rule = DefectThreshold(threshold=4.0, min_area=4)
    segmentation = segment_defects(_constructed_map(), rule)
    expected = np.zeros((12, 12), bool)
    expected[0:3, 0:3] = True
    expected[5:7, 5:7] = True  # 4 px >= min_area: kept; the single pixel is dropped
    np.testing.assert_array_equal(segmentation, expected)
    batch = segment_defects(np.stack([_constructed_map(), np.zeros((12, 12))]), rule)
    assert batch.shape == (2, 12, 12) and batch[0].sum() == 13 and not batch[1].any()


def test_threshold_rejections():
    with pytest.raises(ValueError, match="min_area must be a positive int .*, got 0"):
        calibrate_threshold(np.zeros((4, 4)), min_area=0)
    with pytest.raises(ValueError, match="connectivity must be 4 or 8, got 6"):
        calibrate_threshold(np.zeros((4, 4)), min_area=2, connectivity=6)
    with pytest.raises(ValueError, match="validation_maps must be finite"):
        calibrate_threshold(np.full((4, 4), np.nan), min_area=2)
    with pytest.raises(ValueError, match=r"validation_maps must have shape \(N, H, W\)"):
        calibrate_threshold(np.zeros(4), min_area=2)
    with pytest.raises(TypeError, match="rule must be a DefectThreshold"):
        segment_defects(np.zeros((4, 4)), (0.5, 3))
    with pytest.raises(ValueError, match="threshold must be finite"):
        DefectThreshold(threshold=float("inf"), min_area=3)


# ------------------------------------------------------------------------------------- Lightning module


class RandomDistortions(Dataset):
    def __init__(self, n=4, size=24, with_change=True):
        gen = torch.Generator().manual_seed(0)
        self.targets = torch.rand(n, 3, size, size, generator=gen)
        self.regions = torch.zeros(n, 1, size, size)
        self.regions[:, :, 4:12, 6:14] = 1
        noise = torch.rand(n, 3, size, size, generator=gen)
        self.images = torch.where(self.regions > 0, noise, self.targets)
        self.with_change = with_change

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        item = {"image": self.images[index], "target": self.targets[index], "region": self.regions[index] > 0}
        if self.with_change:
            item["change"] = (self.images[index] - self.targets[index]).abs().mean(dim=0, keepdim=True)
        return item


@pytest.mark.parametrize(
    "objective, with_change",
    [(1, False), (3, True), (3, False)],
    ids=["eq1", "eq3-change", "eq3-derived-change"],
)
def test_module_trains_a_few_steps(tmp_path, objective, with_change):
    torch.manual_seed(0)
    module = SSAEModule(objective=objective, **TINY)
    trainer = L.Trainer(
        max_steps=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    before = [p.detach().clone() for p in module.parameters()]
    trainer.fit(module, DataLoader(RandomDistortions(with_change=with_change), batch_size=2))
    assert math.isfinite(float(trainer.callback_metrics["train_loss_step"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))
    assert isinstance(trainer.optimizers[0], torch.optim.Adam)
    maps = module.anomaly_map(torch.rand(2, 3, 24, 24))
    assert maps.shape == (2, 24, 24) and torch.isfinite(maps).all() and module.net.training


def test_module_rejections():
    with pytest.raises(ValueError, match=r"objective must be one of \[1, 2, 3\], got 0"):
        SSAEModule(objective=0)
    with pytest.raises(ValueError, match=r"lam must be in \[0.0, 1.0\], got -0.1"):
        SSAEModule(lam=-0.1)
    with pytest.raises(ValueError, match="lr must be positive"):
        SSAEModule(lr=0.0)
    with pytest.raises(ValueError, match="base_channels must be a positive int, got 0"):
        SSAEModule(base_channels=0)
    module = SSAEModule(**TINY)
    with pytest.raises(TypeError, match=r"keys \['image', 'target', 'region'\].*got \['image', 'target'\]"):
        module.training_step({"image": torch.rand(1, 3, 8, 8), "target": torch.rand(1, 3, 8, 8)}, 0)
