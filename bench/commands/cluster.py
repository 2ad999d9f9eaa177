"""Commands on `make cluster-up`'s multi-node swarm: failover under load, and the
sources on the gateway's node against another."""

import dataclasses
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from bench.commands.common import console
from bench.experiments.crossnode import cross_node_cost
from bench.experiments.failover import failover
from bench.harness.results import run_meta, this_command, write_json
from bench.reporting.tables import (
    cross_node_table,
)


class FailoverEvent(StrEnum):
    drain = "drain"
    kill = "kill"
    update = "update"


def failover_command(
    event: Annotated[FailoverEvent, typer.Option(help="What happens to the cluster.")],
    clients: Annotated[int, typer.Option(min=1, max=50, help="Per gateway replica.")] = 5,
    max_duration: Annotated[float, typer.Option(min=20, max=600, help="Seconds, at most.")] = 150,
    out: Annotated[Path | None, typer.Option(help="Write the summary as JSON here.")] = None,
) -> None:
    """On make cluster-up's swarm: a closed loop on every gateway replica while a node
    drains, a node dies (kill), or every source rolls (update); what was lost, and how
    long until every answer was full again."""
    meta = run_meta(this_command())  # before the run: when it started
    with console.status(f"{event.value} under load"):
        run = failover(event.value, clients, max_duration)
    summary = run.summary()
    console.print_json(data=summary)
    if out is not None:
        write_json(out, {"meta": meta, **summary})


def cross_node_command(
    rounds: Annotated[int, typer.Option(min=1, max=10)] = 2,
    clients: Annotated[int, typer.Option(min=1, max=200)] = 20,
    duration: Annotated[float, typer.Option(min=2, max=120, help="Each window, seconds.")] = 10,
    out: Annotated[Path | None, typer.Option(help="Write the windows as JSON here.")] = None,
) -> None:
    """On make cluster-up's swarm: the async gateway's sources on its own node, then on
    another, in turns; each call's latency and the machine's CPU per fan-out, and the
    difference the overlay between nodes makes."""
    meta = run_meta(this_command())  # before the run: when it started
    with console.status("placing the sources, node by node"):
        points = cross_node_cost(rounds, clients, duration)
    console.print(cross_node_table(points))
    if out is not None:
        write_json(out, {"meta": meta, "windows": [dataclasses.asdict(p) for p in points]})
