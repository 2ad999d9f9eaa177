"""FastAPI pieces both gateways share: the app factory, the fan-out a request asks for
(``?sources=``, ``?fault=``, ``?deadline_ms=``), and the response."""

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, cast, get_args

from fastapi import FastAPI, Query, Request, Response
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from core.news import FaultKind
from gateway.blog import CpuWork, blog_router, with_calibrated_cpu_work
from gateway.calls import Call
from gateway.config import GatewaySettings
from gateway.fanout import FanOut, server_timing, status_of
from gateway.metrics import FanOutMetrics
from gateway.models import GatewayHealth, NewsResponse
from gateway.sources import Source, UnknownSourcesError, select_sources
from observability.metrics import (
    METRICS_PATH,
    NO_OPENTELEMETRY,
    Lifespan,
    instrument,
    monitored,
    service_metrics,
)
from observability.requestid import REQUEST_ID_HEADER, add_request_ids, current_request_id
from serving.admission import AdmissionLimit
from serving.heap import with_frozen_heap
from serving.refusals import invalid_query, lever_refused
from serving.settings import SERVER_LACKS

# What /healthz reports of the settings as they are; each gateway names its own client and
# archive driver, and the sources are reported by name, not URL.
REPORTED_BY_ROUTE = {"sources", "default_sources", "archive_driver"}
HEALTH_SETTINGS = set(GatewayHealth.model_fields) & set(GatewaySettings.model_fields)
HEALTH_SETTINGS -= REPORTED_BY_ROUTE


def gateway_health(
    gateway: str, settings: GatewaySettings, http_client: str, cpu_work: CpuWork
) -> GatewayHealth:
    archive_driver = None
    if settings.archive_url is not None:
        archive_driver = "psycopg" if gateway == "sync" else settings.archive_driver
    return GatewayHealth(
        gateway=gateway,
        sources=[source.name for source in settings.fan_out_sources],
        default_sources=[
            source.name
            for source in select_sources(settings.fan_out_sources, None, settings.default_sources)
        ],
        archive_driver=archive_driver,
        upstream_tls=all(s.base_url.startswith("https://") for s in settings.source_list),
        http_client=http_client,
        workers=settings.serving.workers,
        server=settings.serving.server,
        server_lacks=list(SERVER_LACKS[settings.serving.server]),
        executor_threads=settings.executor_threads,
        requests_pool_maxsize=settings.requests_pool_maxsize,
        cpu_rounds_per_ms=round(cpu_work.rounds_per_ms, 1),
        cpu_processes=cpu_work.process_count,
        # The rest, settings as they are: the caps, the deadlines, the replica's names.
        **settings.model_dump(include=HEALTH_SETTINGS),
    )


def create_gateway_app(
    gateway: str, settings: GatewaySettings, lifespan: Lifespan, http_client: str
) -> FastAPI:
    service = service_metrics()
    app = FastAPI(
        title=f"fanout-lab {gateway} gateway",
        version="1.0.0",
        lifespan=with_frozen_heap(monitored(with_calibrated_cpu_work(lifespan), service)),
        telemetry=NO_OPENTELEMETRY,
    )
    app.state.settings = settings
    app.state.fan_out_metrics = FanOutMetrics.registered(service.registry)
    # Each layer wraps the ones added before it: the request id sees everything, the
    # metrics count the 503s the admission limit answers.
    app.add_middleware(AdmissionLimit, policy=settings.admission)
    instrument(app, service)
    add_request_ids(app)
    if settings.serving.admin_port:
        app.add_middleware(AdminPortOnly, port=settings.serving.admin_port)
    if settings.lab_levers:
        app.include_router(blog_router(settings))

    # What /healthz reports is fixed for the worker's life: built once, on its first call
    # (the CPU calibration is the lifespan's). The route stays the trivial request that
    # bench/experiments/cost.py prices a fan-out in: FastAPI still validates and serialises
    # the answer.
    built: list[GatewayHealth] = []

    @app.get("/healthz")
    async def healthz(request: Request) -> GatewayHealth:
        """Liveness, plus every limit a benchmark needs to draw its ideal lines."""
        if not built:
            built.append(gateway_health(gateway, settings, http_client, request.state.cpu_work))
        return built[0]

    return app


# What only the admin port serves when there is one: the schema, its pages and the metrics.
ADMIN_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", METRICS_PATH})


class AdminPortOnly:
    """Pure ASGI middleware: the admin paths answer 404 on any port but the admin one.

    The port is the socket's own (``scope["server"]``), so a Host header cannot forge it.
    """

    def __init__(self, app: ASGIApp, port: int) -> None:
        self.app, self.port = app, port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server") or (None, None)
        if scope["type"] == "http" and scope["path"] in ADMIN_PATHS and server[1] != self.port:
            await JSONResponse({"detail": "Not Found"}, 404)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def parse_faults(configured: Sequence[Source], requested: str) -> dict[str, FaultKind]:
    """ "wire:hang,gazette:error" as {source: fault}: configured sources, known faults, once."""
    names = {source.name for source in configured}
    kinds: tuple[str, ...] = get_args(FaultKind)
    faults: dict[str, FaultKind] = {}
    for item in requested.split(","):
        name, _, kind = item.partition(":")
        if name not in names:
            raise ValueError(f"{item!r}: unknown source; valid sources: {', '.join(names)}")
        if kind not in kinds:
            raise ValueError(f"{item!r}: unknown fault; valid faults: {', '.join(kinds)}")
        if name in faults:
            raise ValueError(f"{item!r}: one fault per source")
        faults[name] = cast(FaultKind, kind)
    return faults


