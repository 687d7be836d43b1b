import pytest
import torch
import torchvision

from nsad.models.net import AnomalyNet, NetConfig, count_parameters, logits_to_anomaly_map

# Measured once and pinned so that an architecture change is deliberate: ResNet-18 without fc
# (11_176_512) + bottleneck 512->256->128 + decoder (128, 64, 32, 16, 16) + head.
N_PARAMS_RGB = 11_797_937


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {c: AnomalyNet(in_channels=c) for c in (1, 3)}


@pytest.mark.parametrize("channels", [1, 3], ids=["gray", "rgb"])
@pytest.mark.parametrize(
    "size",
    [(64, 64), (96, 96), (224, 224), (100, 100), (70, 130), (33, 7)],
    ids=["64", "96", "224", "100-not-mult-32", "70x130", "33x7"],
)
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_shape_contract(nets, channels, size, training):
    net = nets[channels].train(training)
    with torch.no_grad():
        out = net(torch.randn(2, channels, *size))
    assert isinstance(out, torch.Tensor)
    assert out.shape == (2, 1, *size) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_non_multiple_size_is_padded_by_replication_and_cropped(nets):
    net = nets[3].eval()
    images = torch.randn(1, 3, 100, 70)
    padded = torch.nn.functional.pad(images, (0, 26, 0, 28), mode="replicate")
    with torch.no_grad():
        torch.testing.assert_close(net(images), net(padded)[..., :100, :70])


def test_parameter_count_is_about_11_million(nets):
    n_rgb = count_parameters(nets[3])
    assert 11_000_000 <= n_rgb <= 12_000_000
    assert n_rgb == N_PARAMS_RGB
    # the encoder is torchvision's ResNet-18 without its fc layer
    encoder = sum(
        count_parameters(m)
        for m in (nets[3].stem, nets[3].layer1, nets[3].layer2, nets[3].layer3, nets[3].layer4)
    )
    assert encoder == count_parameters(torchvision.models.resnet18(weights=None)) - (512 * 1000 + 1000)
    # one input channel changes only conv1: 64 * 2 * 7 * 7 fewer weights
    assert count_parameters(nets[1]) == N_PARAMS_RGB - 64 * 2 * 7 * 7
    assert nets[1].stem[0].weight.shape == (64, 1, 7, 7)


def test_trainable_only_excludes_frozen_parameters():
    net = AnomalyNet()
    for p in net.stem.parameters():
        p.requires_grad_(False)
    assert count_parameters(net, trainable_only=True) == N_PARAMS_RGB - count_parameters(net.stem)


def test_skip_connections_shape_and_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    net = AnomalyNet(skip_connections=True).train()
    out = net(torch.randn(2, 3, 64, 96))
    assert out.shape == (2, 1, 64, 96)
    out.mean().backward()
    assert [name for name, p in net.named_parameters() if p.grad is None] == []
    assert len(net.skips) == 4


def test_building_never_downloads(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("AnomalyNet tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", forbidden)
    monkeypatch.setattr(torch.hub, "download_url_to_file", forbidden)
    AnomalyNet(in_channels=1)


@pytest.mark.parametrize("label_kind", ["bounded", "continuous"])
def test_anomaly_map_applies_the_final_activation(label_kind):
    logits = torch.tensor([[[[-2.0, 0.0], [1.0, 3.0]]]])
    expected = (
        torch.sigmoid(logits[:, 0]) if label_kind == "bounded" else torch.tensor([[[0.0, 0.0], [1.0, 3.0]]])
    )
    torch.testing.assert_close(logits_to_anomaly_map(logits, label_kind), expected)
    torch.testing.assert_close(
        logits_to_anomaly_map(logits[:, 0].bfloat16(), label_kind), expected, atol=2e-2, rtol=0
    )
    assert logits_to_anomaly_map(logits.bfloat16(), label_kind).dtype == torch.float32

    net = AnomalyNet(label_kind=label_kind).eval()
    with torch.no_grad():
        maps = net.anomaly_map(torch.randn(2, 3, 64, 64))
    assert maps.shape == (2, 64, 64)
    assert maps.min() >= 0 and (label_kind == "continuous" or maps.max() <= 1)


def test_config_round_trip():
    config = NetConfig(
        in_channels=1, label_kind="continuous", decoder_channels=[64, 32, 32, 16, 8], skip_connections=True
    )
    assert config.decoder_channels == (64, 32, 32, 16, 8)
    assert NetConfig.from_dict(config.to_dict()) == config
    assert AnomalyNet(config).config is config


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"in_channels": 2}, ValueError, r"in_channels must be 1 or 3, got 2"),
        (
            {"label_kind": "binary"},
            ValueError,
            r"unknown label_kind 'binary'; choose one of \['bounded', 'continuous'\]",
        ),
        ({"label_kind": "bounde"}, ValueError, r"Did you mean 'bounded'\?"),
        (
            {"decoder_channels": (64, 32)},
            ValueError,
            r"decoder_channels must be a sequence of 5 positive ints",
        ),
        (
            {"bottleneck_channels": (256, 0)},
            ValueError,
            r"bottleneck_channels must be a sequence of 2 positive",
        ),
        ({"skip_connections": "yes"}, TypeError, r"skip_connections must be a bool, got 'yes'"),
    ],
    ids=["channels", "label-kind", "label-kind-hint", "decoder", "bottleneck", "skips"],
)
def test_config_rejects_bad_values(options, error, match):
    with pytest.raises(error, match=match):
        NetConfig(**options)


def test_rejections():
    with pytest.raises(ValueError, match=r"unknown network config keys \['depth'\]"):
        NetConfig.from_dict({"in_channels": 3, "depth": 18})
    with pytest.raises(TypeError, match=r"give either config or keyword options, not both"):
        AnomalyNet(NetConfig(), in_channels=3)
    net = AnomalyNet(in_channels=1)
    with pytest.raises(ValueError, match=r"images must have shape \(B, 1, H, W\), got \(2, 3, 64, 64\)"):
        net(torch.zeros(2, 3, 64, 64))
    with pytest.raises(
        ValueError, match=r"logits must have shape \(B, 1, H, W\) or \(B, H, W\), got \(2, 2, 4, 4\)"
    ):
        logits_to_anomaly_map(torch.zeros(2, 2, 4, 4), "bounded")


def test_a_standardising_net_ignores_a_parts_brightness_and_contrast():
    torch.manual_seed(0)
    net = AnomalyNet(in_channels=1, standardize_input=True).eval()
    plain = AnomalyNet(in_channels=1).eval()
    plain.load_state_dict(net.state_dict())  # the same weights: the option adds no parameters
    images = torch.rand(2, 1, 64, 96)
    changed = 0.6 * images + 0.3  # darker contrast, brighter level
    with torch.no_grad():
        moved = (net(changed) - net(images)).abs().max()
        assert moved < 1e-3 * (plain(changed) - plain(images)).abs().max()  # without it the logits follow the change
        assert torch.isfinite(net(torch.full((1, 1, 64, 64), 0.5))).all()  # a flat image: no division by 0
    assert NetConfig.from_dict(NetConfig(standardize_input=True).to_dict()).standardize_input
    assert NetConfig.from_dict({k: v for k, v in NetConfig().to_dict().items() if k != "standardize_input"}
                               ) == NetConfig()  # run.json files written before the option still load
