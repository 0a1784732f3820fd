"""Bootstrap replicates of a mean or percentile, two-level when there are repetitions, and their seeding."""

from __future__ import annotations

import zlib

import numpy as np

BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 20240601


def bootstrap_stat(x: np.ndarray, rng: np.random.Generator, n_boot: int = BOOTSTRAP_SAMPLES,
                   q: float | None = None, groups: np.ndarray | None = None) -> np.ndarray:
    """n_boot bootstrap replicates of mean(x) (q=None) or of the q-th percentile of x, vectorised in chunks.

    With `groups` (the repetition of each chain) holding two or more values, the bootstrap has two levels:
    repetitions are resampled, then chains within each drawn repetition, so that the spread between server
    processes counts too (each drawn repetition contributes as many chains as the largest one has).
    """
    x = np.asarray(x, np.float64)
    n = len(x)
    if n == 0:
        return np.full(n_boot, np.nan)
    out = np.empty(n_boot)
    levels = None
    if groups is not None:
        order = np.argsort(groups, kind="stable")
        x = x[order]
        _, start, size = np.unique(np.asarray(groups)[order], return_index=True, return_counts=True)
        levels = (start, size) if len(size) > 1 else None
    width = n if levels is None else len(levels[1]) * int(levels[1].max())
    chunk = max(1, min(n_boot, 4_000_000 // width))  # bounded memory: chunk x width draws at a time
    for lo in range(0, n_boot, chunk):
        hi = min(n_boot, lo + chunk)
        if levels is None:
            idx = rng.integers(0, n, size=(hi - lo, n))
        else:
            start, size = levels
            reps = rng.integers(0, len(size), size=(hi - lo, len(size)))
            within = rng.random((hi - lo, len(size), int(size.max())))
            idx = (start[reps][..., None] + (within * size[reps][..., None]).astype(np.int64)).reshape(hi - lo, -1)
        sample = x[idx]
        out[lo:hi] = sample.mean(axis=1) if q is None else np.percentile(sample, q, axis=1)
    return out


def cell_rng(seed: int, *parts: str) -> np.random.Generator:
    """A generator seeded by the run-independent name of what is resampled: results never depend on order."""
    return np.random.default_rng([seed, zlib.crc32("/".join(parts).encode())])
