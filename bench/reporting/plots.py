"""The benchmark's plots: measured against ideal, the cost of a fan-out, the threadpool sweep.

matplotlib loads only when a plot is drawn, with the file-only Agg backend (no display on
servers or in CI), so the rest of the tool starts without it.
"""

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.experiments.rows import Comparison, Row
from bench.reporting.tables import censored
from core.theory import TARGETS, ideal, mdc_wait

if TYPE_CHECKING:
    from matplotlib.axes import Axes

COLOURS = {
    "sync": "tab:red",
    "sync-threads": "tab:orange",
    "async · aiohttp": "tab:blue",
    "async · httpx-aiohttp": "tab:olive",
    "async · httpx2": "tab:green",
    "async · httpx": "tab:purple",
    "async-sequential": "tab:cyan",
    "blocking": "tab:gray",
}
# Series with no colour of their own (another server's, say) take the next of these as they
# first appear, so that no two share one in a report; the threadpool figure's shades too.
FALLBACK_COLOURS = ("tab:brown", "tab:pink", "black", "darkgoldenrod", "teal", "navy", "maroon")
_ASSIGNED: dict[str, str] = {}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def colour(series: str) -> str:
    if series in COLOURS:
        return COLOURS[series]
    if series not in _ASSIGNED:
        _ASSIGNED[series] = FALLBACK_COLOURS[len(_ASSIGNED) % len(FALLBACK_COLOURS)]
    return _ASSIGNED[series]


def main_rows(comparison: Comparison) -> list[Row]:
    """Every row but the threadpool sweep's, which has a figure of its own, and the
    overload pair's, an open loop with no concurrency to plot against."""
    return [
        row for row in comparison.rows if " tokens" not in row.series and not row.point.overload
    ]


def series_of(rows: Iterable[Row]) -> dict[str, list[Row]]:
    """Rows by series, each sorted by concurrency, in a stable order."""
    found: dict[str, list[Row]] = {}
    for row in rows:
        found.setdefault(row.series, []).append(row)
    return {name: sorted(rows, key=lambda r: r.concurrency) for name, rows in found.items()}


def _ideal_curve(comparison: Comparison, rows: Sequence[Row]) -> tuple[list[int], list[Any]]:
    """The ideal line on a fine grid, so its knees show between measured points."""
    grid = list(range(1, max(r.concurrency for r in rows) + 1))
    delays = list(comparison.delays_s.values())
    first = rows[0]
    return grid, [ideal(first.target, c, first.limits, delays) for c in grid]


LEGEND_TITLE = (
    "solid: measured\ndashed: ideal\n△: at least (a request\nstill waiting had waited longer)"
)


def stamp(started_at: str, commit: str) -> str:
    """What every plot carries in its corner: the run it draws."""
    return f"measured {started_at} at {commit}"


def _run(comparison: Comparison) -> str:
    return stamp(comparison.started_at, comparison.commit)


def _save(fig: Any, path: Path, run: str) -> Path:
    fig.tight_layout()
    fig.text(0.995, 0.005, run, ha="right", va="bottom", fontsize=7, color="dimgray")
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


# A figure against the ideal: its label, the measured value of a row, the ideal's value,
# and the record's percentile whose value may be a floor.
Figure = tuple[str, Callable[[Row], float], Callable[[Any], float], str | None]
AGAINST_IDEAL: dict[str, Figure] = {
    "throughput.png": (
        "throughput (req/s)",
        lambda r: r.result.throughput,
        lambda i: i.throughput,
        None,
    ),
    "latency_p50.png": (
        "p50 latency (ms)",
        lambda r: r.result.latency.percentile_ms(50),
        lambda i: i.latency_s * 1000,
        "latency_p50_ms",
    ),
    "latency_p99.png": (
        "p99 latency (ms)",
        lambda r: r.result.latency.percentile_ms(99),
        lambda i: i.latency_s * 1000,
        "latency_p99_ms",
    ),
}


