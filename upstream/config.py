"""Settings of one upstream news source, read from ``UPSTREAM_*`` environment variables."""

import socket
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.news import SOURCE_NAME, FaultKind
from serving.levers import LAB_LEVERS

LatencyModel = Literal["fixed", "lognormal"]


class UpstreamSettings(BaseSettings):
    # "none" in the environment is None: compose passes UPSTREAM_FAULT=none for no fault.
    model_config = SettingsConfigDict(
        env_prefix="UPSTREAM_", frozen=True, env_parse_none_str="none"
    )

    name: str = Field("wire", pattern=rf"^{SOURCE_NAME}$", description="Source name.")
    delay_ms: int = Field(300, ge=0, description="Base delay before each answer.")
    jitter_ms: int = Field(0, ge=0, description="Extra delay drawn uniformly from [0, jitter].")
    max_delay_ms: int = Field(10_000, ge=0, description="Largest delay a request may ask for.")
    article_count: int = Field(20, ge=1, le=1000, description="Articles this source holds.")
    # The latency model: fixed (delay + jitter), or lognormal with its median at delay_ms.
    latency: LatencyModel = "fixed"
    latency_sigma: float = Field(0.5, gt=0, le=3, description="lognormal: spread of log(d).")
    spike_rate: float = Field(0.0, ge=0, le=1, description="Share of answers that spike.")
    spike_factor: float = Field(5.0, ge=1, le=100, description="A spike's delay multiplier.")
    # Faults (upstream/faults.py): this share of answers gets this fault; ?fault= forces one.
    fault: FaultKind | None = None
    fault_rate: float = Field(0.0, ge=0, le=1)
    hang_ms: int = Field(30_000, ge=0, le=600_000, description="How long a hang lasts.")
    drip_ms: int = Field(3_000, ge=0, le=600_000, description="How long a slow body takes.")
    # At most this many answers in flight per worker; past it a request gets a 503 at once,
    # so a flood of callers that hang cannot hold the source. Above the full benchmark's
    # largest point (C=1000, one call per fan-out); 0 for no bound.
    max_in_flight: int = Field(2000, ge=0, le=100_000)
    retry_after_s: int = Field(1, ge=0, le=3600, description="What the bound's 503 says.")
    # The lab's levers (LAB_LEVERS, as on the gateways): off, a request may not choose its
    # delay or its fault, and the schema does not offer them.
    lab_levers: bool = Field(True, validation_alias=LAB_LEVERS)
    seed: int = Field(0, description="With the name, seeds every draw: a run repeats.")
    # Which replica of the source this is, in every answer: the container's hostname.
    instance: str = Field(default_factory=socket.gethostname, max_length=64)
    # The node that runs it, on a swarm (NODE_NAME, from the stack's template); None elsewhere.
    node: str | None = Field(None, validation_alias="NODE_NAME", max_length=64)

    @model_validator(mode="after")
    def base_delay_within_max(self) -> "UpstreamSettings":
        if self.delay_ms + self.jitter_ms > self.max_delay_ms:
            raise ValueError("delay_ms + jitter_ms must not exceed max_delay_ms")
        return self
