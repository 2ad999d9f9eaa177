"""Commands on the compose stack (`make up`): the matrix, the sweep, the claims, the
CPU per fan-out, the stack at rest, and the tour."""

import dataclasses
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from bench.commands.common import AsyncUrl, SyncUrl, console, fail, gateway_urls, progress
from bench.experiments.claims.model import PRESETS as CLAIMS_PRESETS
from bench.experiments.claims.report import write_claims
from bench.experiments.claims.run import run_claims
from bench.experiments.compare import run_matrix
from bench.experiments.cost import measure_cost
from bench.experiments.idle import WINDOW_S, measure_rest
from bench.experiments.plan import PRESETS
from bench.experiments.scaleout import SCALE_OUT_PRESETS, SwarmStack, run_scale_out
from bench.experiments.sweep import SWEEP_PRESETS, run_sweep
from bench.experiments.tour import record_faults, record_tour
from bench.harness.results import run_meta, this_command, write_json
from bench.harness.stack import ComposeStack, GatewayName, compose_project
from bench.reporting.report import (
    write_report,
    write_scale_out_report,
    write_sweep_report,
)
from bench.reporting.tables import (
    SCALE_OUT,
    claims_table,
    comparison_table,
    cost_table,
    rest_table,
    sweep_table,
)


class DeployTarget(StrEnum):
    compose = "compose"
    swarm = "swarm"


def compare_command(
    preset: Annotated[
        str,
        typer.Option(
            help=f"compose: one of {', '.join(PRESETS)}; "
            f"swarm: one of {', '.join(SCALE_OUT_PRESETS)}."
        ),
    ] = "quick",
    out: Annotated[Path, typer.Option(help="The report folder.")] = Path("reports/latest"),
    target: Annotated[
        DeployTarget,
        typer.Option(
            help="compose: the matrix on `make up`'s stack. swarm: replicas against workers on"
            " `make swarm-up`'s stack."
        ),
    ] = DeployTarget.compose,
    stack: Annotated[
        str, typer.Option(envvar="SWARM_STACK", help="--target swarm: the stack's name.")
    ] = "fanout",
    sync_url: SyncUrl = None,
    async_url: AsyncUrl = None,
    restart: Annotated[
        bool,
        typer.Option(help="Restart gateways for other workers, clients, servers, threadpools."),
    ] = True,
) -> None:
    """The matrix: every gateway and mode x concurrency x workers, the async clients, the
    servers and the sync threadpool as axes, each point priced in CPU and memory, with a
    report folder.
    With --target swarm: each gateway as N replicas of 1 worker against 1 replica of N."""
    command = this_command()
    if target is DeployTarget.swarm:
        _compare_swarm(preset, out, stack, command)
        return
    if preset not in PRESETS:
        raise typer.BadParameter(f"choose one of {', '.join(PRESETS)}", param_hint="--preset")
    sync_url, async_url = gateway_urls(sync_url, async_url)
    with progress() as (on_point, on_plan):
        compose = ComposeStack(sync_url, async_url)
        comparison = run_matrix(preset, compose, restart, on_point, on_plan=on_plan)
    console.print(comparison_table([row.record() for row in comparison.rows]))
    for path in write_report(comparison, out, command):
        console.print(f"wrote {path}")


def _compare_swarm(preset: str, out: Path, stack: str, command: str) -> None:
    if preset not in SCALE_OUT_PRESETS:
        raise typer.BadParameter(
            f"with --target swarm, choose one of {', '.join(SCALE_OUT_PRESETS)}",
            param_hint="--preset",
        )
    try:
        with progress() as (on_point, on_plan):
            comparison = run_scale_out(preset, SwarmStack(stack), on_point, on_plan)
    except RuntimeError as exc:  # no such stack, or a reshape the swarm refused
        fail(str(exc), exc)
    records = [row.record() for row in comparison.rows]
    console.print(comparison_table(records, SCALE_OUT, "replicas against workers"))
    for path in write_scale_out_report(comparison, out, command):
        console.print(f"wrote {path}")


class SweepGateway(StrEnum):
    both = "both"
    sync = "sync"
    async_ = "async"


