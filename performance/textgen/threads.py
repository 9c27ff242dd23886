"""How many threads the CPU sampler uses, for torch and for numpy's OpenBLAS alike.

Default 1. Measured on the 2-core dev machine under load (load average 6-14 from other work): with
2 threads, OpenBLAS and torch's OpenMP workers spin waiting for a core that another process holds,
and a batch-1 sampler fell from ~1,300 to ~100-250 tok/s; with 1 thread it degrades only in
proportion to its share of the CPU. One thread also leaves the other core to the stage's frame
loop, speech and audio. `LECTERN_SAMPLER_THREADS=N` overrides it (an idle workstation with many
cores can gain at 16 streams).
"""

from __future__ import annotations

import ctypes
import glob
import os
from pathlib import Path

import numpy as np
import torch

ENV = "LECTERN_SAMPLER_THREADS"


class ThreadsError(ValueError):
    """LECTERN_SAMPLER_THREADS is not a positive integer."""


def sampler_threads() -> int:
    """The configured thread count (env LECTERN_SAMPLER_THREADS, default 1)."""
    raw = os.environ.get(ENV, "1").strip()
    try:
        n = int(raw)
        if n < 1:
            raise ValueError
    except ValueError:
        raise ThreadsError(f"environment {ENV}={raw!r}; must be an integer >= 1") from None
    return n


def _openblas_setter():
    libdir = Path(np.__file__).parent.parent / "numpy.libs"
    for path in glob.glob(str(libdir / "libscipy_openblas*.so")):
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                return fn
    return None


def use_sampler_threads(n: int | None = None) -> int:
    """Set torch's and OpenBLAS's thread counts for this process to `n` (default: the configured
    count). Returns the count in force."""
    n = sampler_threads() if n is None else n
    torch.set_num_threads(n)
    setter = _openblas_setter()
    if setter is not None:
        setter(ctypes.c_int(n))
    return n
