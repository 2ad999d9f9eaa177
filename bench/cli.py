"""The command line: ``python -m bench run | compare | sweep | claims | cost | idle | readme |
failover | cross-node | crosscheck | client-check | pool-cost``."""

import dataclasses
import json
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bench.docs import blocks
from bench.docs.pages import PAGES
from bench.experiments import claims as blog
from bench.experiments import failover
from bench.experiments.compare import run_matrix
from bench.experiments.cost import measure_cost
from bench.experiments.idle import WINDOW_S, measure_rest
from bench.experiments.plan import PRESETS
from bench.experiments.poolcost import pool_cost
from bench.experiments.scaleout import SCALE_OUT_PRESETS, SwarmStack, run_scale_out
from bench.experiments.sweep import SWEEP_PRESETS, run_sweep
from bench.experiments.tour import record_faults, record_tour
from bench.harness.crosscheck import client_check, crosscheck
from bench.harness.load import LoadSpec, run_load
from bench.harness.stack import ComposeStack, GatewayName, compose_project, run_meta
from bench.harness.topology import Topology
from bench.reporting.report import (
    write_records,
    write_report,
    write_scale_out_report,
    write_sweep_report,
)
from bench.reporting.tables import (
    SCALE_OUT,
    claims_table,
    client_cost_table,
    comparison_table,
    cost_table,
    cross_node_table,
    crosscheck_table,
    pool_cost_table,
    rest_table,
    run_table,
    sweep_table,
)


def write_json(out: Path, data: object) -> None:
    """A results file: indented JSON, its folder made if need be."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")


def this_command() -> str:
    """The command line a results file records, as a user would type it."""
    return "python -m bench " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])


app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()


def _warn(messages: list[str]) -> None:
    for message in messages:
        console.print(f"[bold yellow]warning:[/] {message}")


@app.command()
def run(
    url: Annotated[str, typer.Option(help="Any gateway URL, e.g. http://127.0.0.1:8002/news")],
    mode: Annotated[str | None, typer.Option(help="The gateway's ?mode=")] = None,
    sources: Annotated[str | None, typer.Option(help="The gateway's ?sources=")] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "-c",
            "--concurrency",
            min=1,
            max=5000,
            help="Closed loop: clients. Open: max in flight.",
        ),
    ] = 10,
    rate: Annotated[
        float | None, typer.Option(min=0.1, max=100_000, help="Open loop at this many req/s.")
    ] = None,
    duration: Annotated[
        float, typer.Option("-d", "--duration", min=0.5, max=3600, help="Measured window, seconds.")
    ] = 10,
    warmup: Annotated[float, typer.Option(min=0, max=600, help="Warm-up, seconds.")] = 2,
    requests: Annotated[int | None, typer.Option(min=1, help="Stop after N answers.")] = None,
    timeout: Annotated[float, typer.Option(min=0.1, max=600, help="Per request.")] = 30,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write JSON here.")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write CSV here.")] = None,
) -> None:
    """One load run against one URL: closed loop by default, open loop with --rate."""
    params = {k: v for k, v in (("mode", mode), ("sources", sources)) if v is not None}
    spec = LoadSpec(
        url=url,
        params=params,
        loop="open" if rate else "closed",
        concurrency=concurrency,
        rate=rate or 0.0,
        duration_s=duration,
        warmup_s=warmup,
        max_requests=requests,
        timeout_s=timeout,
    )
    with console.status(f"{spec.loop} loop: warm-up {warmup:g} s, then {duration:g} s measured"):
        result = run_load(spec)
    console.print(run_table(result))
    _warn(result.warnings)
    if json_out or csv_out:
        write_records([result.summary()], json_out, csv_out)


SyncUrl = Annotated[
    str | None, typer.Option(help="Sync gateway base URL; SYNC_PORT on loopback by default.")
]
AsyncUrl = Annotated[
    str | None, typer.Option(help="Async gateway base URL; ASYNC_PORT on loopback by default.")
]


def gateway_urls(sync_url: str | None, async_url: str | None) -> tuple[str, str]:
    """The gateways' base URLs: as given, or on loopback at .env's ports."""
    topology = Topology()
    return (
        sync_url or f"http://127.0.0.1:{topology.sync_port}",
        async_url or f"http://127.0.0.1:{topology.async_port}",
    )


class DeployTarget(StrEnum):
    compose = "compose"
    swarm = "swarm"


@contextmanager
def _progress() -> Iterator[tuple[Callable[[str], None], Callable[[int], None]]]:
    """A matrix's progress bar: what it does now, advanced once per measured point."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("calibrating", total=None)

        def on_point(description: str) -> None:
            if "C=" in description:
                progress.advance(task)
            progress.update(task, description=description)

        yield on_point, lambda total: progress.update(task, total=total)


