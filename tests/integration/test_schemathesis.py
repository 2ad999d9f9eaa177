"""Schemathesis against every service's own OpenAPI schema, on the running stack: generated
and hostile input gets a documented answer that matches its schema, never a 500."""

from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode
from schemathesis.generation.case import Case
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

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
# Every answer is one the schema documents, in its content type and shape, and input the
# schema calls invalid is refused with a 4xx. A gateway's 502 and 504 are documented
# answers (every source failed, or timed out), so "no 5xx" becomes "no undocumented
# status": a 500 fails. Left out: "schema-valid input is accepted", since which source
# names exist, and one fault per source, are rules of the running stack, not of the schema.
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def targets(stack: Stack) -> dict[str, str]:
    found = {gateway: stack.url(gateway, "") for gateway in ("sync", "async")}
    return {**found, **{name: stack.upstream_url(name) for name in UPSTREAMS}}


def fuzz(base_url: str, skip: frozenset[str]) -> Counter[int]:
    """Every operation in the service's schema, with valid and with invalid input; the
    statuses seen. A case that sets a parameter in `skip` is not sent."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()
        # Invalid input needs a parameter to be invalid in (/healthz takes none), and one
        # that is sent: a case that sets a skipped one is not.
        fuzzed = {parameter.name for parameter in operation.query} - skip
        modes = list(GenerationMode) if fuzzed else [GenerationMode.POSITIVE]
        for mode in modes:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
            def check(case: Case[Any]) -> None:
                assume(not skip & set(case.query or {}))
                response = case.call(base_url=base_url, timeout=30)
                statuses[response.status_code] += 1
                case.validate_response(response, checks=CHECKS)

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
    assert statuses[200] > 0 and statuses[422] > 0  # both valid and invalid input was sent
