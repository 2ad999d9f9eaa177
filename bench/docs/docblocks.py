"""The measured blocks of docs/ (bench/docs/blocks.py), each built from the results file it
quotes: the matrix's tables, the cost of a fan-out, the sweeps, the faults, and the swarm's
and the cluster's runs. Links are relative to docs/, where every page lives."""

import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bench.docs.blocks import Builder, Record, load, ran, wrapped
from bench.docs.readme import scale_out_figures
from bench.experiments.cost import FAN_OUT_TARGET, UPSTREAM_CALL_TARGET
from bench.experiments.idle import SHARES
from bench.experiments.tour import render_all_failing, render_faults
from bench.harness.topology import Topology
from bench.reporting.report import server_table
from bench.reporting.tables import COMPARISON, Column, markdown_table, number, sweep_brief

# The matrix's columns the docs show; summary.md has every one.
_BY_KEY = {column.key: column for column in COMPARISON}
ROW_COLUMNS = tuple(
    _BY_KEY[key]
    for key in (
        "series",
        "workers",
        "load",
        "throughput",
        "ideal_throughput",
        "throughput_vs_ideal",
        "cap",
        "latency_p50_ms",
        "latency_p99_ms",
        "gateway_cpu_ms_per_request",
        "peak_worker_rss_mib",
    )
)
OVERLOAD_COLUMNS = tuple(
    _BY_KEY[key]
    for key in (
        "series",
        "throughput",
        "throughput_vs_ideal",
        "latency_p50_ms",
        "latency_p99_ms",
        "refused_share",
        "refused_p99_ms",
    )
)


def _matrix(folder: Path) -> tuple[list[Record], Record]:
    results = load(folder / "results.json")
    return results["runs"], results["meta"]


def _as_stack(meta: Record) -> Callable[[Record], bool]:
    """Whether a row ran under the stack's own server (the server axis has the others)."""
    return lambda run: run.get("server", meta.get("server")) == meta.get("server")


def _closed(run: Record) -> bool:
    return not str(run["load"]).endswith("/s")  # an open loop's load is a rate


def _made(meta: Record) -> str:
    return f"[The run](results/summary.md) of {ran(meta, meta['started_at'])}."


def _rows(
    folder: Path, keep: Callable[[Record, Record], bool], columns: Sequence[Column] = ROW_COLUMNS
) -> str:
    runs, meta = _matrix(folder)
    kept = [run for run in runs if _as_stack(meta)(run) and keep(run, meta)]
    return markdown_table(kept, columns) + "\n\n" + "\n".join(wrapped(_made(meta)))


def matrix_run(folder: Path) -> str:
    """The run's settings and the sources' delays, which every ideal is drawn from."""
    runs, meta = _matrix(folder)
    delays = ", ".join(f"{name} {ms} ms" for name, ms in meta["source_delays_ms"].items())
    errors = [run["series"] for run in runs if run["errors"] and _closed(run)]
    busiest = max(runs, key=lambda run: run["client_cpu"] or 0)
    text = (
        f"Source delays as the gateway saw them at rest: {delays}. The stack as started:"
        f" {meta['sync_workers']} sync worker with {meta['threadpool_tokens']} threadpool"
        f" tokens; {meta['async_workers']} async worker on `{meta['async_http_client']}`,"
        f" {meta['async_max_connections']} connections; under {meta.get('server', 'gunicorn')}."
        f" {len(runs)} rows; closed-loop rows with errors: {len(errors)}"
        f" ({', '.join(sorted(set(errors))) or 'none'}). The load client's busiest row used"
        f" {busiest['client_cpu']:.0%} of a core ({busiest['series']}, C={busiest['load']},"
        f" {busiest['throughput']:.1f} req/s). {_made(meta)}"
    )
    return "\n".join(wrapped(text))


def one_worker(folder: Path) -> str:
    def keep(run: Record, meta: Record) -> bool:
        main = ("sync", "sync-threads", f"async · {meta['async_http_client']}", "async-sequential")
        return run["workers"] == 1 and (
            (run["series"] in main and run["load"] in ("10", "50", "100", "200"))
            or (run["series"] == "blocking" and run["load"] == "10")
        )

    return _rows(folder, keep)


def clients(folder: Path) -> str:
    def keep(run: Record, meta: Record) -> bool:
        return bool(run["target"] == "async" and run["workers"] == 1)

    return _rows(folder, keep)


def threadpool(folder: Path) -> str:
    def keep(run: Record, meta: Record) -> bool:
        tokens = re.fullmatch(r"sync( · \d+ tokens)?", run["series"]) is not None
        return tokens and run["workers"] == 1 and run["load"] in ("200", "400")

    return _rows(folder, keep)


def workers(folder: Path) -> str:
    def keep(run: Record, meta: Record) -> bool:
        series = ("sync", f"async · {meta['async_http_client']}")
        return run["workers"] > 1 and run["series"] in series and run["load"] in ("100", "200")

    return _rows(folder, keep)


