"""The gateways' own metrics: each source's latency, and its failures by kind."""

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.models import NewsResponse
from observability.metrics import LATENCY_BUCKETS


@dataclass(frozen=True)
class FanOutMetrics:
    source_duration: Histogram
    source_errors: Counter

    @classmethod
    def registered(cls, registry: CollectorRegistry) -> "FanOutMetrics":
        return cls(
            Histogram(
                "fanout_source_duration_seconds",
                "One source call inside a fan-out, by source and outcome (ok or failed).",
                ["source", "outcome"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            Counter(
                "fanout_source_errors",
                "Failed source calls, by source and kind: timeout, connect, tls, protocol,"
                " status, invalid_body, too_large.",
                ["source", "kind"],
                registry=registry,
            ),
        )

    def observe(self, news: NewsResponse) -> None:
        for source in news.sources:
            outcome = "ok" if source.ok else "failed"
            self.source_duration.labels(source.name, outcome).observe(source.elapsed_ms / 1000)
            if source.error_kind is not None:
                self.source_errors.labels(source.name, source.error_kind).inc()
