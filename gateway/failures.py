"""What a failed source call was, whichever client made it: the error kind and a line for
people, from the exception and every error it was raised from, during, or wraps."""

import collections
import errno
import http.client
import ssl
from collections.abc import Iterator

import aiohttp
import aiohttp.http_exceptions
import h11
import httpcore
import httpx
import httpx2
import requests
import urllib3

from gateway.models import ErrorKind


def linked(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then every error it was raised from, during, or wraps, nearest first:
    requests and urllib3 pass the error they caught as an argument, not as a cause."""
    seen: set[int] = set()
    links: collections.deque[BaseException] = collections.deque([exc])
    while links:
        link = links.popleft()
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        links += [
            x
            for x in (link.__cause__, link.__context__, *link.args)
            if isinstance(x, BaseException)
        ]


# Raised while connecting, by each client: a connect that failed is the connect timeout's
# and GATEWAY_CONNECT_RETRIES' business, not a connection that went silent.
CONNECTING: tuple[type[BaseException], ...] = (
    urllib3.exceptions.ConnectTimeoutError,
    urllib3.exceptions.NewConnectionError,
    httpcore.ConnectError,
    httpcore.ConnectTimeout,
)


def peer_went_silent(exc: BaseException, connecting: tuple[type[BaseException], ...] = ()) -> bool:
    """Whether `exc` is the kernel's verdict that an established connection's peer stopped
    acknowledging (ETIMEDOUT, under `dead_peer_options`): a timeout by its class in Python,
    but no wait of ours ran out. Not when it came while connecting (CONNECTING, and the
    caller's own `connecting` errors)."""
    links = list(linked(exc))
    if any(isinstance(link, CONNECTING + connecting) for link in links):
        return False
    return any(isinstance(link, OSError) and link.errno == errno.ETIMEDOUT for link in links)


# aiohttp's timeouts subclass the builtin TimeoutError; requests wraps urllib3's.
TIMEOUTS = (
    httpx.TimeoutException,
    httpx2.TimeoutException,
    requests.Timeout,
    urllib3.exceptions.TimeoutError,
    TimeoutError,
)
# The call never reached the source: safe to repeat, even were it not a GET.
CONNECT_FAILURES = (httpx.ConnectError, httpx2.ConnectError, aiohttp.ClientConnectorError)


def _cause(exc: BaseException) -> BaseException:
    """The error that tells what happened.

    httpx-aiohttp maps every aiohttp connection error to httpx.ConnectTimeout, a refused
    connection included, so the aiohttp error it wraps is the one that tells. requests
    wraps urllib3's in its first argument.
    """
    if isinstance(exc.__cause__, aiohttp.ClientError):
        return exc.__cause__
    if isinstance(exc, requests.ConnectionError) and exc.args:
        reason = getattr(exc.args[0], "reason", None)
        if isinstance(reason, BaseException):
            return reason
    return exc


def went_silent(exc: BaseException) -> bool:
    """An established connection's peer went silent (gateway/balancing.py), with
    aiohttp's connect errors counted as connecting too."""
    return peer_went_silent(exc, (aiohttp.ClientConnectorError, httpx2.ConnectError))


def connect_failed(exc: Exception) -> bool:
    """Whether a call failed before it reached the source (the retry predicate)."""
    cause = _cause(exc)
    if isinstance(cause, urllib3.exceptions.NewConnectionError):
        return True
    return isinstance(cause, CONNECT_FAILURES) and not isinstance(cause, TIMEOUTS)


# What a parser raises on bytes that are not HTTP: h11's (under httpx, httpx2 and httpcore),
# aiohttp's, and http.client's (under requests). Each of them also raises for a connection
# that closed mid-answer, which is not broken HTTP but a dropped connection: DROPPED_MIDWAY.
PARSER_ERRORS = (
    h11.RemoteProtocolError,
    aiohttp.http_exceptions.HttpProcessingError,
    http.client.HTTPException,
)
DROPPED_MIDWAY = (
    aiohttp.http_exceptions.ContentLengthError,
    aiohttp.http_exceptions.TransferEncodingError,
    http.client.RemoteDisconnected,
)
# h11 says so only in its message: the end of the stream came before the end of the body.
H11_DROPPED = "peer closed connection"


def broke_http(exc: BaseException) -> BaseException | None:
    """The parser error in `exc`'s chain when the source sent bytes that are not HTTP."""
    for link in linked(exc):
        if isinstance(link, http.client.IncompleteRead):
            # http.client raises it for a chunk size it cannot parse, from that ValueError.
            return link if isinstance(link.__context__, ValueError) else None
        if isinstance(link, DROPPED_MIDWAY):
            return None
        if isinstance(link, h11.RemoteProtocolError) and str(link).startswith(H11_DROPPED):
            return None
        if isinstance(link, PARSER_ERRORS):
            return link
    return None


def refused_tls(exc: BaseException) -> str | None:
    """Why the TLS handshake failed, when it did: the verifier's own words for a refused
    certificate (from our TLS library, never the source's bytes), else the error's reason."""
    links = list(linked(exc))
    # aiohttp's certificate error subclasses ssl's, and wraps the one that has the words.
    for link in links:
        verify_message = getattr(link, "verify_message", None)
        if isinstance(link, ssl.SSLCertVerificationError) and verify_message:
            return f"certificate refused: {verify_message}"
    for link in links:
        if isinstance(link, ssl.SSLError):
            return f"handshake failed: {getattr(link, 'reason', None) or type(link).__name__}"
    return None


def describe_failure(exc: Exception) -> tuple[ErrorKind, str]:
    """(kind, "<what>: <the class that tells>") for a failed call: timeout, tls, protocol
    or connect."""
    if went_silent(exc):
        # Python calls ETIMEDOUT a TimeoutError, but no wait of ours ran out: the kernel gave
        # up on the connection (gateway/balancing.py, dead_peer_options).
        return "connect", "connection lost: the source stopped acknowledging (ETIMEDOUT)"
    cause = _cause(exc)
    # urllib3's NewConnectionError subclasses its ConnectTimeoutError: refused is not late.
    refused = isinstance(cause, urllib3.exceptions.NewConnectionError)
    if isinstance(cause, TIMEOUTS) and not refused:
        return "timeout", f"timeout: {type(cause).__name__}"
    tls = refused_tls(exc)
    if tls is not None:
        return "tls", f"TLS {tls}"
    parser_error = broke_http(exc)
    if parser_error is not None:
        # The class, not the message: the message may quote the source's bytes.
        return "protocol", f"broken HTTP: {type(parser_error).__name__}"
    return "connect", f"connection error: {type(cause).__name__}"