def overload(folder: Path) -> str:
    def keep(run: Record, meta: Record) -> bool:
        return str(run["series"]).startswith("sync · 4x capacity")

    return _rows(folder, keep, OVERLOAD_COLUMNS)


def servers(folder: Path) -> str:
    runs, meta = _matrix(folder)
    return "\n".join(server_table(runs, meta)) + "\n\n" + "\n".join(wrapped(_made(meta)))


COST_COLUMNS = (
    Column("C", "concurrency"),
    Column("fan-outs/s", "fan_outs_per_s", number(0)),
    Column("trivial ms", "trivial_ms", number(3)),
    Column("fan-out ms", "fan_out_ms", number(3)),
    Column("fan-out / trivial", "fan_out_units", number(2)),
    Column("each round", "fan_out_units_by_round", lambda r: ", ".join(f"{v:.2f}" for v in r)),
    Column("upstream call ms", "upstream_call_ms", number(3)),
    Column("call / trivial", "upstream_call_units", number(2)),
    Column("machine ms / fan-out", "machine_fan_out_ms", number(3)),
    Column("errors", "errors"),
)


def cost(folder: Path) -> str:
    results = load(folder / "cost.json")
    meta = results["meta"]
    text = (
        f"`{meta['command']}`, [cost.json](results/cost.json) of"
        f" {ran(meta, meta['started_at'])}. The targets: a fan-out ≤ {FAN_OUT_TARGET:g}"
        f" trivial requests, an upstream call ≤ {UPSTREAM_CALL_TARGET:g}."
    )
    return markdown_table(results["points"], COST_COLUMNS) + "\n\n" + "\n".join(wrapped(text))


def idle(folder: Path) -> str:
    results = load(folder / "idle.json")
    meta, rest = results["meta"], results["rest"]
    lines = ["| at rest | cores |", "|---|---:|"]
    lines += [f"| {label} | {rest[key]:.3f} |" for label, key in SHARES]
    checks = f"{len(rest['healthchecks'])} healthchecks, {rest['checks_per_s']:g} a second"
    if rest["ms_per_check"] is None:  # a check's interval outlasted the window
        checks += ","
    else:
        checks += (
            f", cost the engine and their execs {rest['ms_per_check']:.0f} ms of CPU each"
            " (the engine's own idle counted in),"
        )
    text = (
        f"`{meta['command']}`, [idle.json](results/idle.json) of {ran(meta, meta['started_at'])}:"
        f" {checks} where every service's own processes together take"
        f" {rest['services_cores']:.3f} of a core."
    )
    return "\n".join(lines) + "\n\n" + "\n".join(wrapped(text))


def _sweep(name: str) -> Builder:
    def build(folder: Path) -> str:
        results = load(folder / name / "sweep.json")
        meta = results["meta"]
        run = ran(meta, meta["started_at"])
        made = f"[results/{name}](results/{name}/sweep.md), the run of {run}."
        return sweep_brief(results["points"]) + "\n\n" + "\n".join(wrapped(made))

    return build


def _ports() -> dict[str, int]:
    topology = Topology()
    return {"sync": topology.sync_port, "async": topology.async_port}


def _tour_made(recorded: Record) -> str:
    meta = recorded["meta"]
    return f"Real output: `python -m bench tour` of {ran(meta, meta['started_at'])}."


def faults(folder: Path) -> str:
    recorded = load(folder / "tour.json")
    return render_faults(recorded, _ports()) + "\n" + _tour_made(recorded)


def all_failing(folder: Path) -> str:
    recorded = load(folder / "tour.json")
    return render_all_failing(recorded, _ports()) + "\n" + _tour_made(recorded)


def _swarm(folder: Path) -> tuple[list[Record], Record]:
    results = load(folder / "scale-out" / "results.json")
    return results["runs"], results["meta"]


def swarm(folder: Path) -> str:
    """Each gateway's shapes side by side: throughput (of its ideal) and memory."""
    runs, meta = _swarm(folder)
    shapes = sorted({(r["replicas"], r["workers"]) for r in runs}, key=lambda s: (s[0] * s[1], s))
    header = [
        "1 process" if s == (1, 1) else (f"{s[1]} workers" if s[0] == 1 else f"{s[0]} replicas")
        for s in shapes
    ]
    lines = [
        "| gateway, C | " + " | ".join(header) + " |",
        "|---|" + "---:|" * len(shapes),
    ]
    for gateway in sorted({r["target"] for r in runs}, reverse=True):
        by_shape = {(r["replicas"], r["workers"]): r for r in runs if r["target"] == gateway}
        load_c = next(iter(by_shape.values()))["load"]
        cells = [
            "-"
            if s not in by_shape
            else f"{by_shape[s]['throughput']:.1f} ({by_shape[s]['throughput_vs_ideal']:.2f}"
            + ("\\*" if by_shape[s].get("cpu_bound") else "")
            + ")"
            for s in shapes
        ]
        memory = [
            "-" if s not in by_shape else f"{by_shape[s]['peak_gateway_rss_mib']:.0f}"
            for s in shapes
        ]
        lines.append(f"| {gateway}, C={load_c}: req/s (of ideal) | " + " | ".join(cells) + " |")
        lines.append(f"| {gateway}: gateway memory, MiB | " + " | ".join(memory) + " |")
    text = (
        "N replicas of 1 worker / 1 replica of N workers, throughput:"
        f" {scale_out_figures(runs)}. `\\*`:"
        f" CPU-bound. [The run](results/scale-out/summary.md) of"
        f" {ran(meta, meta['started_at'])}."
    )
    return "\n".join(lines) + "\n\n" + "\n".join(wrapped(text))


