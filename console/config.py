"""Settings of the console, read from ``CONSOLE_*`` environment variables."""

from pydantic import Field, HttpUrl
from pydantic_settings import BaseSettings, SettingsConfigDict

from serving.levers import LAB_LEVERS


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONSOLE_", frozen=True)

    # The only two places a race sends requests: the stack's gateways. A client picks a
    # route and a mode, never a URL.
    sync_url: HttpUrl = HttpUrl("http://sync-gateway:8000")
    async_url: HttpUrl = HttpUrl("http://async-gateway:8000")
    # A race is load: K requests to each gateway, and at most this many.
    max_requests: int = Field(200, ge=1, le=1000)
    # The longest a race may run, every request included; past it the rest count as lost.
    race_timeout_s: float = Field(60.0, gt=0, le=600)
    # How often the gateways' /metrics are read during a race.
    gauge_interval_s: float = Field(0.25, gt=0, le=10)
    # The console is a lever too: it sends load. LAB_LEVERS=off (the exposed profile)
    # leaves the page and takes the race away.
    lab_levers: bool = Field(True, validation_alias=LAB_LEVERS)
