"""A time budget that anneals: plan the epochs from the first one's time, cosine to ``lr_min`` over them.

``nsad train --max-minutes M``: after the first epoch, the number of epochs that fits in ``M``
minutes (at the first epoch's pace, setup included, so the plan errs on the short side) becomes the
run's length, and the cosine schedule of the NSA paper (Sec. 4.1) is stretched or shrunk to reach
``lr_min`` at exactly the last step of the last planned epoch. After the second epoch the plan is
refined once at that epoch's pace for the time left (the first one also starts the loader workers
and warms the caches: on KolektorSDD it took 20 s where the second took 16). The plan is a
callback's state, so it is saved in every checkpoint and a resumed run keeps it (the scheduler's
length is restored with the scheduler).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


def plan_epochs(budget_s: float, first_epoch_s: float, max_epochs: int) -> int:
    """Epochs that fit in ``budget_s`` seconds at ``first_epoch_s`` each: at least 1, at most ``max_epochs``.

    Example:
        >>> plan_epochs(1800.0, 41.0, 320), plan_epochs(60.0, 100.0, 320), plan_epochs(1e6, 1.0, 20)
        (43, 1, 20)
    """
    if not (budget_s > 0 and first_epoch_s > 0):
        raise ValueError(f"budget and epoch time must be positive, got {budget_s!r} s and {first_epoch_s!r} s")
    return max(1, min(int(max_epochs), math.floor(budget_s / first_epoch_s)))


class BudgetPlan(Callback):
    """Plan the run's epochs and its cosine schedule for a time budget (see the module docstring).

    A cosine schedule is PyTorch's ``CosineAnnealingLR`` advanced per step (``NSAModule``'s and
    CutPaste's): its recursive form continues smoothly from the current learning rate when its
    length changes and reaches ``eta_min`` at ``T_max``. A constant learning rate stays constant.

    Args:
        max_minutes: the budget in minutes.
        max_epochs: the epochs asked for (the plan never exceeds them).

    Attributes:
        plan: None until planned, then ``{"max_minutes", "first_epoch_s", "planned_epochs",
            "schedule_steps"}``, and ``"second_epoch_s"`` once refined.
    """

    def __init__(self, max_minutes: float, max_epochs: int) -> None:
        if not max_minutes > 0:
            raise ValueError(f"max_minutes must be positive, got {max_minutes!r}")
        self.max_minutes, self.max_epochs = float(max_minutes), int(max_epochs)
        self.plan: dict[str, Any] | None = None
        self._start = 0.0
        self._first_end: float | None = None  # when this process ended the first epoch; None after a resume

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.monotonic()
        if self.plan is not None:  # resumed: keep the plan made before
            trainer.fit_loop.max_epochs = self.plan["planned_epochs"]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = time.monotonic()
        if self.plan is None:
            first_epoch_s = now - self._start
            epochs = plan_epochs(self.max_minutes * 60, first_epoch_s, self.max_epochs)
            self.plan = {"max_minutes": self.max_minutes, "first_epoch_s": round(first_epoch_s, 2)}
            self._first_end = now
            self._set_length(trainer, epochs, f"the first epoch took {first_epoch_s:.1f} s, so")
        elif self._first_end is not None and "second_epoch_s" not in self.plan and self.plan["planned_epochs"] > 2:
            second_epoch_s = now - self._first_end
            left_s = self.max_minutes * 60 - (now - self._start)
            epochs = 2 + (plan_epochs(left_s, second_epoch_s, self.max_epochs - 2) if left_s > 0 else 0)
            self.plan["second_epoch_s"] = round(second_epoch_s, 2)
            self._set_length(trainer, max(3, epochs), f"refined at the second epoch's {second_epoch_s:.1f} s:")

    def _set_length(self, trainer: L.Trainer, epochs: int, why: str) -> None:
        """Make the run ``epochs`` long and its cosine schedule end at ``lr_min`` on the last step."""
        epochs = int(trainer.strategy.broadcast(epochs))
        steps = epochs * trainer.num_training_batches
        for config in trainer.lr_scheduler_configs:  # none for a constant learning rate (ssae)
            if isinstance(config.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
                config.scheduler.T_max = max(1, steps - 1)  # the last step (index steps - 1) runs at eta_min
        trainer.fit_loop.max_epochs = epochs
        self.plan.update(planned_epochs=epochs, schedule_steps=steps)
        if trainer.is_global_zero:
            print(f"\nnsad train: budget {self.max_minutes:g} min: {why} {epochs} epochs of {self.max_epochs} fit; "
                  f"the learning rate anneals to its minimum over {steps} steps", file=sys.stderr)

    def state_dict(self) -> dict[str, Any]:
        return {"plan": self.plan}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.plan = state_dict.get("plan")
