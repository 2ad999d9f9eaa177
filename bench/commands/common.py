"""What every command shares: the console, the gateways' URLs, a progress bar, and how a
command fails."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bench.harness.topology import Topology

console = Console()


def warn(messages: list[str]) -> None:
    for message in messages:
        console.print(f"[bold yellow]warning:[/] {message}")


def fail(message: str, cause: BaseException | None = None) -> NoReturn:
    """Print the error and end the command with exit status 1."""
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1) from cause


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


@contextmanager
def progress() -> Iterator[tuple[Callable[[str], None], Callable[[int], None]]]:
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
