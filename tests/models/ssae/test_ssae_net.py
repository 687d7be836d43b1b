"""Bauer's SDC autoencoder (Bauer 2022, Table 1): layers, shapes, configuration."""


import pytest
import torch

from nsad.models.ssae import (
    SSAEConfig,
    SSAENet,
    StackedDilatedConv,
)

pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")

TINY = dict(base_channels=4, sdc_blocks=1, sdc_kernel_size=3)


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


