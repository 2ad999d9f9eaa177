"""One whole run of the claims, in the order that restarts each gateway least."""

from collections.abc import Callable

from bench.experiments.claims.background import background
from bench.experiments.claims.cpu import cpu_work, gunicorn_timeout
from bench.experiments.claims.database import database
from bench.experiments.claims.fan_out import (
    client_per_call,
    fan_out_lessons,
    fast_return,
    sleeps,
    sync_clients,
)
from bench.experiments.claims.http2 import http2
from bench.experiments.claims.lab import ClaimsStack, Lab
from bench.experiments.claims.model import PRESETS, Claims
from bench.experiments.claims.selfcall import self_call
from bench.experiments.claims.tls import tls
from bench.experiments.claims.websocket import websocket
from bench.harness.results import run_meta
from bench.harness.stack import GatewayName


def run_claims(
    preset_name: str,
    stack: ClaimsStack,
    command: str,
    on_step: Callable[[str], None] = lambda _: None,
) -> Claims:
    meta = run_meta(command)  # before the run: when it started
    preset = PRESETS[preset_name]
    lab = Lab(stack, preset, on_step)
    gateways: tuple[GatewayName, ...] = ("sync", "async")
    for gateway in gateways:
        workers = stack.health(gateway).workers
        if workers != 1:
            raise RuntimeError(
                f"bench claims measures one worker; {stack.base(gateway)} runs {workers}:"
                " SYNC_WORKERS=1 ASYNC_WORKERS=1 make up"
            )
    on_step("calibrating the sources' delays")
    delays = stack.calibrate()
    claims = Claims(
        meta=meta,
        preset=preset_name,
        delays_ms={name: round(d * 1000, 1) for name, d in delays.items()},
    )
    fan_out_lessons(lab, claims, list(delays.values()))
    sleeps(lab, claims)
    self_call(lab, claims)
    background(lab, claims)
    database(lab, claims)
    websocket(lab, claims, delays)
    client_per_call(lab, claims, max(delays.values()))
    tls(lab, claims)
    fast_return(lab, claims)
    cpu_work(lab, claims, max(delays.values()))
    sync_clients(lab, claims)
    gunicorn_timeout(lab, claims)
    http2(lab, claims)
    return claims