def plot_against_ideal(comparison: Comparison, out_dir: Path) -> list[Path]:
    rows = main_rows(comparison)
    if not rows:
        return []
    plt = _pyplot()
    workers_counts = sorted({row.workers for row in rows})
    run = _run(comparison)
    written = []
    for filename, figure in AGAINST_IDEAL.items():
        ylabel = figure[0]
        fig, axes = plt.subplots(
            1, len(workers_counts), figsize=(6.5 * len(workers_counts), 5), squeeze=False
        )
        for ax, workers in zip(axes[0], workers_counts, strict=True):
            panel = series_of(r for r in rows if r.workers == workers)
            for name, series in panel.items():
                _plot_series(ax, comparison, name, series, figure)
            ax.set_title(f"{workers} gunicorn worker(s) per gateway")
            _log_axes(ax, "concurrent clients (closed loop)")
        axes[0][0].set_ylabel(ylabel)
        _one_legend(axes[0])
        fig.suptitle(f"{ylabel} vs concurrency, against the theoretical limit")
        written.append(_save(fig, out_dir / filename, run))
    return written


def _plot_series(
    ax: "Axes", comparison: Comparison, name: str, series: list[Row], figure: Figure
) -> None:
    """One series: measured points, its floors as open triangles, its ideal dashed."""
    _, measured, ideal_value, percentile = figure
    xs = [r.concurrency for r in series]
    ax.plot(xs, [measured(r) for r in series], "o-", color=colour(name), label=name)
    # A lower bound ("≥" in the tables): an unanswered request waited longer.
    floors = [r for r in series if percentile and censored(r.record(), percentile)]
    ax.plot(
        [r.concurrency for r in floors],
        [measured(r) for r in floors],
        "^",
        markersize=11,
        markerfacecolor="white",
        color=colour(name),
        label="_nolegend_",  # the legend's title names the triangles
    )
    grid, ideals = _ideal_curve(comparison, series)
    ax.plot(
        grid, [ideal_value(i) for i in ideals], "--", color=colour(name), alpha=0.6, linewidth=1
    )


def _one_legend(axes: Any) -> None:
    """One legend for every series in any panel: the client axis runs on 1 worker only."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(name, handle)
    axes[0].legend(list(handles.values()), list(handles), title=LEGEND_TITLE, fontsize=8)


def _log_axes(ax: "Axes", xlabel: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)


def plot_cpu_per_request(comparison: Comparison, out_dir: Path) -> list[Path]:
    """The gateway's CPU per answered request against C: where a pool that scans shows."""
    rows = [r for r in main_rows(comparison) if r.workers == 1]
    panel = {
        name: [r for r in series if r.cpu_ms_per_request is not None]
        for name, series in series_of(rows).items()
    }
    panel = {name: series for name, series in panel.items() if series}
    if not panel:
        return []
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, series in panel.items():
        xs = [r.concurrency for r in series]
        ys = [r.cpu_ms_per_request for r in series]
        ax.plot(xs, ys, "o-", color=colour(name), label=name)
    _log_axes(ax, "concurrent clients (closed loop)")
    ax.set_ylabel("gateway CPU ms per answered request")
    ax.legend(fontsize=8)
    ax.set_title("the cost of one fan-out (1 worker): flat is a client that scales")
    return [_save(fig, out_dir / "cpu_per_request.png", _run(comparison))]


