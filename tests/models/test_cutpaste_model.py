import math

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from nsad.models.cutpaste import (
    CUTPASTE_CLASSES,
    DEFAULT_HEAD_DIMS,
    CutPasteConfig,
    CutPasteModule,
    CutPasteNet,
    embed_patches,
    num_classes_for,
    patch_anomaly_map,
    patch_positions,
)
from nsad.models.density import GaussianDensity

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


@pytest.mark.parametrize(
    "size, patch, stride, expected",
    [(256, 64, 4, list(range(0, 193, 4))), (10, 4, 3, [0, 3, 6]), (12, 4, 3, [0, 3, 6, 8]), (5, 5, 2, [0])],
    ids=["paper-256-64-4", "fits", "last-flush", "one-patch"],
)
def test_patch_positions(size, patch, stride, expected):
    assert patch_positions(size, patch, stride).tolist() == expected


def test_patch_positions_rejections():
    with pytest.raises(ValueError, match="patch_size must not exceed the image side 8, got 9"):
        patch_positions(8, 9, 1)
    with pytest.raises(ValueError, match="stride must be a positive int, got 0"):
        patch_positions(8, 4, 0)


def test_embed_patches_takes_every_grid_patch():
    images = torch.arange(2 * 3 * 10 * 12, dtype=torch.float32).reshape(2, 3, 10, 12)
    embeddings = embed_patches(
        lambda p: p.reshape(p.shape[0], -1), images, patch_size=4, stride=3, batch_size=5
    )
    rows, cols = patch_positions(10, 4, 3), patch_positions(12, 4, 3)
    assert embeddings.shape == (2, len(rows), len(cols), 3 * 4 * 4)
    for b in range(2):
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                torch.testing.assert_close(
                    embeddings[b, i, j], images[b, :, r : r + 4, c : c + 4].reshape(-1)
                )


def test_embed_patches_with_the_network():
    module = CutPasteModule(num_classes=3, head_dims=SMALL_HEAD)
    embeddings = embed_patches(module.embed, torch.randn(1, 3, 48, 40), patch_size=32, stride=8)
    assert embeddings.shape == (1, 3, 2, 512) and torch.isfinite(embeddings).all()
    assert module.net.training  # embed ran in eval mode and restored the mode


def test_patch_anomaly_map_reference_values():
    # H=3, W=4, 2x2 patches, stride 2: row offsets [0, 1], column offsets [0, 2]. Row 1 is covered
    # by both row patches, so it gets their mean: [[1, 1, 2, 2], [(1+3)/2, ..., (2+4)/2], [3, 3, 4, 4]].
    scores = np.array([[1.0, 2.0], [3.0, 4.0]])
    expected = np.array([[1, 1, 2, 2], [2, 2, 3, 3], [3, 3, 4, 4]], np.float32)
    np.testing.assert_array_equal(
        patch_anomaly_map(scores, (3, 4), patch_size=2, stride=2, sigma_px=0), expected
    )
    batched = patch_anomaly_map(torch.tensor(np.stack([scores, 2 * scores])), (3, 4), 2, 2, sigma_px=0)
    np.testing.assert_array_equal(batched, np.stack([expected, 2 * expected]))


def test_patch_anomaly_map_smoothing_keeps_constant_maps():
    smoothed = patch_anomaly_map(np.full((2, 5, 5), 7.0), (24, 24), patch_size=8, stride=4, sigma_px=3.0)
    assert smoothed.shape == (2, 24, 24) and smoothed.dtype == np.float32
    np.testing.assert_allclose(smoothed, 7.0, rtol=1e-6)


def test_patch_anomaly_map_rejections():
    with pytest.raises(
        ValueError, match=r"patch_scores must have shape \(B, 2, 2\) or \(2, 2\).*got \(3, 2\)"
    ):
        patch_anomaly_map(np.zeros((3, 2)), (3, 4), 2, 2)
    with pytest.raises(ValueError, match="sigma_px must be a finite number >= 0, got -1"):
        patch_anomaly_map(np.zeros((2, 2)), (3, 4), 2, 2, sigma_px=-1)
    with pytest.raises(ValueError, match="patch_scores must be finite"):
        patch_anomaly_map(np.full((2, 2), np.nan), (3, 4), 2, 2)


