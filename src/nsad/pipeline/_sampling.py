"""Epoch-aware sampling: every example is reproducible from (seed, epoch, index).

Lightning calls ``set_epoch`` on the training sampler at the start of every epoch (also after a
resume). :class:`EpochSampler` hands the dataset ``(epoch, index)`` pairs, so the example's
generator ``default_rng([seed, epoch, index])`` is known in the main process and the same in any
worker, whatever the number of loader workers or processes. Under several processes (``ddp``) it
splits the shuffled order by rank itself (the trainer runs with ``use_distributed_sampler=False``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import cv2
import numpy as np
import torch.distributed
from threadpoolctl import threadpool_limits
from torch.utils.data import Sampler


@contextlib.contextmanager
def one_thread_for_loading() -> Iterator[None]:
    """Run the enclosed training with one OpenBLAS and one OpenCV thread for the data pipeline.

    Loader workers are forked inside and inherit the limits. Without them every worker's NumPy/
    SciPy (OpenBLAS) and OpenCV calls start as many threads as there are cores and fight the
    training for them: with the cores busy, the Poisson solver's small matrix products were about
    100 times slower here. (Setting the limits in the workers instead, after the fork, can hang
    them.) Training itself runs on torch's own thread pool, which this leaves alone.
    """
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with threadpool_limits(1, user_api="blas"):
            yield
    finally:
        cv2.setNumThreads(previous)


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
