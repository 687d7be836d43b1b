"""SSAEModule trains a few steps with each objective and rejects bad settings."""

import math

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from nsad.models.ssae import SSAEModule
from run_checks import quiet_trainer

pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")

TINY = dict(base_channels=4, sdc_blocks=1, sdc_kernel_size=3)


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
    trainer = quiet_trainer(tmp_path, max_steps=3)
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
