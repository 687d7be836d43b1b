"""The time budget plans the epochs from the first one (refined at the second) and anneals to lr_min over them."""

import itertools
import math

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

import nsad.pipeline._budget as budget_module
from nsad.models import NSAModule
from nsad.pipeline._budget import BudgetPlan, plan_epochs

LR, LR_MIN = 1e-3, 1e-6


class LearningRates(Callback):
    """The learning rate each optimiser step runs at."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def _loader() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    items = [{"image": torch.randn(3, 32, 32, generator=generator),
              "label": (torch.rand(1, 32, 32, generator=generator) > 0.8).float()} for _ in range(4)]
    return DataLoader(items, batch_size=2)  # 2 steps per epoch


def _fit(plan: BudgetPlan, max_epochs: int) -> tuple[L.Trainer, LearningRates]:
    torch.manual_seed(0)
    rates = LearningRates()
    trainer = L.Trainer(max_epochs=max_epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[plan, rates])
    trainer.fit(NSAModule(lr=LR, lr_min=LR_MIN), train_dataloaders=_loader())
    return trainer, rates


@pytest.fixture
def ten_seconds_per_call(monkeypatch):
    """A clock that advances 10 s each time it is read: the first epoch 'takes' 10 s."""
    ticks = itertools.count(step=10.0)
    monkeypatch.setattr(budget_module.time, "monotonic", lambda: next(ticks))


@pytest.mark.slow
def test_the_plan_fits_the_budget_and_ends_at_lr_min(ten_seconds_per_call, capsys):
    plan = BudgetPlan(max_minutes=1.0, max_epochs=20)
    trainer, rates = _fit(plan, max_epochs=20)
    assert plan.plan == {"max_minutes": 1.0, "first_epoch_s": 10.0, "second_epoch_s": 10.0, "planned_epochs": 6,
                         "schedule_steps": 12}
    assert trainer.current_epoch == 6 and len(rates.rates) == 12
    assert rates.rates[0] == LR and rates.rates[-1] == pytest.approx(LR_MIN, rel=1e-9, abs=1e-15)
    assert all(b <= a for a, b in itertools.pairwise(rates.rates))  # annealing throughout, no jump back up
    assert "6 epochs of 20 fit" in capsys.readouterr().err


@pytest.mark.slow
def test_the_second_epoch_refines_a_plan_the_first_one_made_short(monkeypatch, capsys):
    ticks = itertools.chain([0.0, 30.0], itertools.count(40.0, step=10.0))  # the first epoch 30 s, the next 10 s
    monkeypatch.setattr(budget_module.time, "monotonic", lambda: next(ticks))
    plan = BudgetPlan(max_minutes=2.0, max_epochs=20)
    trainer, rates = _fit(plan, max_epochs=20)
    assert plan.plan == {"max_minutes": 2.0, "first_epoch_s": 30.0, "second_epoch_s": 10.0,
                         "planned_epochs": 10, "schedule_steps": 20}  # 2 + the 80 s left at 10 s each
    assert trainer.current_epoch == 10 and len(rates.rates) == 20
    assert rates.rates[-1] == pytest.approx(LR_MIN, rel=1e-9, abs=1e-15)
    assert all(b <= a for a, b in itertools.pairwise(rates.rates))  # the longer schedule continues smoothly
    printed = capsys.readouterr().err
    assert "4 epochs of 20 fit" in printed and "refined at the second epoch's 10.0 s: 10 epochs of 20 fit" in printed


@pytest.mark.slow
def test_a_resumed_run_keeps_its_plan(ten_seconds_per_call):
    plan = BudgetPlan(max_minutes=1.0, max_epochs=20)
    plan.load_state_dict({"plan": {"max_minutes": 1.0, "first_epoch_s": 20.0, "planned_epochs": 3,
                                   "schedule_steps": 6}})
    trainer, _ = _fit(plan, max_epochs=20)
    assert trainer.current_epoch == 3 and plan.state_dict()["plan"]["planned_epochs"] == 3


def test_plan_epochs():
    assert plan_epochs(1800.0, 41.0, 320) == math.floor(1800 / 41)
    assert plan_epochs(10.0, 100.0, 320) == 1 and plan_epochs(1e9, 1.0, 7) == 7
    with pytest.raises(ValueError, match="must be positive"):
        plan_epochs(0.0, 1.0, 3)
