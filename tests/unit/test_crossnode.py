"""bench cross-node's windows, as its table reads them (bench/experiments/crossnode.py)."""

from rich.console import Console

from bench.experiments.crossnode import PlacementCost
from bench.reporting.tables import cross_node_table


def test_the_cross_node_table_gives_the_difference_per_call() -> None:
    points = [
        PlacementCost("vm", True, 100, {"wire": 301.0, "gazette": 501.0}, 4.0),
        PlacementCost("fanout-n2", False, 100, {"wire": 302.0, "gazette": 502.0}, 4.6),
    ]
    console = Console(width=200, record=True)
    console.print(cross_node_table(points))
    # 1 ms more per call; 0.6 ms more of the machine per fan-out of 2 calls: 0.3 per call.
    assert "+1.00 ms of latency, +0.300 ms of the machine's CPU" in console.export_text()
