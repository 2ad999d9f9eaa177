"""The response contract both gateways share, and the upstream payload they consume."""

from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from serving.admission import Overloaded

# What went wrong with a source: it ran out of time, could not be reached (or dropped the
# connection), sent bytes that are not HTTP, answered with an error status (a redirect
# included: none is followed), answered with a body that is not news, or sent more than the
# gateway takes.
ErrorKind = Literal["timeout", "connect", "protocol", "status", "invalid_body", "too_large"]
# The faults a gateway may ask an upstream to inject (upstream/faults.py), and nothing else.
UpstreamFault = Literal["error", "hang", "slow-body", "malformed-json", "wrong-shape", "reset"]


class Article(BaseModel):
    id: str
    title: str
    summary: str
    source: str
    # With its offset: a naive time cannot be ordered against the other sources' (a merge
    # of both raised a TypeError, a 500), so a source that sends one sent no news.
    published_at: AwareDatetime


class UpstreamNews(BaseModel):
    """What an upstream's ``GET /news`` returns; anything else is a failed source."""

    source: str
    instance: str = Field(description="The replica that answered: its hostname.")
    node: str | None = Field(None, description="The swarm node it runs on; null elsewhere.")
    delay_ms: int
    articles: list[Article]


class SourceResult(BaseModel):
    name: str
    ok: bool
    status: int | None = Field(description="Upstream HTTP status; null when none arrived.")
    started_ms: float = Field(description="When the call started, from the fan-out start.")
    elapsed_ms: float
    articles: int = Field(description="How many articles this source contributed.")
    instance: str | None = Field(
        None, description="The replica of the source that answered; null when none did."
    )
    node: str | None = Field(
        None, description="The swarm node of that replica; null off a swarm or when none did."
    )
    error_kind: ErrorKind | None = None
    error: str | None = Field(None, description="What happened, for people.")


class NewsResponse(BaseModel):
    gateway: Literal["sync", "async"]
    mode: str
    instance: str = Field(description="The gateway replica that answered: its hostname.")
    node: str | None = Field(None, description="The swarm node it runs on; null elsewhere.")
    worker_pid: int
    elapsed_ms: float = Field(description="The gateway's own fan-out time.")
    queued_ms: float = Field(
        description="From the request's arrival at its route to its fan-out's start: on the"
        " sync gateway, the wait for a threadpool token."
    )
    deadline_ms: float = Field(description="The most the fan-out was allowed to take.")
    partial: bool = Field(description="Some sources answered and some failed.")
    sources: list[SourceResult]
    articles: list[Article] = Field(description="Every source's articles, newest first.")


# What a fan-out route may answer besides 200 and 422, for the OpenAPI schema.
FAN_OUT_RESPONSES: dict[int | str, dict[str, object]] = {
    502: {"model": NewsResponse, "description": "Every source failed; the body says how."},
    503: {"model": Overloaded, "description": "Past the overload bound: see Retry-After."},
    504: {"model": NewsResponse, "description": "Every source ran out of time."},
}