def test_anomalous_patch_lights_up_its_place():
    # Normal images: a smooth gradient plus noise; the test image has a bright 8x8 square at rows
    # 36-43, columns 28-35. Embedding = per-channel mean and std of a patch (cheap, no network).
    rng = np.random.default_rng(0)
    ramp = np.linspace(0.0, 0.5, 64, dtype=np.float32)[None, None, None, :]

    def make(n):
        return torch.tensor(ramp + 0.05 * rng.standard_normal((n, 3, 64, 64)).astype(np.float32))

    def stats(patches):
        return torch.cat([patches.mean(dim=(2, 3)), patches.std(dim=(2, 3))], dim=1)

    patch, stride = 16, 4
    normal = embed_patches(stats, make(8), patch, stride)
    density = GaussianDensity.fit(normal.reshape(-1, normal.shape[-1]))
    test = make(1)
    test[:, :, 36:44, 28:36] += 1.0
    scores = density.score(embed_patches(stats, test, patch, stride))
    anomaly_map = patch_anomaly_map(scores, (64, 64), patch, stride, sigma_px=4.0)[0]
    y, x = np.unravel_index(np.argmax(anomaly_map), anomaly_map.shape)
    assert 36 <= y < 44 and 28 <= x < 36
    inside, outside = anomaly_map[36:44, 28:36].mean(), anomaly_map[:16].mean()
    assert inside > 5 * outside


class RandomClasses(Dataset):
    def __init__(self, n=6, size=32, num_classes=3):
        gen = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, size, size, generator=gen)
        self.targets = torch.arange(n) % num_classes

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return {"image": self.images[index], "target": self.targets[index]}


class LrRecorder(L.Callback):
    def __init__(self):
        self.lrs = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


@pytest.mark.parametrize("num_classes", [2, 3], ids=["binary", "3way"])
def test_module_trains_a_few_steps(tmp_path, num_classes):
    torch.manual_seed(0)
    module = CutPasteModule(num_classes=num_classes, head_dims=SMALL_HEAD)
    recorder = LrRecorder()
    trainer = L.Trainer(
        max_steps=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[recorder],
    )
    before = [p.detach().clone() for p in module.parameters()]
    trainer.fit(module, DataLoader(RandomClasses(num_classes=num_classes), batch_size=3))
    loss = trainer.callback_metrics["train_loss_step"]
    assert math.isfinite(float(loss))
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["momentum"] == 0.9 and optimizer.defaults["weight_decay"] == 3e-5
    assert recorder.lrs[0] == pytest.approx(0.03)
    assert recorder.lrs[0] > recorder.lrs[1] > recorder.lrs[2]  # cosine decay per step


def test_module_rejections():
    with pytest.raises(ValueError, match="lr must be positive, got 0"):
        CutPasteModule(lr=0)
    with pytest.raises(ValueError, match=r"lr_min must be in \[0, lr=0.03\], got 0.1"):
        CutPasteModule(lr_min=0.1)
    with pytest.raises(ValueError, match="unknown embedding layer 'fc'"):
        CutPasteModule(embedding_layer="fc")
    module = CutPasteModule(head_dims=SMALL_HEAD)
    with pytest.raises(TypeError, match=r"'image' and 'target' keys, got \['image', 'label'\]"):
        module.training_step({"image": torch.zeros(2, 3, 32, 32), "label": torch.zeros(2)}, 0)
    with pytest.raises(ValueError, match=r"target must have shape \(2,\), got \(2, 1\)"):
        module.training_step({"image": torch.zeros(2, 3, 32, 32), "target": torch.zeros(2, 1)}, 0)


def test_module_embeds_with_the_head_when_asked():
    module = CutPasteModule(head_dims=SMALL_HEAD, embedding_layer="head")
    assert module.embed(torch.randn(2, 3, 32, 32)).shape == (2, 16)
    assert module.predict_step({"image": torch.randn(2, 3, 32, 32)}, 0).shape == (2, 16)
