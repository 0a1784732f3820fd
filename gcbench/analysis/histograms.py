"""Call latency as HdrHistograms (ns, 3 significant digits) in the standard base64 encoding: mergeable across
repetitions and runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gcbench.analysis.attribution import CELL_KEYS

HDR_LOWEST_NS = 1
HDR_HIGHEST_NS = 3_600 * 10**9  # one hour: no call latency exceeds this
HDR_SIGNIFICANT_DIGITS = 3


def latency_histogram(values_ns: np.ndarray):
    """An HdrHistogram (ns, 3 significant digits) of `values_ns`, filled in one vectorised step.

    Equivalent to record_value() per value (the bucket arithmetic is HdrHistogram's), without a Python loop.
    """
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram(HDR_LOWEST_NS, HDR_HIGHEST_NS, HDR_SIGNIFICANT_DIGITS)
    v = np.clip(np.asarray(values_ns, np.int64), 0, HDR_HIGHEST_NS)
    if len(v) == 0:
        return h
    # bit length of (v | mask): frexp's exponent is exact below 2**53
    pow2ceiling = np.frexp((v | h.sub_bucket_mask).astype(np.float64))[1].astype(np.int64)
    bucket = pow2ceiling - h.unit_magnitude - (h.sub_bucket_half_count_magnitude + 1)
    sub = v >> (bucket + h.unit_magnitude)
    idx = ((bucket + 1) << h.sub_bucket_half_count_magnitude) + sub - h.sub_bucket_half_count
    counts = np.ctypeslib.as_array(h.counts)
    counts += np.bincount(idx, minlength=h.counts_len)[: h.counts_len].astype(counts.dtype)
    h.total_count += len(v)
    h.min_value = min(h.min_value, int(v.min()))
    h.max_value = max(h.max_value, int(v.max()))
    return h


def decode_histogram(encoded: str | bytes):
    """An HdrHistogram from its standard base64 (compressed V2) encoding."""
    from hdrh.histogram import HdrHistogram

    return HdrHistogram.decode(encoded.encode() if isinstance(encoded, str) else encoded)


def merge_histograms(encoded: list[str | bytes]):
    """One histogram holding every count of the encoded histograms (repetitions, runs)."""
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram(HDR_LOWEST_NS, HDR_HIGHEST_NS, HDR_SIGNIFICANT_DIGITS)
    for e in encoded:
        h.add(decode_histogram(e))
    return h


def latency_histograms(calls: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (backend, gc mode, rep): call count and the latency histogram, base64-encoded (ns)."""
    rows = []
    for key, g in calls.groupby(CELL_KEYS, sort=False, observed=True):
        h = latency_histogram(g["latency_ns"].to_numpy())
        rows.append({"backend": key[0], "gc_mode": key[1], "rep": int(key[2]), "calls": len(g),
                     "unit": "ns", "hdr_histogram": h.encode().decode("ascii")})
    return pd.DataFrame(rows, columns=[*CELL_KEYS, "calls", "unit", "hdr_histogram"])