def sweep_command(
    preset: Annotated[
        str,
        typer.Option(help=f"One of {', '.join(SWEEP_PRESETS)}: quick takes about 2 minutes."),
    ] = "quick",
    gateway: Annotated[SweepGateway, typer.Option(help="Which gateways to sweep.")] = (
        SweepGateway.both
    ),
    seed: Annotated[int, typer.Option(help="The first point's arrivals; +1 per point.")] = 0,
    load: Annotated[
        list[float] | None,
        typer.Option(min=0.05, max=0.99, help="Repeatable: these loads rho, not the preset's."),
    ] = None,
    window: Annotated[
        float | None,
        typer.Option(min=5, max=3600, help="Seconds measured per point, not the preset's."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Where sweep.json, sweep.md and wait.png go.")] = Path(
        "reports/sweep"
    ),
    sync_url: SyncUrl = None,
    async_url: AsyncUrl = None,
) -> None:
    """Poisson arrivals at shares of each gateway's capacity: the wait each point measured,
    against queueing theory's prediction and an ideal queue fed the same arrivals."""
    if preset not in SWEEP_PRESETS:
        raise typer.BadParameter(f"choose one of {', '.join(SWEEP_PRESETS)}", param_hint="--preset")
    chosen = SWEEP_PRESETS[preset]
    if load:
        chosen = dataclasses.replace(chosen, loads=tuple(load))
    if window is not None:
        chosen = dataclasses.replace(chosen, sync_window_s=window, async_window_s=window)
    command = this_command()
    sync_url, async_url = gateway_urls(sync_url, async_url)
    every: dict[GatewayName, str] = {"sync": sync_url, "async": async_url}
    bases = {
        name: base
        for name, base in every.items()
        if gateway is SweepGateway.both or gateway.value == name
    }
    try:
        with console.status("measuring") as status:
            sweep = run_sweep(
                chosen, preset, bases, command, seed, lambda step: status.update(step)
            )
    except OSError as exc:  # no stack there
        fail(f"a gateway did not answer ({exc}): is the stack up?", exc)
    console.print(sweep_table([point.record() for point in sweep.points]))
    for path in write_sweep_report(sweep, out):
        console.print(f"wrote {path}")


def claims_command(
    preset: Annotated[
        str, typer.Option(help=f"One of {', '.join(CLAIMS_PRESETS)}: quick takes about 4 minutes.")
    ] = "quick",
    out: Annotated[Path, typer.Option(help="Where claims.md and claims.json go.")] = Path(
        "reports/claims"
    ),
    sync_url: SyncUrl = None,
    async_url: AsyncUrl = None,
) -> None:
    """Every claim of the blog post, measured on the running stack, with a verdict each."""
    if preset not in CLAIMS_PRESETS:
        raise typer.BadParameter(
            f"choose one of {', '.join(CLAIMS_PRESETS)}", param_hint="--preset"
        )
    command = this_command()
    sync_url, async_url = gateway_urls(sync_url, async_url)
    try:
        with console.status("measuring") as status:
            compose = ComposeStack(sync_url, async_url)
            claims = run_claims(preset, compose, command, lambda step: status.update(step))
    except RuntimeError as exc:  # more than one worker, or a gateway that would not restart
        fail(str(exc), exc)
    except OSError as exc:  # no stack there
        fail(f"a gateway did not answer ({exc}): is the stack up?", exc)
    console.print(claims_table(claims))
    for path in write_claims(claims, out):
        console.print(f"wrote {path}")


def cost_command(
    concurrency: Annotated[
        list[int], typer.Option("-c", "--concurrency", min=1, max=2000, help="Repeatable.")
    ] = [200],  # noqa: B006 (typer reads the default; it is never mutated)
    duration: Annotated[float, typer.Option(min=2, max=600, help="Each window, seconds.")] = 5,
    rounds: Annotated[
        int, typer.Option(min=1, max=20, help="Pairs of windows: trivial, then fan-out.")
    ] = 3,
    out: Annotated[Path | None, typer.Option(help="Write the points as JSON here.")] = None,
    async_url: AsyncUrl = None,
) -> None:
    """CPU per fan-out on the compose stack, in trivial requests (/healthz) of the same run."""
    sync_url, async_url = gateway_urls(None, async_url)
    probe = ComposeStack(sync_url, async_url).probe("async")
    if probe is None:
        fail("cannot see the stack's containers from this host")
    command = this_command()
    meta = run_meta(command)  # before the windows: when the run started
    with console.status(f"pricing C={', '.join(map(str, concurrency))}"):
        points = measure_cost(probe, async_url, concurrency, duration, rounds)
    console.print(cost_table(points))
    if out is not None:
        write_json(out, {"meta": meta, "points": [p.record() for p in points]})
        console.print(f"wrote {out}")


def idle_command(
    window: Annotated[float, typer.Option(min=10, max=600, help="Seconds at rest.")] = WINDOW_S,
    out: Annotated[Path | None, typer.Option(help="Write the split as JSON here.")] = None,
) -> None:
    """The compose stack at rest: the machine's busy share, split between the services,
    Docker's engine and the healthchecks' execs. Send it no load meanwhile."""
    meta = run_meta(this_command())
    try:
        with console.status(f"{window:.0f} s at rest"):
            rest = measure_rest(compose_project(), window)
    except RuntimeError as exc:
        fail(f"{exc}: is the stack up, on this host?", exc)
    console.print(rest_table(rest))
    if out is not None:
        write_json(out, {"meta": meta, "rest": rest.record()})
        console.print(f"wrote {out}")


def tour_command(
    out: Annotated[Path, typer.Option(help="Where the answers go.")] = Path(
        "docs/results/tour.json"
    ),
    sync_url: SyncUrl = None,
    async_url: AsyncUrl = None,
) -> None:
    """Record the README's curl tour from the running stack, one /news of each gateway, and
    the faults docs/failure-modes.md shows."""
    command = this_command()
    sync_url, async_url = gateway_urls(sync_url, async_url)
    bases = {"sync": sync_url, "async": async_url}
    recorded = {**record_tour(bases, command), **record_faults(bases)}
    write_json(out, recorded)
    console.print(
        f"wrote {out}: python -m bench readme puts it in README.md and docs/failure-modes.md"
    )
