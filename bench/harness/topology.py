"""The lab's topology, read from .env like compose and the scripts read it: the shell's
environment wins over the file. The benchmark's local runs and the tests take their source
delays, ports and pool sizes from here, never from numbers of their own."""

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[2]
# The sources, in fan-out order; compose runs one service per name (upstream-NAME).
SOURCE_NAMES = ("wire", "gazette", "chronicle")


class Topology(BaseSettings):
    """Required fields: a value missing from .env is an error, not a second default."""

    model_config = SettingsConfigDict(env_file=ROOT / ".env", extra="ignore", frozen=True)

    wire_delay_ms: int
    gazette_delay_ms: int
    chronicle_delay_ms: int
    wire_port: int
    gazette_port: int
    chronicle_port: int
    sync_port: int
    async_port: int
    sync_workers: int
    async_workers: int
    sync_threadpool_tokens: int
    async_max_connections: int
    async_max_keepalive_connections: int
    upstream_keepalive_s: int
    gateway_max_deadline_ms: int

    @property
    def delays_ms(self) -> dict[str, int]:
        return {
            "wire": self.wire_delay_ms,
            "gazette": self.gazette_delay_ms,
            "chronicle": self.chronicle_delay_ms,
        }


def local_mode(command: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """`scripts/local.sh COMMAND` (up, upstreams, down, status), bounded to two minutes."""
    return subprocess.run(
        [str(ROOT / "scripts" / "local.sh"), command],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def env_overrides() -> dict[str, str]:
    """The .env settings this process's environment changes, as the environment has them:
    what a run started from this shell ran with, besides the file."""
    defaults = dotenv_values(ROOT / ".env")
    return {
        name: os.environ[name]
        for name, value in defaults.items()
        if name in os.environ and os.environ[name] != value
    }
