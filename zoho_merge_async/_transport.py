"""One HTTP request to Zoho's API: send it with the access token and read the whole response.

Nothing here retries or interprets a response. A gateway or an error message
may echo the Authorization header, and the body ends up in error messages.
So the access token sent is replaced by "***" in the body and the Location
header of the response before anything reads them. Only a whole
token is replaced, not one inside a longer word, so that a short token (a
test's "t") cannot corrupt a body.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple

import aiohttp
from aiohttp import hdrs
from yarl import URL

from ._errors import TransportError, UnexpectedResponseError
from ._response import MAX_BODY_BYTES, excerpt

if TYPE_CHECKING:
    from multidict import CIMultiDictProxy

REDACTED = "***"
"""Text that replaces the access token in a response."""

# A match next to a letter, digit, "_" or "-" is part of a longer word, such as "t" in
# "status", and stays. Dots, slashes and quotes end a token that a server echoes.
_BEFORE = "(?<![A-Za-z0-9_-])"
_AFTER = "(?![A-Za-z0-9_-])"


class HttpResponse(NamedTuple):
    """Status, headers and whole body of one HTTP response, with the access token redacted."""

    # A named tuple rather than a frozen dataclass, because one is built for every request
    # and a frozen dataclass takes about twice as long to build (CPython 3.11).
    status: int
    headers: Mapping[str, str]
    body: bytes


def timeout_until_deadline(method: str, url: URL, request_timeout: float,
                           deadline: float | None, clock: Callable[[], float]) -> float:
    """Return the timeout of a request in seconds, cut to end by `deadline` (on `clock`).

    Raises `TransportError` (not sent) once the deadline has passed, so that
    no request is sent, and no credit spent, after it.
    """
    if deadline is None:
        return request_timeout
    remaining = deadline - clock()
    if remaining <= 0:
        raise TransportError(f"{method} {url.host}{url.path} was not sent: the deadline had "
                             "passed")
    return min(request_timeout, remaining)


async def send_request(
    session: aiohttp.ClientSession, method: str, url: URL, token: str, *,
    json_body: object, timeout: float,
) -> HttpResponse:
    """Send one request with `token` and return the response, the token redacted from it.

    Raises `TransportError` for a connection failure or a timeout, with
    `request_sent` False only when the connection was never opened, and
    `UnexpectedResponseError` for a body over `MAX_BODY_BYTES`.
    """
    headers = {"Authorization": f"Zoho-oauthtoken {token}"}
    try:
        async with session.request(
            method, url, json=json_body, headers=headers,
            allow_redirects=False, timeout=_client_timeout(timeout),
        ) as response:
            # A body of known size is read at once, without the coroutine of the chunked
            # read, which saves CPU time on every request (benchmarks/overhead.py).
            if _has_bounded_length(response):
                body = await response.read()
            else:
                body = await _read_chunks(response, token)
            return HttpResponse(response.status, _redact_headers(response.headers, token),
                                _redact(body, token))
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = _redact_text(describe_transport_error(exc, timeout), token)
        # aiohttp raises these two before it writes any byte of the request.
        never_sent = isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
        raise TransportError(f"{method} {url.host}{url.path} failed: {reason}",
                             request_sent=not never_sent) from exc


@functools.lru_cache(maxsize=32)
def _client_timeout(total: float) -> aiohttp.ClientTimeout:
    # Most requests share the client's `request_timeout`. ClientTimeout is immutable, so
    # one instance can serve them all, and the cache lookup costs less than building one.
    return aiohttp.ClientTimeout(total=total)


def _has_bounded_length(response: aiohttp.ClientResponse) -> bool:
    """Return True if the body is exactly its Content-Length, at most `MAX_BODY_BYTES`.

    Raises `UnexpectedResponseError` for a Content-Length over `MAX_BODY_BYTES`.
    """
    # aiohttp parses the Content-Length header again on each read of `content_length`.
    content_length = response.content_length
    if content_length is None:
        return False
    if content_length > MAX_BODY_BYTES:
        raise UnexpectedResponseError(
            f"the body of {content_length} bytes exceeds the limit of "
            f"{MAX_BODY_BYTES} bytes", response.status)
    # A compressed body can inflate to far more than its Content-Length, and a transfer
    # encoding makes the length unreliable, so both are read in chunks and counted.
    headers = response.headers
    return hdrs.CONTENT_ENCODING not in headers and hdrs.TRANSFER_ENCODING not in headers


async def _read_chunks(response: aiohttp.ClientResponse, token: str) -> bytes:
    """Read the body in chunks, raising `UnexpectedResponseError` beyond `MAX_BODY_BYTES`."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            start = _redact(b"".join(chunks) + chunk, token)
            raise UnexpectedResponseError(
                f"the body exceeds the limit of {MAX_BODY_BYTES} bytes", response.status,
                excerpt(start))
        chunks.append(chunk)
    return b"".join(chunks)


def _redact(body: bytes, token: str) -> bytes:
    secret = token.encode()
    if secret not in body:
        return body
    pattern = (_BEFORE + re.escape(token) + _AFTER).encode()
    return re.sub(pattern, REDACTED.encode(), body)


def _redact_text(text: str, token: str) -> str:
    if token not in text:
        return text
    return re.sub(_BEFORE + re.escape(token) + _AFTER, REDACTED, text)


def _redact_headers(headers: CIMultiDictProxy[str], token: str) -> Mapping[str, str]:
    # Only Location reaches a message (a redirect error names its host), so only it is
    # searched, which keeps the check off the cost of every request.
    location = headers.get(hdrs.LOCATION)
    if location is None or token not in location:
        return headers
    redacted = headers.copy()
    redacted.clear()
    redacted.extend((name, _redact_text(value, token)) for name, value in headers.items())
    return redacted


def describe_transport_error(exc: BaseException, timeout: float) -> str:
    """Describe an aiohttp error or timeout of a request for an error message."""
    if isinstance(exc, TimeoutError):
        return f"no complete response within {timeout:g} s (request timeout)"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        # Its text can be the repr of a half-read response head, headers included.
        return "the server closed the connection before a complete response " \
               "(ServerDisconnectedError)"
    return f"{type(exc).__name__}: {exc}"
