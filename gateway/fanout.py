"""Timing and aggregation of one fan-out, the same for every gateway and mode."""

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import ValidationError

from gateway.models import Article, NewsResponse, SourceResult, UpstreamNews
from gateway.sources import Source


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


@dataclass(frozen=True, slots=True)
class SourceOutcome:
    result: SourceResult
    articles: list[Article]


@dataclass(slots=True)
class FanOutClock:
    """Measures one fan-out on a monotonic clock; every offset is from its start."""

    start: float = field(default_factory=time.perf_counter)

    def answered(self, source: Source, started: float, status: int, body: bytes) -> SourceOutcome:
        """Record a source that sent an HTTP response, good or bad."""
        if status != 200:
            return self.failed(source, started, f"upstream answered HTTP {status}", status)
        try:
            payload = UpstreamNews.model_validate_json(body)
        except ValidationError as exc:
            return self.failed(
                source, started, f"invalid payload: {exc.error_count()} error(s)", status
            )
        result = self._result(
            source, started, ok=True, status=status, articles=len(payload.articles)
        )
        return SourceOutcome(result, payload.articles)

    def failed(
        self, source: Source, started: float, error: str, status: int | None = None
    ) -> SourceOutcome:
        """Record a source that timed out, refused, or answered with something unusable."""
        result = self._result(source, started, ok=False, status=status, articles=0, error=error)
        return SourceOutcome(result, [])

    def _result(self, source: Source, started: float, **fields: object) -> SourceResult:
        return SourceResult.model_validate(
            {
                "name": source.name,
                "started_ms": _ms(started - self.start),
                "elapsed_ms": _ms(time.perf_counter() - started),
                **fields,
            }
        )

    def assemble(self, gateway: str, mode: str, outcomes: Iterable[SourceOutcome]) -> NewsResponse:
        """Merge every source's articles, newest first, into the shared response."""
        outcomes = list(outcomes)
        elapsed_ms = _ms(time.perf_counter() - self.start)
        articles = [article for outcome in outcomes for article in outcome.articles]
        articles.sort(key=lambda article: article.published_at, reverse=True)
        return NewsResponse.model_validate(
            {
                "gateway": gateway,
                "mode": mode,
                "worker_pid": os.getpid(),
                "elapsed_ms": elapsed_ms,
                "sources": [outcome.result for outcome in outcomes],
                "articles": articles,
            }
        )


def server_timing(news: NewsResponse) -> str:
    """The per-source durations as a ``Server-Timing`` header, plus the whole fan-out."""
    entries = [
        f'{source.name};dur={source.elapsed_ms};desc="{"ok" if source.ok else "failed"}"'
        for source in news.sources
    ]
    entries.append(f"fanout;dur={news.elapsed_ms}")
    return ", ".join(entries)
