"""The cross-check's reading of hey's output, and its verdict."""

from pathlib import Path

import pytest

from bench.harness.crosscheck import CrossCheck, ToolPoint, parse_hey

# --- the cross-check's parsing and verdict -------------------------------------------

HEY_OUTPUT = (Path(__file__).parent / "data" / "hey_output.txt").read_text()


def test_parse_hey_reads_throughput_p50_and_status_200s() -> None:
    throughput, p50_ms, ok = parse_hey(HEY_OUTPUT)
    assert throughput == 11.7409
    assert p50_ms == pytest.approx(823.4)
    assert ok == 80


def test_parse_hey_refuses_output_it_does_not_understand() -> None:
    with pytest.raises(ValueError, match="unexpected hey output"):
        parse_hey("Error: connection refused")


@pytest.mark.parametrize(
    ("bench_throughput", "bench_p50", "agrees"),
    [(10.0, 100.0, True), (11.4, 86.0, True), (11.6, 100.0, False), (10.0, 84.0, False)],
)
def test_cross_check_agrees_within_fifteen_percent_of_hey(
    bench_throughput: float, bench_p50: float, agrees: bool
) -> None:
    check = CrossCheck(
        "http://127.0.0.1/news",
        10,
        hey=ToolPoint("hey", 10.0, 100.0, 80),
        bench=ToolPoint("bench", bench_throughput, bench_p50, 80),
    )
    assert check.agrees is agrees
