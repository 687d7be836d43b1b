import math

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from nsad.models.module import NSAModule
from nsad.models.net import NetConfig
from run_checks import lr_recorder, quiet_trainer

pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")


class RandomSegmentation(Dataset):
    """Tiny random images and labels in the batch format the module expects."""

    def __init__(self, n=4, size=64, channels=3, label_kind="bounded"):
        gen = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, channels, size, size, generator=gen)
        labels = (torch.rand(n, size, size, generator=gen) > 0.8).float()
        self.labels = labels if label_kind == "bounded" else labels * 30.0

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return {"image": self.images[index], "label": self.labels[index]}


@pytest.mark.parametrize(
    "label_kind, channels, precision, channels_last",
    [
        ("bounded", 3, "32-true", False),
        ("continuous", 1, "32-true", False),
        ("bounded", 3, "bf16-mixed", True),
    ],
    ids=["bce-rgb", "mse-gray", "bce-bf16-channels-last"],
)
def test_trains_a_few_steps_with_finite_loss(tmp_path, label_kind, channels, precision, channels_last):
    torch.manual_seed(0)
    module = NSAModule(in_channels=channels, label_kind=label_kind, channels_last=channels_last)
    before = module.net.head.weight.detach().clone()
    trainer = quiet_trainer(tmp_path, max_steps=3, precision=precision)
    trainer.fit(
        module, DataLoader(RandomSegmentation(channels=channels, label_kind=label_kind), batch_size=2)
    )
    assert trainer.global_step == 3
    loss = trainer.callback_metrics["train_loss_step"]
    assert math.isfinite(loss.item()) and loss.item() > 0
    assert not torch.equal(before, module.net.head.weight)


def test_step_schedule_runs_cosine_from_lr_to_lr_min(tmp_path):
    module = NSAModule(lr=1e-3, lr_min=1e-6)
    recorder = lr_recorder()
    trainer = quiet_trainer(tmp_path, max_epochs=2, callbacks=[recorder], limit_train_batches=3)
    trainer.fit(module, DataLoader(RandomSegmentation(n=6, size=32), batch_size=2))
    total = 6  # 2 epochs x 3 batches
    expected = [1e-6 + (1e-3 - 1e-6) * (1 + math.cos(math.pi * t / total)) / 2 for t in range(total)]
    assert recorder.lrs == pytest.approx(expected, rel=1e-6)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-6, rel=1e-6)


def test_epoch_schedule_steps_once_per_epoch(tmp_path):
    module = NSAModule(lr_interval="epoch", max_epochs=3)
    recorder = lr_recorder()
    trainer = quiet_trainer(tmp_path, max_epochs=3, callbacks=[recorder], limit_train_batches=2)
    trainer.fit(module, DataLoader(RandomSegmentation(n=4, size=32), batch_size=2))
    per_epoch = [1e-6 + (1e-3 - 1e-6) * (1 + math.cos(math.pi * e / 3)) / 2 for e in range(3)]
    assert recorder.lrs == pytest.approx([lr for lr in per_epoch for _ in range(2)], rel=1e-6)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-6, rel=1e-6)


def test_epoch_schedule_needs_a_length(tmp_path):
    trainer = quiet_trainer(tmp_path, max_steps=2)  # Lightning then sets max_epochs to -1
    with pytest.raises(ValueError, match=r"lr_interval='epoch' needs the schedule length"):
        trainer.fit(NSAModule(lr_interval="epoch"), DataLoader(RandomSegmentation(size=32), batch_size=2))


def test_channels_last_gives_the_same_outputs():
    torch.manual_seed(0)
    plain = NSAModule().eval()
    fast = NSAModule(channels_last=True).eval()
    fast.net.load_state_dict(plain.net.state_dict())
    assert fast.net.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fast(images), plain(images), atol=1e-4, rtol=1e-4)


def test_predict_and_anomaly_map(tmp_path):
    torch.manual_seed(0)
    module = NSAModule().train()
    images = torch.randn(3, 3, 64, 96)
    maps = module.anomaly_map(images)
    assert maps.shape == (3, 64, 96) and maps.dtype == torch.float32
    assert 0 <= maps.min() and maps.max() <= 1
    assert module.net.training  # the mode is restored
    with torch.no_grad():
        torch.testing.assert_close(maps, torch.sigmoid(module.eval()(images)[:, 0]))

    trainer = quiet_trainer(tmp_path)
    dataset = RandomSegmentation(n=3, size=64)
    predictions = trainer.predict(module, DataLoader(dataset, batch_size=2))
    assert [tuple(p.shape) for p in predictions] == [(2, 64, 64), (1, 64, 64)]
    assert all(p.dtype == torch.float32 for p in predictions)
    bf16_predictions = quiet_trainer(tmp_path, precision="bf16-mixed").predict(
        module, DataLoader(dataset, batch_size=3)
    )
    assert bf16_predictions[0].dtype == torch.float32
    torch.testing.assert_close(bf16_predictions[0], torch.cat(predictions), atol=0.05, rtol=0)


def test_validation_logs_val_loss(tmp_path):
    trainer = quiet_trainer(
        tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=1, num_sanity_val_steps=0
    )
    loader = DataLoader(RandomSegmentation(size=32), batch_size=2)
    trainer.fit(NSAModule(), loader, loader)
    assert math.isfinite(trainer.callback_metrics["val_loss"].item())


def test_hyperparameters_are_saved():
    module = NSAModule(in_channels=1, label_kind="continuous", lr=5e-4, skip_connections=True)
    assert module.hparams.in_channels == 1 and module.hparams.label_kind == "continuous"
    assert module.hparams.lr == 5e-4 and module.hparams.skip_connections is True
    assert module.hparams.lr_interval == "step" and module.hparams.lr_min == 1e-6
    assert module.net.config.label_kind == "continuous" and module.label_kind == "continuous"


@pytest.mark.parametrize(
    "options, match",
    [
        (
            {"lr_interval": "epochs"},
            r"unknown lr_interval 'epochs'; choose one of \['epoch', 'step'\]. Did you mean 'epoch'\?",
        ),
        ({"lr": 1e-6, "lr_min": 1e-3}, r"lr_min must not exceed lr, got lr=1e-06, lr_min=0.001"),
        ({"lr": 0.0}, r"lr and lr_min must be positive, got lr=0.0, lr_min=1e-06"),
        ({"max_epochs": 0}, r"max_epochs must be at least 1 or None, got 0"),
        ({"label_kind": "logistic"}, r"unknown label_kind 'logistic'"),
    ],
    ids=["interval", "lr-order", "lr-zero", "epochs", "label-kind"],
)
def test_rejects_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        NSAModule(**options)


def test_rejects_batches_without_labels():
    module = NSAModule()
    with pytest.raises(
        TypeError, match=r"a training batch must be a dict with 'image' and 'label' keys, got \['image'\]"
    ):
        module.training_step({"image": torch.zeros(2, 3, 32, 32)}, 0)
    with pytest.raises(
        TypeError, match=r"a batch must be an image tensor or a dict with an 'image' key, got list"
    ):
        module.predict_step([torch.zeros(1)], 0)


def test_module_accepts_a_net_config_as_keywords():
    config = NetConfig(in_channels=1, label_kind="continuous", decoder_channels=(64, 32, 32, 16, 8))
    assert NSAModule(**config.to_dict()).net.config == config
