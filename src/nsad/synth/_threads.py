"""One BLAS thread for the Poisson solver's small matrix products, whatever the caller's thread settings.

The discrete-sine-transform solver (:mod:`nsad.synth._blend_dst`) multiplies matrices of at most
160 x 480 floats. OpenBLAS spreads such products over all its threads by default, and the
hand-over costs more than the product: on a 2-core machine with another job running, the public
``seamless_clone`` ran 2.9x slower with the default threads than with one. :func:`one_blas_thread`
drops NumPy's BLAS to one thread around the solve and restores it after, at a few microseconds per
call, and does nothing where the limit is already one (the training's loader workers inherit it
from :func:`nsad.pipeline._sampling.one_thread_for_loading`, so no limit is set after a fork).

The libraries are looked up once (threadpoolctl) on the first call; in a program that forks
workers, make that call before forking (``nsad train`` does: it makes one example first). Calls
from several Python threads at once stay correct; one of them may then run its products on the
default threads.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

from threadpoolctl import ThreadpoolController


@functools.cache
def _blas_libraries() -> tuple:
    """The controllers (threadpoolctl's) of the BLAS libraries loaded now, NumPy's among them."""
    return tuple(lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas")


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the enclosed code with one BLAS thread, restoring every library's previous count after."""
    raised = []
    for lib in _blas_libraries():
        threads = lib.get_num_threads()
        if threads is not None and threads > 1:
            lib.set_num_threads(1)
            raised.append((lib, threads))
    try:
        yield
    finally:
        for lib, threads in raised:
            lib.set_num_threads(threads)
