"""The Poisson solver runs its small matrix products on one BLAS thread whatever the caller's settings."""

from __future__ import annotations

import contextlib

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from nsad.synth import _blend_dst, seamless_clone
from nsad.synth._threads import one_blas_thread


def blas_threads() -> int:
    """The largest thread count of the BLAS libraries loaded (NumPy's among them)."""
    return max(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")


def test_one_blas_thread_limits_and_restores():
    with threadpool_limits(2, user_api="blas"):
        assert blas_threads() == 2
        with one_blas_thread():
            assert blas_threads() == 1
        assert blas_threads() == 2
    with threadpool_limits(1, user_api="blas"), one_blas_thread():     # already one: left alone
        assert blas_threads() == 1


def test_seamless_clone_solves_on_one_thread_with_the_same_result(monkeypatch):
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    dst = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    mask = np.zeros((96, 96), np.uint8)
    mask[20:80, 15:70] = 255
    inside = []

    @contextlib.contextmanager
    def recorded():
        with one_blas_thread():
            inside.append(blas_threads())
            yield

    monkeypatch.setattr(_blend_dst, "one_blas_thread", recorded)
    results = []
    for threads in (2, 1):
        with threadpool_limits(threads, user_api="blas"):
            results.append(seamless_clone(src, dst, mask, (48, 50), "mixed"))
            assert blas_threads() == threads                          # the caller's setting is back
    assert inside == [1, 1]
    np.testing.assert_array_equal(results[0], results[1])
