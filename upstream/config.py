"""Settings of one upstream news source, read from ``UPSTREAM_*`` environment variables."""

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class UpstreamSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UPSTREAM_", frozen=True)

    name: str = Field("wire", pattern=r"^[a-z][a-z0-9-]{0,31}$", description="Source name.")
    delay_ms: int = Field(300, ge=0, description="Base delay before each answer.")
    jitter_ms: int = Field(0, ge=0, description="Extra delay drawn uniformly from [0, jitter].")
    max_delay_ms: int = Field(10_000, ge=0, description="Largest delay a request may ask for.")
    article_count: int = Field(20, ge=1, le=1000, description="Articles this source holds.")

    @model_validator(mode="after")
    def base_delay_within_max(self) -> "UpstreamSettings":
        if self.delay_ms + self.jitter_ms > self.max_delay_ms:
            raise ValueError("delay_ms + jitter_ms must not exceed max_delay_ms")
        return self