@app.command(name="compare")
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
    with _progress() as (on_point, on_plan):
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
        with _progress() as (on_point, on_plan):
            comparison = run_scale_out(preset, SwarmStack(stack), on_point, on_plan)
    except RuntimeError as exc:  # no such stack, or a reshape the swarm refused
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    records = [row.record() for row in comparison.rows]
    console.print(comparison_table(records, SCALE_OUT, "replicas against workers"))
    for path in write_scale_out_report(comparison, out, command):
        console.print(f"wrote {path}")


class SweepGateway(StrEnum):
    both = "both"
    sync = "sync"
    async_ = "async"


@app.command(name="sweep")
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
        console.print(f"[bold red]error:[/] a gateway did not answer ({exc}): is the stack up?")
        raise typer.Exit(1) from exc
    console.print(sweep_table([point.record() for point in sweep.points]))
    for path in write_sweep_report(sweep, out):
        console.print(f"wrote {path}")


@app.command(name="claims")
def claims_command(
    preset: Annotated[
        str, typer.Option(help=f"One of {', '.join(blog.PRESETS)}: quick takes about 4 minutes.")
    ] = "quick",
    out: Annotated[Path, typer.Option(help="Where claims.md and claims.json go.")] = Path(
        "docs/results"
    ),
    sync_url: SyncUrl = None,
    async_url: AsyncUrl = None,
) -> None:
    """Every claim of the blog post, measured on the running stack, with a verdict each."""
    if preset not in blog.PRESETS:
        raise typer.BadParameter(f"choose one of {', '.join(blog.PRESETS)}", param_hint="--preset")
    command = this_command()
    sync_url, async_url = gateway_urls(sync_url, async_url)
    try:
        with console.status("measuring") as status:
            compose = ComposeStack(sync_url, async_url)
            claims = blog.run_claims(preset, compose, command, lambda step: status.update(step))
    except RuntimeError as exc:  # more than one worker, or a gateway that would not restart
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    except OSError as exc:  # no stack there
        console.print(f"[bold red]error:[/] a gateway did not answer ({exc}): is the stack up?")
        raise typer.Exit(1) from exc
    console.print(claims_table(claims))
    for path in blog.write_claims(claims, out):
        console.print(f"wrote {path}")


@app.command(name="cost")
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
        console.print("[bold red]error:[/] cannot see the stack's containers from this host")
        raise typer.Exit(1)
    command = this_command()
    meta = run_meta(command)  # before the windows: when the run started
    with console.status(f"pricing C={', '.join(map(str, concurrency))}"):
        points = measure_cost(probe, async_url, concurrency, duration, rounds)
    console.print(cost_table(points))
    if out is not None:
        write_json(out, {"meta": meta, "points": [p.record() for p in points]})
        console.print(f"wrote {out}")


@app.command(name="idle")
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
        console.print(f"[bold red]error:[/] {exc}: is the stack up, on this host?")
        raise typer.Exit(1) from exc
    console.print(rest_table(rest))
    if out is not None:
        write_json(out, {"meta": meta, "rest": rest.record()})
        console.print(f"wrote {out}")


class FailoverEvent(StrEnum):
    drain = "drain"
    kill = "kill"
    update = "update"


@app.command(name="tour")
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


