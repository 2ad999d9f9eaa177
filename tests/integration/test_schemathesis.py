"""Schemathesis against every service's own OpenAPI schema, on the running stack: generated
and hostile input gets a documented answer that matches its schema, never a 500."""

from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode
from schemathesis.generation.case import Case

from tests.integration.stack import UPSTREAMS, Stack, record

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Each example is a real fan-out of up to 1.6 s (10 s with a generated deadline and hang):
# enough to cover every parameter's edges, bounded in time.
EXAMPLES = 25
# The upstream's own fault switches break the answer on purpose (that is their job, and
# test_faults covers them), and a generated delay may be 10 s: the rest is fuzzed.
UPSTREAM_SWITCHES = frozenset({"fault", "delay_ms"})
# The gateways' blog routes sleep or compute for as long as they are asked, up to a minute
# on purpose (/wrong holds the loop past GUNICORN_TIMEOUT): fuzzed at their defaults, and
# test_blog and test_claims cover the amounts.
GATEWAY_HOLDS = frozenset({"ms", "work_ms"})
# Every check schemathesis has (its `-c all`), but one: "no 5xx". A gateway's 502, 503 and
# 504 are documented answers (every source failed, the overload bound, every source timed
# out), so "no 5xx" becomes "no undocumented status", which status_code_conformance checks,
# and the test adds that no 5xx but those is ever seen. That includes schema-valid input
# being accepted (ST202): the schema gives the configured names and faults as patterns.
EXCLUDED_CHECKS: list[CheckFunction] = [not_a_server_error]
DOCUMENTED_5XX = frozenset({502, 503, 504})


def targets(stack: Stack) -> dict[str, str]:
    found = {gateway: stack.url(gateway, "") for gateway in ("sync", "async")}
    return {**found, **{name: stack.upstream_url(name) for name in UPSTREAMS}}


def schema_without(base_url: str, skip: frozenset[str]) -> dict[str, Any]:
    """The service's OpenAPI schema, minus the query parameters in `skip`: they are never
    generated, rather than generated and then thrown away (hypothesis's assume), which left
    a run's invalid cases to chance: a fresh clone's run sent the upstreams no 422 at all."""
    raw: dict[str, Any] = requests.get(f"{base_url}/openapi.json", timeout=30).json()
    for operations in raw["paths"].values():
        for operation in operations.values():
            kept = [p for p in operation.get("parameters", []) if p["name"] not in skip]
            operation["parameters"] = kept
    return raw


def fuzz(base_url: str, skip: frozenset[str]) -> Counter[int]:
    """Every operation in the service's schema, with valid and with invalid input; the
    statuses seen. The parameters in `skip` keep their defaults."""
    schema = schemathesis.openapi.from_dict(schema_without(base_url, skip))
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()
        # Invalid input needs a parameter to be invalid in (/healthz takes none).
        modes = list(GenerationMode) if list(operation.query) else [GenerationMode.POSITIVE]
        for mode in modes:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
            def check(case: Case[Any]) -> None:
                response = case.call(base_url=base_url, timeout=30)
                statuses[response.status_code] += 1
                case.validate_response(response, excluded_checks=EXCLUDED_CHECKS)

            check()
    return statuses


@pytest.mark.parametrize("service", ["sync", "async", *UPSTREAMS])
def test_every_answer_is_documented_and_matches_its_schema(stack: Stack, service: str) -> None:
    skip = UPSTREAM_SWITCHES if service in UPSTREAMS else GATEWAY_HOLDS
    statuses = fuzz(targets(stack)[service], skip)
    record(
        f"schemathesis {service}: requests, 500s", sum(statuses.values()), f"{statuses[500]} x 500"
    )
    assert statuses[500] == 0
    assert {status for status in statuses if status >= 500} <= DOCUMENTED_5XX
    assert statuses[200] > 0 and statuses[422] > 0  # both valid and invalid input was sent
