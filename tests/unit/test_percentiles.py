"""core/percentiles.py: the nearest rank, a value that was measured."""

import math

import pytest

from core.percentiles import percentile


def test_percentiles_are_measured_values() -> None:
    values = [40.0, 10.0, 30.0, 20.0]
    assert percentile(values, 50) == 20.0 and percentile(values, 99) == 40.0
    assert percentile(values, 25) == 10.0 and percentile(values, 100) == 40.0
    assert percentile([5.0], 99) == 5.0


def test_the_99th_of_a_hundred_is_the_99th_value() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 99) == 99.0 and percentile(values, 99.5) == 100.0


def test_no_values_have_no_percentile_and_a_bad_rank_is_refused() -> None:
    assert math.isnan(percentile([], 50))
    for q in (0, -1, 100.5):
        with pytest.raises(ValueError, match="percentile"):
            percentile([1.0], q)
