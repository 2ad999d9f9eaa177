"""FastAPI pieces both gateways share: the app factory, the fan-out a request asks for
(``?sources=``, ``?fault=``, ``?deadline_ms=``), and the response."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, cast, get_args

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from gateway.admission import AdmissionLimit
from gateway.blog import CpuWork, blog_router, with_cpu_work
from gateway.clients import Call
from gateway.config import GatewaySettings
from gateway.fanout import FanOut, server_timing, status_of
from gateway.metrics import FanOutMetrics
from gateway.models import NewsResponse, UpstreamFault
from gateway.sources import Source, UnknownSourcesError, select_sources
from observability.metrics import (
    NO_OPENTELEMETRY,
    Lifespan,
    instrument,
    monitored,
    service_metrics,
)
from observability.requestid import REQUEST_ID_HEADER, add_request_ids, current_request_id


def create_gateway_app(
    gateway: str, settings: GatewaySettings, lifespan: Lifespan, http_client: str
) -> FastAPI:
    service = service_metrics()
    app = FastAPI(
        title=f"fanout-lab {gateway} gateway",
        version="1.0.0",
        lifespan=monitored(with_cpu_work(lifespan), service),
        telemetry=NO_OPENTELEMETRY,
    )
    app.state.settings = settings
    app.state.fan_out_metrics = FanOutMetrics.registered(service.registry)
    # Each layer wraps the ones added before it: the request id sees everything, the
    # metrics count the 503s the admission limit answers.
    app.add_middleware(AdmissionLimit, policy=settings.admission)
    instrument(app, service)
    add_request_ids(app)
    app.include_router(blog_router(settings))

    @app.get("/healthz")
    async def healthz(request: Request) -> dict[str, object]:
        """Liveness, plus every limit a benchmark needs to draw its ideal lines."""
        cpu_work: CpuWork = request.state.cpu_work
        return {
            "status": "ok",
            "gateway": gateway,
            "instance": settings.instance,
            "sources": [source.name for source in settings.source_list],
            "http_client": http_client,
            "workers": settings.workers,
            "threadpool_tokens": settings.threadpool_tokens,
            "executor_threads": settings.executor_threads,
            "requests_pool_maxsize": settings.requests_pool_maxsize,
            "max_connections": settings.max_connections,
            "max_keepalive_connections": settings.max_keepalive_connections,
            "deadline_ms": settings.deadline_ms,
            "max_deadline_ms": settings.max_deadline_ms,
            "connect_retries": settings.connect_retries,
            "max_in_flight": settings.max_in_flight,
            "queue_timeout_ms": settings.queue_timeout_ms,
            "retry_after_s": settings.retry_after_s,
            "max_hold_ms": settings.max_hold_ms,
            # /cpu/*'s calibration, and the processes /cpu/process may use.
            "cpu_rounds_per_ms": round(cpu_work.rounds_per_ms, 1),
            "cpu_processes": cpu_work.process_count,
        }

    return app


def settings_of(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


def invalid_query(name: str, message: str, value: object) -> RequestValidationError:
    """A 422 that names the query parameter, in FastAPI's own error shape."""
    error = {"type": "value_error", "loc": ("query", name), "msg": message, "input": value}
    return RequestValidationError([error])


def parse_faults(configured: Sequence[Source], requested: str) -> dict[str, UpstreamFault]:
    """ "wire:hang,gazette:error" as {source: fault}: configured sources, known faults, once."""
    names = {source.name for source in configured}
    kinds: tuple[str, ...] = get_args(UpstreamFault)
    faults: dict[str, UpstreamFault] = {}
    for item in (part.strip() for part in requested.split(",")):
        name, _, kind = item.partition(":")
        if name not in names:
            raise ValueError(f"{item!r}: unknown source; valid sources: {', '.join(names)}")
        if kind not in kinds:
            raise ValueError(f"{item!r}: unknown fault; valid faults: {', '.join(kinds)}")
        if name in faults:
            raise ValueError(f"{item!r}: one fault per source")
        faults[name] = cast(UpstreamFault, kind)
    return faults


@dataclass(frozen=True)
class FanOutPlan:
    """What one request asks for: which sources, with which faults, by when."""

    calls: list[Call]
    deadline_s: float
    metrics: FanOutMetrics
    instance: str

    def start(self) -> FanOut:
        return FanOut(self.deadline_s, instance=self.instance)

    def respond(self, news: NewsResponse) -> Response:
        """Count each source's outcome, then answer (see `news_response`)."""
        self.metrics.observe(news)
        return news_response(news)


# An async dependency runs on the event loop; a `def` one would take a threadpool token.
async def fan_out_plan(
    request: Request,
    sources: Annotated[
        str | None,
        Query(description="Comma-separated source names; all configured sources by default."),
    ] = None,
    fault: Annotated[
        str | None,
        Query(
            description="Ask sources to misbehave, for the lab: comma-separated source:fault "
            f"pairs, e.g. wire:hang. Faults: {', '.join(get_args(UpstreamFault))}.",
            max_length=512,
        ),
    ] = None,
    deadline_ms: Annotated[
        int | None,
        Query(ge=1, description="This fan-out's deadline; at most the gateway's maximum."),
    ] = None,
) -> FanOutPlan:
    settings = settings_of(request)
    try:
        selected = select_sources(settings.source_list, sources)
    except UnknownSourcesError as exc:
        raise invalid_query("sources", str(exc), sources) from exc
    try:
        faults = parse_faults(selected, fault) if fault is not None else {}
    except ValueError as exc:
        raise invalid_query("fault", str(exc), fault) from exc
    if deadline_ms is not None and deadline_ms > settings.max_deadline_ms:
        message = f"at most {settings.max_deadline_ms} ms (GATEWAY_MAX_DEADLINE_MS)"
        raise invalid_query("deadline_ms", message, deadline_ms)
    # The request's id goes to every source, so their logs join the gateway's.
    request_id = current_request_id()
    headers = {REQUEST_ID_HEADER: request_id} if request_id else {}
    calls = [Call(source, faults.get(source.name), headers) for source in selected]
    metrics: FanOutMetrics = request.app.state.fan_out_metrics
    deadline_s = (deadline_ms or settings.deadline_ms) / 1000
    return FanOutPlan(calls, deadline_s, metrics, settings.instance)


Plan = Annotated[FanOutPlan, Depends(fan_out_plan)]


def news_response(news: NewsResponse) -> Response:
    """Serialise once, with the Server-Timing header and the status the outcome deserves."""
    return Response(
        content=news.model_dump_json(),
        status_code=status_of(news),
        media_type="application/json",
        headers={"Server-Timing": server_timing(news)},
    )
