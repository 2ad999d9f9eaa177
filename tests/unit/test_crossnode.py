"""bench cross-node's windows, as its table reads them (bench/experiments/crossnode.py)."""

import pytest
from rich.console import Console

from bench.experiments import crossnode
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


def test_a_drained_node_is_refused_before_any_source_is_pinned_to_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pinned to a drained node, the sources never converge: a run once timed out there, and
    # left them pinned. Nothing is asked of the swarm but the nodes' states.
    asked: list[tuple[str, ...]] = []

    def docker(*args: str) -> str:
        asked.append(args)
        return "vm Active\nfanout-n2 Drain\nfanout-n3 Active"

    monkeypatch.setattr(crossnode, "docker", docker)
    with pytest.raises(RuntimeError, match="fanout-n2 Drain"):
        crossnode.cross_node_cost()
    assert [args[:2] for args in asked] == [("node", "ls")]
