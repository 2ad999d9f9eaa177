"""What one source call is, the rules every call of a worker keeps, and the part of
httpx's client API the async calls are made through."""

import dataclasses
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypedDict

from core.news import FaultKind
from gateway.config import GatewaySettings
from gateway.fanout import FanOut
from gateway.sources import Source


class StreamedResponse(Protocol):
    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def aiter_raw(self) -> AsyncIterator[bytes]: ...


class AsyncHTTPClient(Protocol):
    """The part of httpx's ``AsyncClient`` API the routes use; httpx2's has the same."""

    # `url` is the client's own URL type (httpx.URL or httpx2.URL), parsed once per worker.
    def stream(
        self,
        method: str,
        url: Any,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AbstractAsyncContextManager[StreamedResponse]: ...

    async def aclose(self) -> None: ...


class TimeoutConfig(TypedDict):
    connect: float
    read: float
    write: float
    pool: float


class RetryPolicy(TypedDict):
    attempts: int
    timeout: float
    wait_initial: float
    wait_max: float
    wait_jitter: float


@dataclass(frozen=True, slots=True)
class Call:
    """One source call: the source, a fault to ask it for, and headers to pass on."""

    source: Source
    fault: FaultKind | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallRules:
    """What every source call of a worker keeps to, read from its settings once, at start:
    each wait, the body cap, how many articles it takes, its retries, and its query."""

    connect_timeout_s: float
    read_timeout_s: float
    pool_timeout_s: float
    max_body_bytes: int
    articles_per_source: int
    connect_retries: int
    # The private CA of https:// sources, for the per-call client (gateway/callers.py).
    ca_file: Path | None
    query: Mapping[str, str]  # what every call sends, but a fault

    @classmethod
    def of(cls, settings: GatewaySettings) -> "CallRules":
        same = {f.name for f in dataclasses.fields(cls)} - {"query"}
        query = {"limit": str(settings.articles_per_source)}
        return cls(**settings.model_dump(include=same), query=query)

    @property
    def timeout(self) -> "TimeoutConfig":
        """httpx's and httpx2's Timeout take the same keywords."""
        return {
            "connect": self.connect_timeout_s,
            "read": self.read_timeout_s,
            "write": self.connect_timeout_s,
            # Waiting for a free pooled connection counts too, so a full pool cannot hang us.
            "pool": self.pool_timeout_s,
        }

    def query_for(self, call: Call) -> Mapping[str, str]:
        """The whole query string this call sends."""
        return self.query if call.fault is None else {**self.query, "fault": call.fault}

    def retry_policy(self, budget_s: float) -> "RetryPolicy":
        """Retry a failed connect `connect_retries` times, with short waits, within the
        budget: what remains of the fan-out's deadline."""
        return {
            "attempts": 1 + self.connect_retries,
            "timeout": max(budget_s, 0.001),
            "wait_initial": 0.05,
            "wait_max": 0.2,
            "wait_jitter": 0.05,
        }


class BlockingHTTPClient(Protocol):
    """What the sync gateway's calls need of a blocking client (gateway/blocking_clients.py
    has one for requests and one for httpx)."""

    def get_within(
        self, call: Call, rules: CallRules, fan_out: FanOut, remaining: float
    ) -> tuple[int, bytes]:
        """GET the call's source, every socket wait at most `remaining`, the body refused
        past the cap and cut at the deadline. Returns (status, body)."""
        ...

    def close(self) -> None: ...