@app.command(name="readme")
def readme_command(
    check: Annotated[
        bool, typer.Option(help="Change nothing: exit 1 if a block differs from its files.")
    ] = False,
) -> None:
    """Write the measured blocks of README.md and docs/ (the headline, the claims, the
    matrix's tables, the faults, scale-out) from the results files in docs/results."""
    stale = []
    for page in PAGES:
        text = page.path.read_text()
        try:
            fresh = blocks.rewritten(text, page.blocks)
        except (LookupError, OSError) as exc:  # a block or a results file missing
            console.print(f"[bold red]error:[/] {page.name}: {exc}")
            raise typer.Exit(1) from exc
        if fresh != text:
            stale.append(page.name)
            if not check:
                page.path.write_text(fresh)
                console.print(f"wrote {page.name}")
    if not stale:
        console.print("every page quotes its results files as they are")
    elif check:
        differ = ", ".join(stale)
        console.print(f"[bold red]{differ} differ from docs/results:[/] python -m bench readme")
        raise typer.Exit(1)


@app.command(name="failover")
def failover_command(
    event: Annotated[FailoverEvent, typer.Option(help="What happens to the cluster.")],
    clients: Annotated[int, typer.Option(min=1, max=50, help="Per gateway replica.")] = 5,
    max_duration: Annotated[float, typer.Option(min=20, max=600, help="Seconds, at most.")] = 150,
    out: Annotated[Path | None, typer.Option(help="Write the summary as JSON here.")] = None,
) -> None:
    """On make cluster-up's swarm: a closed loop on every gateway replica while a node
    drains, a node dies (kill), or every source rolls (update); what was lost, and how
    long until every answer was full again."""
    with console.status(f"{event.value} under load"):
        run = failover.failover(event.value, clients, max_duration)
    summary = run.summary()
    console.print_json(data=summary)
    if out is not None:
        write_json(out, summary)


@app.command(name="cross-node")
def cross_node_command(
    rounds: Annotated[int, typer.Option(min=1, max=10)] = 2,
    clients: Annotated[int, typer.Option(min=1, max=200)] = 20,
    duration: Annotated[float, typer.Option(min=2, max=120, help="Each window, seconds.")] = 10,
    out: Annotated[Path | None, typer.Option(help="Write the windows as JSON here.")] = None,
) -> None:
    """On make cluster-up's swarm: the async gateway's sources on its own node, then on
    another, in turns; each call's latency and the machine's CPU per fan-out, and the
    difference the overlay between nodes makes."""
    with console.status("placing the sources, node by node"):
        points = failover.cross_node_cost(rounds, clients, duration)
    console.print(cross_node_table(points))
    if out is not None:
        write_json(out, [dataclasses.asdict(point) for point in points])


@app.command(name="crosscheck")
def crosscheck_command(
    url: Annotated[str, typer.Option(help="Gateway URL to measure with both tools.")],
    concurrency: Annotated[int, typer.Option("-c", "--concurrency", min=1, max=1000)] = 10,
    rounds: Annotated[int, typer.Option(min=2, max=100, help="hey runs rounds x C requests.")] = 8,
) -> None:
    """Measure one closed-loop point with hey and with this tool; they should agree."""
    check = crosscheck(url, concurrency, rounds)
    console.print(crosscheck_table(check))
    if not check.agrees:
        raise typer.Exit(1)


@app.command(name="client-check")
def client_check_command(
    url: Annotated[str, typer.Option(help="A fast URL, e.g. a gateway's /healthz")],
    concurrency: Annotated[int, typer.Option("-c", "--concurrency", min=1, max=1000)] = 50,
    requests: Annotated[int, typer.Option(min=100, max=100_000)] = 3000,
) -> None:
    """Which Python client costs the least CPU per request: why the bench uses aiohttp."""
    console.print(client_cost_table(client_check(url, concurrency, requests), url, concurrency))


@app.command(name="pool-cost")
def pool_cost_command(
    concurrency: Annotated[
        list[int], typer.Option("-c", "--concurrency", min=1, max=1000, help="Repeatable.")
    ] = [10, 100],  # noqa: B006 (typer reads the default; it is never mutated)
    fan_outs: Annotated[int, typer.Option(min=10, max=10_000, help="Fan-outs per row.")] = 300,
    port: Annotated[
        int, typer.Option(min=1024, max=65000, help="First of 3 loopback ports.")
    ] = 9201,
) -> None:
    """CPU per fan-out in each async client, outside the gateway: which pool scales."""
    console.print(pool_cost_table(pool_cost(tuple(concurrency), fan_outs, port)))