def plot_threadpool(comparison: Comparison, out_dir: Path) -> list[Path]:
    """The sync gateway with more threads: throughput, p99, CPU and memory per size."""
    # The stack's own server only: the server axis also runs sync at the stack's tokens.
    server = comparison.stack["sync"].server
    sweep = [
        r
        for r in comparison.rows
        if r.target.name == "sync"
        and r.workers == 1
        and not r.point.overload
        and r.point.config.server == server
    ]
    by_c: dict[int, list[Row]] = {}
    for row in sweep:
        by_c.setdefault(row.concurrency, []).append(row)
    by_c = {
        c: rows for c, rows in by_c.items() if len({r.limits.threadpool_tokens for r in rows}) > 1
    }
    if not by_c:
        return []
    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.5))
    panels: list[tuple[str, Callable[[Row], float | None]]] = [
        ("throughput (req/s; dashed: ideal)", lambda r: r.result.throughput),
        ("p99 latency (ms)", lambda r: r.result.latency.percentile_ms(99)),
        ("gateway CPU ms per request", lambda r: r.cpu_ms_per_request),
        ("peak worker RSS (MiB)", lambda r: None if r.cost is None else r.cost.peak_worker_rss_mib),
    ]
    for index, (concurrency, rows) in enumerate(sorted(by_c.items())):
        rows = sorted(rows, key=lambda r: r.limits.threadpool_tokens)
        tokens = [r.limits.threadpool_tokens for r in rows]
        shade = FALLBACK_COLOURS[index % len(FALLBACK_COLOURS)]
        for ax, (title, value) in zip(axes, panels, strict=True):
            ax.plot(tokens, [value(r) for r in rows], "o-", color=shade, label=f"C={concurrency}")
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("threadpool tokens (1 worker)")
            ax.set_xscale("log")
            ax.set_xticks(tokens, [str(t) for t in tokens])
            ax.minorticks_off()
            ax.grid(True, which="both", alpha=0.3)
        axes[0].plot(tokens, [r.ideal.throughput for r in rows], "--", color=shade, alpha=0.6)
    axes[0].legend(fontsize=8)
    fig.suptitle("why not just add threads? the sync gateway, one worker, more threadpool tokens")
    return [_save(fig, out_dir / "threadpool.png", _run(comparison))]


def plot_waterfalls(
    samples: dict[str, dict[str, Any]], out_dir: Path, run: str, async_client: str
) -> list[Path]:
    """One figure per gateway: each mode's fan-out, source by source, on one time axis; the
    async mode in its client's colour, as in every other figure."""
    plt = _pyplot()
    written = []
    for gateway in ("sync", "async"):
        modes = [t.name for t in TARGETS if t.gateway == gateway and t.name in samples]
        if not modes:
            continue
        longest = max(samples[m]["elapsed_ms"] for m in samples)
        fig, axes = plt.subplots(
            len(modes), 1, figsize=(9, 1.4 + 1.3 * len(modes)), sharex=True, squeeze=False
        )
        for ax, mode in zip(axes[:, 0], modes, strict=True):
            body = samples[mode]
            names = [s["name"] for s in body["sources"]]
            for y, source in enumerate(body["sources"]):
                ax.barh(
                    y,
                    source["elapsed_ms"],
                    left=source["started_ms"],
                    color=colour(mode if mode != "async" else f"async · {async_client}"),
                    alpha=0.8,
                )
                ax.text(
                    source["started_ms"] + source["elapsed_ms"] + 10,
                    y,
                    f"{source['elapsed_ms']:.0f} ms",
                    va="center",
                    fontsize=8,
                )
            ax.axvline(body["elapsed_ms"], color="black", linestyle=":", linewidth=1)
            ax.set_yticks(range(len(names)), names)
            ax.invert_yaxis()
            ax.set_xlim(0, longest * 1.15)
            ax.set_title(f"{mode}: total {body['elapsed_ms']:.0f} ms", fontsize=10, loc="left")
        axes[-1][0].set_xlabel("ms since the fan-out started (dotted: the gateway's total)")
        fig.suptitle(f"{gateway} gateway: one request's fan-out")
        written.append(_save(fig, out_dir / f"waterfall_{gateway}.png", run))
    return written