FAILOVER_RUNS = (
    ("drain", "drain"),
    ("update", "rolling update of every source"),
    ("kill", "node killed"),
)


def failover(folder: Path) -> str:
    """Each event of bench failover, as results/cluster has it."""
    lines = [
        "| event | replicas on the node (of 9) | answers after | lost | in flight at the event"
        " | swarm done after | every answer full again after |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    made = []
    for name, what in FAILOVER_RUNS:
        run = load(folder / "cluster" / f"{name}.json")
        made.append(ran(run["meta"], run["meta"]["started_at"]))
        on_node = "–" if run["event"] == "update" else str(run["replicas_on_node"])
        lines.append(
            f"| [{what}](results/cluster/{name}.json) | {on_node} | {run['answers_after_event']}"
            f" | **{run['lost']}** | {run['in_flight_at_event']} | {run['swarm_settled_s']} s"
            f" | {run['recovery_s']} s |"
        )
    runs = made[0] if len(set(made)) == 1 else ", ".join(made)
    text = f"The runs, in the test's order, of {runs} (`bench failover --event EVENT --out`)."
    killed = load(folder / "cluster" / "kill.json")
    # Each lost answer reads "<gateway> sent -1.52 s, ...": sent before the kill or after.
    sent = [float(line.split(" sent ", 1)[1].split(" s,", 1)[0]) for line in killed["lost_answers"]]
    text += (
        f" Of the {len(sent)} answers the kill cost, {sum(s < 0 for s in sent)} were sent"
        " before it: in flight, their call on the dead node cut by the deadline (each one's"
        " timeline is in the file's `lost_answers`)."
    )
    return "\n".join(lines) + "\n\n" + "\n".join(wrapped(text))


def cross_node(folder: Path) -> str:
    """The async gateway's sources on its node, then on another: per call, and per fan-out
    of the machine's CPU."""
    points: list[Record] = load(folder / "cluster" / "cross-node.json")["windows"]
    names = sorted({name for point in points for name in point["call_ms"]})
    lines = [
        "| sources on | same node | fan-outs | "
        + " | ".join(f"{n} ms" for n in names)
        + " | machine CPU ms / fan-out |",
        "|---|---|" + "---:|" * (len(names) + 2),
    ]
    for point in points:
        calls = " | ".join(f"{point['call_ms'][n]:.1f}" for n in names)
        lines.append(
            f"| {point['sources_on']} | {'yes' if point['same_node'] else 'no'}"
            f" | {point['fan_outs']} | {calls} | {point['machine_cpu_ms_per_fan_out']:.2f} |"
        )
    same = [p for p in points if p["same_node"]]
    other = [p for p in points if not p["same_node"]]
    longer = statistics.mean(
        statistics.mean(p["call_ms"][n] for p in other)
        - statistics.mean(p["call_ms"][n] for p in same)
        for n in names
    )
    cpu = [p["machine_cpu_ms_per_fan_out"] for p in points]
    text = (
        f"Across nodes a call took {longer:.2f} ms longer on average, and the machine's CPU"
        f" per fan-out ranged over {min(cpu):.2f} to {max(cpu):.2f} ms whichever the node."
    )
    return "\n".join(lines) + "\n\n" + "\n".join(wrapped(text))


DOC_PAGES: Mapping[str, Mapping[str, Builder]] = {
    "docs/benchmark.md": {
        "matrix-run": matrix_run,
        "one-worker": one_worker,
        "clients": clients,
        "cost": cost,
        "idle": idle,
        "servers": servers,
        "threadpool": threadpool,
        "workers": workers,
        "overload": overload,
        "sweep": _sweep("sweep"),
        "sweep-4-tokens": _sweep("sweep-4-tokens"),
    },
    "docs/failure-modes.md": {
        "faults": faults,
        "all-failing": all_failing,
        "overload": overload,
    },
    "docs/scale-out.md": {
        "swarm": swarm,
        "failover": failover,
        "cross-node": cross_node,
    },
}
