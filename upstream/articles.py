"""Deterministic articles for a source, generated from its name: no network, no files."""

import random
from datetime import UTC, datetime, timedelta

from core.news import Article

# Every source's newest article is at most a day older than this instant, so merged
# feeds interleave and "newest first" is a real ordering, not one source after another.
EPOCH = datetime(2025, 5, 15, 12, 0, tzinfo=UTC)

_SUBJECTS = (
    "Markets",
    "Researchers",
    "City council",
    "Engineers",
    "Open-source maintainers",
    "Astronomers",
    "Regulators",
    "Farmers",
    "Start-ups",
    "Museums",
)
_VERBS = (
    "unveil",
    "debate",
    "delay",
    "celebrate",
    "question",
    "double down on",
    "rethink",
    "measure",
    "benchmark",
    "quietly ship",
)
_OBJECTS = (
    "a new plan",
    "the event loop",
    "async pipelines",
    "rising latency",
    "a record harvest",
    "connection pools",
    "the threadpool",
    "a faster index",
    "tail latencies",
    "the budget",
)


def generate_articles(source: str, count: int) -> list[Article]:
    """Return ``count`` articles for ``source``, newest first, identical on every call."""
    # random.Random seeded with a str hashes it with SHA-512, so the sequence does not
    # depend on PYTHONHASHSEED or the process: every worker serves the same feed.
    rng = random.Random(f"fanout-lab:{source}")
    published = EPOCH - timedelta(minutes=rng.randrange(0, 24 * 60))
    articles = []
    for index in range(count):
        subject, verb, obj = rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS)
        articles.append(
            Article(
                id=f"{source}-{index:04d}",
                title=f"{subject} {verb} {obj}",
                summary=f"{source} reports that {subject.lower()} {verb} {obj}.",
                source=source,
                published_at=published,
            )
        )
        published -= timedelta(minutes=rng.randrange(5, 180))
    return articles
