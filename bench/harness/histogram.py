"""A load run's latencies, streamed into an HDR histogram: constant memory whatever the
count, and every percentile within 3 significant digits."""

from hdrh.histogram import HdrHistogram

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


class LatencyHistogram:
    """Latencies in microseconds, 3 significant digits, from 1 us to 10 minutes."""

    def __init__(self) -> None:
        self._histogram = HdrHistogram(1, 600_000_000, 3)

    def record_seconds(self, seconds: float) -> None:
        self._histogram.record_value(max(1, round(seconds * 1_000_000)))

    @property
    def count(self) -> int:
        count: int = self._histogram.get_total_count()
        return count

    def percentile_ms(self, percentile: float) -> float:
        if self.count == 0:
            return float("nan")
        return float(self._histogram.get_value_at_percentile(percentile)) / 1000

    def summary_ms(self) -> dict[str, float]:
        """p50, p90, p99, p99.9, max and mean, in milliseconds."""
        summary = {f"p{p:g}": self.percentile_ms(p) for p in PERCENTILES}
        empty = self.count == 0
        summary["max"] = float("nan") if empty else self._histogram.get_max_value() / 1000
        summary["mean"] = float("nan") if empty else self._histogram.get_mean_value() / 1000
        return summary

    def summary_keys(self, prefix: str) -> dict[str, float]:
        """summary_ms() as LoadSummary's keys: latency_p50_ms, ... for prefix "latency"."""
        return {f"{prefix}_{name}_ms": round(ms, 2) for name, ms in self.summary_ms().items()}