def plot_scale_out(comparison: Comparison, out_dir: Path) -> list[Path]:
    """Replicas against workers: throughput, and the memory it took, per process count."""
    gateways = list(dict.fromkeys(row.target.gateway for row in comparison.rows))
    if not gateways:
        return []
    plt = _pyplot()
    fig, axes = plt.subplots(2, len(gateways), figsize=(6 * len(gateways), 8), squeeze=False)
    lines: dict[str, tuple[str, Callable[[Row], bool]]] = {
        "1 replica, N workers": ("tab:blue", lambda r: r.point.config.replicas == 1),
        "N replicas, 1 worker each": ("tab:orange", lambda r: r.workers == 1),
    }
    for column, gateway in enumerate(gateways):
        rows = sorted(
            (r for r in comparison.rows if r.target.gateway == gateway), key=lambda r: r.processes
        )
        top, bottom = axes[0][column], axes[1][column]
        for name, (hue, belongs) in lines.items():
            series = [r for r in rows if belongs(r)]
            xs = [r.processes for r in series]
            top.plot(xs, [r.result.throughput for r in series], "o-", color=hue, label=name)
            memory = [(r.processes, r.cost.peak_gateway_rss_mib) for r in series if r.cost]
            if memory:
                bottom.plot(*zip(*memory, strict=True), "o-", color=hue, label=name)
        ideal_points = sorted({(r.processes, r.ideal.throughput) for r in rows})
        top.plot(*zip(*ideal_points, strict=True), "--", color="gray", label="ideal")
        top.set_title(f"{gateway} gateway, C={rows[0].concurrency}")
        top.set_ylabel("throughput (req/s)")
        bottom.set_ylabel("gateway memory, every process (MiB)")
        for ax in (top, bottom):
            ax.set_xlabel("gunicorn worker processes (replicas x workers)")
            ax.set_xticks(sorted({r.processes for r in rows}))
            ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle("replicas against workers, on one machine, in one run")
    return [_save(fig, out_dir / "scale_out.png", _run(comparison))]


def plot_sweep(records: Sequence[dict[str, Any]], meta: dict[str, Any], out_dir: Path) -> Path:
    """Mean wait against rho for both gateways on the same axes: measured (with its
    standard error, as the tables give it), replayed and predicted. The sync gateway's
    prediction is M/D/c on a fine grid, with the band where one run this long lands; the
    async gateway's is no wait at all."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for gateway in ("sync", "async"):
        points = sorted((r for r in records if r["gateway"] == gateway), key=lambda r: r["rho"])
        if not points:
            continue
        # The async gateway in its client's colour, where the run recorded it.
        client = meta.get("async_http_client")
        shade = colour(gateway if gateway == "sync" or client is None else f"async · {client}")
        rhos = [r["rho"] for r in points]
        ax.errorbar(
            rhos,
            [r["wait_mean_ms"] for r in points],
            yerr=[r["wait_error_ms"] for r in points],
            fmt="o",
            capsize=3,
            color=shade,
            label=f"{gateway}: measured (± s.e.)",
        )
        if gateway == "sync":
            capacity = meta["capacities"]["sync"]
            servers, service_s = capacity["servers"], capacity["service_ms"] / 1000
            grid = [rho / 100 for rho in range(int(100 * min(rhos)), int(100 * max(rhos)) + 1)]
            predicted = [
                mdc_wait(servers, rho * servers / service_s, service_s).mean_s * 1000
                for rho in grid
            ]
            ax.plot(grid, predicted, "-", color=shade, alpha=0.7, label=f"sync: M/D/{servers}")
            ax.fill_between(
                rhos,
                [r["spread_low_ms"] for r in points],
                [r["spread_high_ms"] for r in points],
                color=shade,
                alpha=0.12,
                label=f"sync: M/D/{servers}, 95% of runs this long",
            )
            replayed = [r["replayed_mean_ms"] for r in points]
            ax.plot(rhos, replayed, "x", color=shade, label="sync: ideal queue, same arrivals")
        else:
            ax.plot(rhos, [0.0] * len(rhos), "--", color=shade, label="async: M/D/∞ (no wait)")
    ax.set_xlabel("load rho: arrivals / capacity (Poisson)")
    ax.set_ylabel("mean wait before the fan-out (ms)")
    # Waits span 0 to seconds: logarithmic above 1 ms, linear below, where 0 can show.
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(
        f"waiting against queueing theory · {meta['started_at']} · {meta['commit']}", fontsize=10
    )
    return _save(fig, out_dir / "wait.png", stamp(meta["started_at"], meta["commit"]))
