"""``X-Request-ID``: taken from the request when it is a sane token, made up otherwise,
returned on the response, passed on to the upstreams, and written in every log line."""

import re

from asgi_correlation_id import CorrelationIdMiddleware, correlation_id
from fastapi import FastAPI

REQUEST_ID_HEADER = "X-Request-ID"
# Whatever a client sends ends up in a header we forward and in our logs: a bounded token.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def valid_request_id(value: str) -> bool:
    return _REQUEST_ID.fullmatch(value) is not None


def add_request_ids(app: FastAPI) -> None:
    """Outermost middleware: added last, so every other layer and log sees the id."""
    app.add_middleware(
        CorrelationIdMiddleware, header_name=REQUEST_ID_HEADER, validator=valid_request_id
    )


def current_request_id() -> str | None:
    """This request's id, inside a request; None outside one."""
    return correlation_id.get()
