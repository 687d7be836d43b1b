"""Epoch-aware sampling: every example is reproducible from (seed, epoch, index).

Lightning calls ``set_epoch`` on the training sampler at the start of every epoch (also after a
resume). :class:`EpochSampler` hands the dataset ``(epoch, index)`` pairs, so the example's
generator ``default_rng([seed, epoch, index])`` is known in the main process and the same in any
worker, whatever the number of loader workers or processes. Under several processes (``ddp``) it
splits the shuffled order by rank itself (the trainer runs with ``use_distributed_sampler=False``).
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import torch.distributed
from threadpoolctl import threadpool_limits
from torch.utils.data import Sampler


def limit_worker_threads(worker_id: int) -> None:
    """``worker_init_fn`` of the loaders: one BLAS and one OpenCV thread per loader process.

    Without it every worker's NumPy/SciPy (OpenBLAS) and OpenCV calls start as many threads as
    there are cores and fight the training process for them: measured here, the Poisson solver's
    small matrix products became about 100 times slower under that contention.
    """
    threadpool_limits(1)
    cv2.setNumThreads(1)


class EpochSampler(Sampler[tuple[int, int]]):
    """Yield ``(epoch, index)`` for a seeded permutation of ``range(length)``, split across ranks.

    Args:
        length: examples per epoch.
        seed: the run's seed; the order of epoch ``e`` is ``default_rng([seed, e]).permutation``.
        shuffle: permute the indices (training) or keep them in order.
    """

    def __init__(self, length: int, seed: int, shuffle: bool = True) -> None:
        if length < 1:
            raise ValueError(f"EpochSampler needs at least one example, got length={length}")
        self.length, self.seed, self.shuffle, self.epoch = int(length), int(seed), shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @staticmethod
    def _rank_and_world() -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def __len__(self) -> int:
        return -(-self.length // self._rank_and_world()[1])

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(self.length) if self.shuffle
                 else np.arange(self.length))
        rank, world = self._rank_and_world()
        if world > 1:  # pad by wrapping so every rank gets the same number of examples
            order = np.resize(order, len(self) * world)[rank::world]
        for index in order:
            yield self.epoch, int(index)
