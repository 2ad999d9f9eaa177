"""Waiting without fixed sleeps, shared by the unit and integration tests: poll a condition
within a bound, and read how many requests a service holds from its own /metrics."""

import time
from collections.abc import Callable

import requests
from prometheus_client.parser import text_string_to_metric_families


def poll(condition: Callable[[], bool], within_s: float, every_s: float = 0.02) -> bool:
    """True as soon as the condition holds; False if it never did within the bound."""
    deadline = time.monotonic() + within_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(every_s)


def in_flight(base_url: str) -> float:
    """HTTP requests a service is serving now, /metrics aside (every worker's, summed)."""
    text = requests.get(f"{base_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "http_requests_in_flight":
            return sum(sample.value for sample in family.samples)
    raise AssertionError(f"{base_url}/metrics has no http_requests_in_flight")