@dataclass(frozen=True)
class FanOutPlan:
    """What one request asks for: which sources, with which faults, by when."""

    calls: list[Call]
    deadline_s: float
    metrics: FanOutMetrics
    instance: str
    node: str | None = None
    # When the request reached its route (perf_counter): what comes between this and
    # start() is the wait for the route to run, a threadpool token on the sync gateway.
    planned_at: float = field(default_factory=time.perf_counter)

    def start(self) -> FanOut:
        now = time.perf_counter()
        return FanOut(
            self.deadline_s,
            start=now,
            instance=self.instance,
            node=self.node,
            queued_s=now - self.planned_at,
        )

    def respond(self, news: NewsResponse) -> Response:
        """Count each source's outcome, then answer (see `news_response`)."""
        self.metrics.observe(news)
        return news_response(news)


def source_patterns(settings: GatewaySettings) -> tuple[str, str]:
    """The OpenAPI patterns of ``?sources=`` and ``?fault=``: the configured names, the known
    faults, and one fault per source (the lookahead; Python's and ECMA's regex both read it).
    """
    name = "(?:" + "|".join(source.name for source in settings.fan_out_sources) + ")"
    # Faults are the upstreams' to inject: the archive takes none.
    http_name = "(?:" + "|".join(source.name for source in settings.source_list) + ")"
    pair = f"{http_name}:(?:{'|'.join(get_args(FaultKind))})"
    sources = f"^{name}(?:,{name})*$"
    faults = f"^(?!(?:.*,)?({http_name}):.*,\\1:){pair}(?:,{pair})*$"
    return sources, faults


def fan_out_plan_for(settings: GatewaySettings) -> Callable[..., Awaitable[FanOutPlan]]:
    """The dependency that reads a fan-out request, with its bounds from the settings: which
    names exist, the longest deadline, and whether the lab's levers are on."""
    names = [source.name for source in settings.fan_out_sources]
    sources_pattern, fault_pattern = source_patterns(settings)
    longest_fault = max(map(len, get_args(FaultKind)))
    levers = settings.lab_levers
    max_deadline_ms = settings.max_deadline_ms if levers else settings.deadline_ms
    lever_note = "" if levers else " (LAB_LEVERS=off: no deadline past the default)"

    # An async dependency runs on the event loop; a `def` one would take a threadpool token.
    # An HTTPConnection, not a Request: the async gateway's WebSocket plans its fan-out too.
    async def fan_out_plan(
        request: HTTPConnection,
        sources: Annotated[
            str | None,
            Query(
                description="Comma-separated source names; by default, every HTTP source"
                " (or GATEWAY_DEFAULT_SOURCES). The archive, PostgreSQL, is opt-in.",
                # Checked by select_sources, whose 422 lists the valid names.
                json_schema_extra={"pattern": sources_pattern},
                max_length=len(",".join(names)),
            ),
        ] = None,
        fault: Annotated[
            str | None,
            Query(
                description="Ask sources to misbehave, for the lab: comma-separated "
                f"source:fault pairs, one per source, e.g. {names[0]}:hang; a source that is not "
                "called ignores its fault. Faults: "
                f"{', '.join(get_args(FaultKind))}.",
                # Checked by parse_faults, which says what is wrong (pydantic's regex engine
                # has no lookahead).
                json_schema_extra={"pattern": fault_pattern},
                max_length=sum(len(n) + 2 + longest_fault for n in names) - 1,
                include_in_schema=levers,
            ),
        ] = None,
        deadline_ms: Annotated[
            int | None,
            Query(
                ge=1,
                le=max_deadline_ms,
                description=f"This fan-out's deadline, at most {max_deadline_ms} ms{lever_note}.",
            ),
        ] = None,
    ) -> FanOutPlan:
        if fault is not None and not levers:
            raise lever_refused("fault", fault)
        try:
            selected = select_sources(settings.fan_out_sources, sources, settings.default_sources)
        except UnknownSourcesError as exc:
            raise invalid_query("sources", str(exc), sources) from exc
        try:
            faults = parse_faults(settings.source_list, fault) if fault is not None else {}
        except ValueError as exc:
            raise invalid_query("fault", str(exc), fault) from exc
        # The request's id goes to every source, so their logs join the gateway's.
        request_id = current_request_id()
        headers = {REQUEST_ID_HEADER: request_id} if request_id else {}
        calls = [Call(source, faults.get(source.name), headers) for source in selected]
        metrics: FanOutMetrics = request.app.state.fan_out_metrics
        deadline_s = (deadline_ms or settings.deadline_ms) / 1000
        return FanOutPlan(calls, deadline_s, metrics, settings.instance, settings.node)

    return fan_out_plan


def news_response(news: NewsResponse) -> Response:
    """Serialise once, with the Server-Timing header and the status the outcome deserves."""
    return Response(
        content=news.model_dump_json(),
        status_code=status_of(news),
        media_type="application/json",
        headers={"Server-Timing": server_timing(news)},
    )
