"""The matrix's rows (bench/experiments/rows.py): the series each point is drawn under."""

from dataclasses import replace

from bench.experiments.plan import GatewayConfig, Point, label
from core.theory import TARGETS_BY_NAME

SYNC = GatewayConfig("sync", 1, 40, "requests", 1000, 1000)
ASYNC = GatewayConfig("async", 1, 40, "aiohttp", 1000, 1000)


def test_labels_name_the_client_and_a_threadpool_other_than_the_stacks() -> None:
    async_point = Point(TARGETS_BY_NAME["async"], 10, replace(ASYNC, http_client="httpx"))
    sync_point = Point(TARGETS_BY_NAME["sync"], 10, replace(SYNC, threadpool_tokens=200))
    assert label(async_point, 40) == "async · httpx"
    assert label(sync_point, 40) == "sync · 200 tokens"
    assert label(sync_point, 200) == "sync"
    assert label(Point(TARGETS_BY_NAME["blocking"], 1, ASYNC), 40) == "blocking"
    granian = Point(TARGETS_BY_NAME["async"], 10, replace(ASYNC, server="granian"))
    assert label(granian, 40) == "async · aiohttp · granian"
    assert label(granian, 40, stack_server="granian") == "async · aiohttp"
