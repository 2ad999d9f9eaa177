"""Percentiles of a list of measurements, one way for the whole lab: the nearest rank.

A nearest-rank percentile is a value that was measured, never an interpolation between
two. Load runs stream their latencies into HDR histograms instead (bench/harness/load.py),
which answer the same question within the histogram's precision.
"""

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`th percentile (0 < q <= 100) of `values` by nearest rank; NaN when empty."""
    if not 0 < q <= 100:
        raise ValueError(f"a percentile is in (0, 100], not {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]
