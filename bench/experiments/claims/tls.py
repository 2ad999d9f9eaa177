"""The post's URLs are https://: its per-call client over TLS against a shared one, the
stack restarted with UPSTREAM_TLS=true and put back after. Compared with the same loads
over plain HTTP earlier in the run (claims/fan_out.py, client_per_call), it splits what a
per-call client costs into the handshakes and the rest (the CA bundle and the connect)."""

from dataclasses import asdict
from typing import cast

from bench.experiments.claims.fan_out import priced
from bench.experiments.claims.lab import Lab
from bench.experiments.claims.model import Claim, Claims, Point

MODES = ("shared", "per-call")


def tls(lab: Lab, claims: Claims) -> None:
    """Needs client_per_call's plain points: the same modes at the same concurrency."""
    concurrency = min(lab.preset.client_concurrency)
    plain_figures = claims.figures["per_call"]["points"]
    plain = {mode: Point(**plain_figures[mode][str(concurrency)]) for mode in MODES}
    deadline = str(lab.stack.health("async").max_deadline_ms)
    lab.restart_stack(UPSTREAM_TLS="true")
    try:
        if not lab.stack.health("async").upstream_tls:
            raise RuntimeError("UPSTREAM_TLS=true, yet the async gateway's sources are not https")
        lab.measure_idle_opens()
        over_tls = {}
        for mode in MODES:
            lab.on_step(f"async /news?client={mode} C={concurrency}, over TLS")
            _, over_tls[mode] = lab.load(
                "async", "/news", concurrency, client=mode, deadline_ms=deadline
            )
    finally:
        lab.restart_stack(UPSTREAM_TLS="false")
        lab.measure_idle_opens()
    claims.figures["tls"] = {
        "concurrency": concurrency,
        "points": {mode: asdict(point) for mode, point in over_tls.items()},
        "plain_points": {mode: asdict(point) for mode, point in plain.items()},
    }
    claims.rows.append(tls_row(over_tls, plain, concurrency))


def split(over_tls: dict[str, Point], plain: dict[str, Point]) -> dict[str, float] | None:
    """What the per-call client costs over the shared one, over TLS, per fan-out: the
    handshakes (what TLS adds to per-call beyond what it adds to shared, the encryption of
    the bytes) and the rest (the CA bundle each client loads, the TCP connects), in ms."""
    runs = (over_tls["per-call"], over_tls["shared"], plain["per-call"], plain["shared"])
    cpu = [run.cpu_ms for run in runs]
    if None in cpu:
        return None
    tls_per_call, tls_shared, plain_per_call, plain_shared = cast(list[float], cpu)
    handshakes = (tls_per_call - plain_per_call) - (tls_shared - plain_shared)
    rest = plain_per_call - plain_shared
    return {"extra": tls_per_call - tls_shared, "handshakes": handshakes, "rest": rest}


def tls_row(over_tls: dict[str, Point], plain: dict[str, Point], concurrency: int) -> Claim:
    per_call, shared = over_tls["per-call"], over_tls["shared"]
    ratio = None
    if per_call.cpu_ms and shared.cpu_ms:
        ratio = round(per_call.cpu_ms / shared.cpu_ms, 2)
    parts = split(over_tls, plain)
    handshakes = per_call.connections
    costs = "CPU not priced (no probe)"
    if parts is not None:
        extra = parts["extra"]
        costs = (
            f"per-call {per_call.cpu_ms} against shared {shared.cpu_ms} ms of CPU per fan-out"
            f" (over plain HTTP: {plain['per-call'].cpu_ms} against {plain['shared'].cpu_ms})."
            f" Of the {extra:.1f} ms per-call adds, the handshakes are {parts['handshakes']:.1f}"
            f" ({parts['handshakes'] / extra:.0%}: what TLS adds to per-call beyond what it"
            f" adds to shared), and the rest, {parts['rest']:.1f} ({parts['rest'] / extra:.0%}),"
            " is what per-call costs over plain HTTP too: each client's CA bundle, and its"
            " connect"
        )
    holds = (
        ratio is not None
        and ratio > 1.5
        and handshakes is not None
        and shared.connections is not None
        and handshakes > 2 > shared.connections
    )
    return Claim(
        "tls_per_call",
        "(the post's URLs are https://) a client per call pays a TLS handshake per call",
        "Concurrent External API Calls in FastAPI; Recommended: Use a Client Instance",
        f"async gateway, UPSTREAM_TLS=true, /news?client=per-call against ?client=shared,"
        f" C={concurrency}",
        f"CPU per fan-out over TLS, per-call / shared, C={concurrency}",
        ratio,
        1.0,
        priced(ratio, holds),
        f"handshakes per fan-out, as the upstreams accepted connections: per-call"
        f" {handshakes}, shared {shared.connections}; {costs}. Throughput"
        f" {per_call.throughput:.1f} against {shared.throughput:.1f} fan-outs/s",
        "python -m bench claims",
    )
