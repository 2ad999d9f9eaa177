"""The response contract both gateways share, and the upstream payload they consume."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class Article(BaseModel):
    id: str
    title: str
    summary: str
    source: str
    published_at: datetime


class UpstreamNews(BaseModel):
    """What an upstream's ``GET /news`` returns; anything else is a failed source."""

    source: str
    delay_ms: int
    articles: list[Article]


class SourceResult(BaseModel):
    name: str
    ok: bool
    status: int | None = Field(description="Upstream HTTP status; null when none arrived.")
    started_ms: float = Field(description="When the call started, from the fan-out start.")
    elapsed_ms: float
    articles: int = Field(description="How many articles this source contributed.")
    error: str | None = None


class NewsResponse(BaseModel):
    gateway: Literal["sync", "async"]
    mode: str
    worker_pid: int
    elapsed_ms: float = Field(description="The gateway's own fan-out time.")
    sources: list[SourceResult]
    articles: list[Article] = Field(description="Every source's articles, newest first.")
