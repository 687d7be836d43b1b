"""The NSA authors' bottleneck and decoder as a network option (``NetConfig(decoder="authors")``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nsad.models import AnomalyNet, NetConfig, count_parameters, load_run, save_run
from nsad.models.runfile import RunMetadata


def test_authors_network_has_their_shape_and_parameter_count():
    net = AnomalyNet(decoder="authors").eval()
    assert count_parameters(net) == 11_498_096                     # 11.50 M, as the authors' network
    bottleneck = list(net.bottleneck.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in bottleneck)
    convs = [m for m in bottleneck if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(512, 256, (1, 1)), (256, 128, (1, 1))]
    assert all(c.bias is not None for c in convs) and sum(isinstance(m, nn.ReLU) for m in bottleneck) == 2
    head = net.authors_decoder.head
    assert isinstance(head, nn.ConvTranspose2d) and head.kernel_size == (7, 7) and head.stride == (2, 2)
    assert head.bias is None and head.out_channels == 1
    seen = {}
    net.authors_decoder.blocks.register_forward_hook(lambda module, args, out: seen.setdefault("blocks", out))
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        logits = net(images)
        assert seen["blocks"].shape == (2, 16, 56, 56)               # three transposed blocks: 7 -> 56 px
        upsampled = nn.functional.interpolate(seen["blocks"], scale_factor=2.0, mode="bilinear", align_corners=True)
        torch.testing.assert_close(logits, head(upsampled))          # bilinear x2 (corners aligned), then the head
    assert logits.shape == (2, 1, 224, 224)


def test_authors_network_takes_any_size_and_one_channel():
    net = AnomalyNet(decoder="authors", in_channels=1).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 70, 100)).shape == (1, 1, 70, 100)


def test_authors_decoder_round_trips_through_the_run_files(tmp_path):
    net = AnomalyNet(decoder="authors").eval()
    metadata = RunMetadata(method="nsa-logistic", net=net.config, preset="mvtec/bottle", preset_values={},
                           resize_hw=(64, 64), crop_hw=(56, 56), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    save_run(tmp_path, net, metadata)
    loaded = load_run(tmp_path)
    assert loaded.metadata.net.decoder == "authors"
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.net.eval()(images), net(images))
    assert NetConfig.from_dict({"in_channels": 3}).decoder == "nsad"            # runs written before the option


def test_authors_decoder_rejects_options_it_does_not_have():
    with pytest.raises(ValueError, match="decoder='authors' has its own fixed widths"):
        NetConfig(decoder="authors", skip_connections=True)
    with pytest.raises(ValueError, match="unknown decoder 'author'"):
        NetConfig(decoder="author")
