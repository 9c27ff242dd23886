"""The machine's own limits, measured in the same run as a bench: memory-copy bandwidth and a
single-thread matrix product's rate. A sampler's figures are read as fractions of these."""

from __future__ import annotations

import statistics
import time

import numpy as np


def copy_gb_s(mbytes: int = 256, repeats: int = 5) -> float:
    """Bytes moved per second (read + write) copying a `mbytes` MB float32 array; the median of
    `repeats`. A batch-1 sampler reads its weights once per token: this bounds its rate."""
    a = np.ones(mbytes * 2**20 // 4, np.float32)
    b = np.empty_like(a)
    np.copyto(b, a)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(b, a)
        rates.append(2 * a.nbytes / (time.perf_counter() - t0) / 1e9)
    return statistics.median(rates)


def gemm_gflops(m: int = 16, k: int = 1024, n: int = 2048, seconds: float = 0.3) -> float:
    """GFLOP/s of a float32 (m×k)·(k×n) product at the sampler's thread count (16 streams' shape)."""
    x = np.random.default_rng(0).standard_normal((m, k), dtype=np.float32)
    w = np.random.default_rng(1).standard_normal((k, n), dtype=np.float32)
    x @ w
    runs, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        x @ w
        runs += 1
    return 2 * m * k * n * runs / (time.perf_counter() - t0) / 1e9
