"""The bench's own blocking HTTP, one way: requests, for probes, single answers and the
failover runs' steady callers. Load goes through aiohttp (bench/harness/load.py)."""

import time
from typing import Any

import requests


def get_json(url: str, timeout: float = 30) -> dict[str, Any]:
    """A 2xx answer's JSON body; any other status raises requests.HTTPError."""
    response = requests.get(url, timeout=timeout)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def get_text(url: str, timeout: float = 30) -> str:
    """A 2xx answer's body as text (/metrics); any other status raises."""
    response = requests.get(url, timeout=timeout)
    response.raise_for_status()
    return response.text


def asked(url: str, timeout: float = 30) -> tuple[int, dict[str, Any], float]:
    """An answer of any status: (status, its JSON body, seconds until it was read)."""
    started = time.perf_counter()
    response = requests.get(url, timeout=timeout)
    body: dict[str, Any] = response.json()
    return response.status_code, body, round(time.perf_counter() - started, 3)
