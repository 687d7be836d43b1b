"""CutPasteModule: training steps, the learning-rate schedule, rejections, embeddings."""

import math

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from nsad.models.cutpaste import CutPasteModule
from run_checks import lr_recorder, quiet_trainer

SMALL_HEAD = (32, 16)

pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")


class RandomClasses(Dataset):
    def __init__(self, n=6, size=32, num_classes=3):
        gen = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, size, size, generator=gen)
        self.targets = torch.arange(n) % num_classes

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return {"image": self.images[index], "target": self.targets[index]}


@pytest.mark.parametrize("num_classes", [2, 3], ids=["binary", "3way"])
def test_module_trains_a_few_steps(tmp_path, num_classes):
    torch.manual_seed(0)
    module = CutPasteModule(num_classes=num_classes, head_dims=SMALL_HEAD)
    recorder = lr_recorder()
    trainer = quiet_trainer(tmp_path, max_steps=3, callbacks=[recorder])
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


def test_module_flattens_balanced_items_after_the_transfer():
    module = CutPasteModule(num_classes=3, head_dims=SMALL_HEAD)
    images = torch.arange(2 * 3 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 3, 4, 4)
    batch = module.on_after_batch_transfer({"image": images, "target": torch.arange(3).repeat(2, 1)}, 0)
    assert batch["image"].shape == (6, 3, 4, 4) and batch["target"].tolist() == [0, 1, 2, 0, 1, 2]
    assert torch.equal(batch["image"][4], images[1, 1])
    flat = {"image": images[0], "target": torch.arange(3)}
    assert module.on_after_batch_transfer(flat, 0) is flat
