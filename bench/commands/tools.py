"""Commands on any URL or none: one load run, the cross-checks of the load client, the
clients' pool cost, and the docs' measured blocks."""

from pathlib import Path
from typing import Annotated

import typer

from bench.commands.common import console, fail, warn
from bench.docs import blocks
from bench.docs.pages import PAGES
from bench.experiments.poolcost import pool_cost
from bench.harness.crosscheck import client_check, crosscheck
from bench.harness.load import LoadSpec, run_load
from bench.reporting.report import (
    write_records,
)
from bench.reporting.tables import (
    client_cost_table,
    crosscheck_table,
    pool_cost_table,
    run_table,
)


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
    warn(result.warnings)
    if json_out or csv_out:
        write_records([result.summary()], json_out, csv_out)


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
            fail(f"{page.name}: {exc}", exc)
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


def client_check_command(
    url: Annotated[str, typer.Option(help="A fast URL, e.g. a gateway's /healthz")],
    concurrency: Annotated[int, typer.Option("-c", "--concurrency", min=1, max=1000)] = 50,
    requests: Annotated[int, typer.Option(min=100, max=100_000)] = 3000,
) -> None:
    """Which Python client costs the least CPU per request: why the bench uses aiohttp."""
    console.print(client_cost_table(client_check(url, concurrency, requests), url, concurrency))


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
