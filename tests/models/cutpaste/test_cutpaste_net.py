"""CutPaste's network: classes, shapes, the default head, configuration."""


import pytest
import torch

from nsad.models.cutpaste import (
    CUTPASTE_CLASSES,
    DEFAULT_HEAD_DIMS,
    CutPasteConfig,
    CutPasteNet,
    num_classes_for,
)

SMALL_HEAD = (32, 16)

pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")


@pytest.mark.parametrize(
    "method, classes", [("cutpaste-binary", 2), ("cutpaste-scar", 2), ("cutpaste-3way", 3)]
)
def test_num_classes_for(method, classes):
    assert num_classes_for(method) == classes == len(CUTPASTE_CLASSES[method])
    assert CUTPASTE_CLASSES[method][0] == "normal"


def test_num_classes_for_suggests_closest():
    with pytest.raises(
        ValueError, match=r"unknown CutPaste method 'cutpaste-3-way'.*Did you mean 'cutpaste-3way'"
    ):
        num_classes_for("cutpaste-3-way")


@pytest.mark.parametrize(
    "channels, classes, size", [(3, 3, 64), (1, 2, 48)], ids=["rgb-3way", "gray-binary-48px"]
)
def test_net_shapes(channels, classes, size):
    net = CutPasteNet(in_channels=channels, num_classes=classes, head_dims=SMALL_HEAD).eval()
    images = torch.randn(2, channels, size, size)
    encoded, projected, logits = net.features(images)
    assert logits.shape == (2, classes) and encoded.shape == (2, 512) and projected.shape == (2, 16)
    torch.testing.assert_close(net(images), logits)
    torch.testing.assert_close(net.embed(images), encoded)
    torch.testing.assert_close(net.embed(images, layer="head"), projected)


def test_default_head_is_eight_512_layers_and_128():
    net = CutPasteNet()
    linear = [m for m in net.head if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == list(DEFAULT_HEAD_DIMS) == [512] * 8 + [128]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in net.head) == 9
    assert net.classifier.in_features == 128 and net.classifier.out_features == 3


def test_config_round_trip_and_rejections():
    config = CutPasteConfig(in_channels=1, num_classes=2, head_dims=[8, 4])
    assert CutPasteConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="num_classes must be 2 .* or 3 .*, got 4"):
        CutPasteConfig(num_classes=4)
    with pytest.raises(ValueError, match="in_channels must be 1 or 3, got 2"):
        CutPasteConfig(in_channels=2)
    with pytest.raises(
        ValueError, match="head_dims must be a non-empty sequence of positive ints, got \\(\\)"
    ):
        CutPasteConfig(head_dims=())
    with pytest.raises(ValueError, match=r"unknown CutPaste config keys \['depth'\]"):
        CutPasteConfig.from_dict({"depth": 3})
    with pytest.raises(TypeError, match="either config or keyword options"):
        CutPasteNet(config, num_classes=3)


def test_net_rejects_bad_inputs():
    net = CutPasteNet(head_dims=SMALL_HEAD).eval()
    with pytest.raises(ValueError, match=r"images must have shape \(B, 3, H, W\), got \(2, 1, 64, 64\)"):
        net(torch.zeros(2, 1, 64, 64))
    with pytest.raises(ValueError, match="at least 32x32 pixels"):
        net(torch.zeros(2, 3, 16, 64))
    with pytest.raises(ValueError, match=r"unknown embedding layer 'pool'"):
        net.embed(torch.zeros(2, 3, 32, 32), layer="pool")
