"""`RefreshTokenProvider`: access tokens from a Zoho OAuth refresh token, shared by all coroutines.

Zoho lets one refresh token yield at most 10 access tokens in 10 minutes
(Zoho CRM's "Token Validity" page). So the provider caches the token and runs
at most one refresh at a time. Every coroutine that needs a new token awaits
that one refresh, and gets the same token or the same error.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import aiohttp
from yarl import URL

from ._auth import check_same_data_centre
from ._datacentre import DataCentre
from ._errors import TransportError, UnexpectedResponseError, ZohoError
from ._token_response import TokenResponse, parse_token_response
from ._transport import describe_transport_error
from ._validation import check_positive_seconds, check_server_url

logger = logging.getLogger("zoho_merge_async")

DEFAULT_REFRESH_MARGIN = 300.0
"""Seconds before its expiry at which a cached access token is replaced."""

DEFAULT_TOKEN_REQUEST_TIMEOUT = 30.0
"""Seconds one request to the token endpoint may take, connecting and reading included."""

MAX_TOKEN_BODY_BYTES = 64 * 1024
"""Largest token endpoint response read, in bytes; a real one is well under 1 KiB."""

TOKEN_PATH = "/oauth/v2/token"

# Printable ASCII without spaces: what Zoho's client ids, secrets and refresh tokens contain.
_CREDENTIAL_PATTERN = re.compile(r"[\x21-\x7e]+")

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class _CachedToken:
    value: str = field(repr=False)
    refresh_at: float
    """Clock time after which `get_token()` refreshes the token before returning one."""
    expires_at: float


class RefreshTokenProvider:
    """Access tokens from a Zoho OAuth refresh token, cached and shared by every coroutine.

    Pass it to `MergeClient` in place of an access token. `data_centre`
    (a `DataCentre` or its name, such as "EU") picks the accounts server
    that refreshes the token, the US one by default. `accounts_url`
    replaces that server, for a proxy or a test server. The API domain in
    each token response becomes `api_domain`; a response without one keeps
    the previous value. With a data centre known, from `data_centre` or from
    a Zoho `accounts_url`, a token for another data centre's API domain
    raises `DataCentreMismatchError`.

    The token is refreshed `refresh_margin` seconds before it expires (at
    most half its lifetime before), and at most one refresh runs at a time.
    A refresh request may take `request_timeout` seconds. A failed refresh
    raises the same error in every coroutine waiting for it, and the next
    call tries again. `clock` (monotonic seconds) is there for tests.

    The provider makes its own `aiohttp.ClientSession` unless `session` is
    given; close it with `aclose()` or `async with`. Nothing is written to
    disk, and no repr, log line or error message shows a token or secret.
    Raises `ValueError` for an invalid argument, naming it.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        *,
        data_centre: DataCentre | str | None = None,
        accounts_url: str | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        request_timeout: float = DEFAULT_TOKEN_REQUEST_TIMEOUT,
        session: aiohttp.ClientSession | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._client_id = _check_credential("client_id", client_id)
        self._client_secret = _check_credential("client_secret", client_secret)
        self._refresh_token = _check_credential("refresh_token", refresh_token)
        self._data_centre, accounts = _accounts_server(data_centre, accounts_url)
        self._token_url = accounts.with_path(TOKEN_PATH)
        self._refresh_margin = _check_refresh_margin(refresh_margin)
        self._request_timeout = check_positive_seconds("request_timeout", request_timeout)
        self._session = session
        self._owns_session = session is None
        self._clock = clock
        self._api_domain = self._data_centre.api_domain if self._data_centre else None
        self._cached: _CachedToken | None = None
        self._in_flight: asyncio.Task[str] | None = None
        self._refresh_count = 0
        self._closed = False

    def __repr__(self) -> str:
        centre = self._data_centre.name if self._data_centre else "unknown"
        token = "none" if self._cached is None else "cached"
        return (f"<RefreshTokenProvider accounts_url={self.accounts_url!r} "
                f"data_centre={centre} token={token}>")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop a running refresh and close the session the provider made. Safe to call twice.

        Callers waiting for the stopped refresh raise `RuntimeError`.
        """
        self._closed = True
        task, self._in_flight = self._in_flight, None
        if task is not None:
            task.cancel()
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @property
    def api_domain(self) -> str | None:
        """API domain from the last token response, else the data centre's, else None."""
        return self._api_domain

    @property
    def data_centre(self) -> DataCentre | None:
        """Data centre of the accounts server, or None for an unknown `accounts_url`."""
        return self._data_centre

    @property
    def accounts_url(self) -> str:
        """Scheme and host of the accounts server, such as https://accounts.zoho.eu."""
        return str(self._token_url.with_path(""))

    @property
    def refresh_count(self) -> int:
        """Refresh requests sent to the accounts server so far, failed ones included."""
        return self._refresh_count

    async def get_token(self) -> str:
        """Return the cached access token, refreshing it first if it is missing or near expiry.

        Raises a `TokenRefreshError` subclass when Zoho refuses the refresh,
        `DataCentreMismatchError`, `UnexpectedResponseError` or `TransportError`.
        """
        cached = self._cached
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.value
        return await self._shared_refresh()

    async def refresh(self, rejected_token: str) -> str:
        """Return a new access token after Zoho rejected `rejected_token`.

        A token that another coroutine got after `rejected_token` is returned
        without a new refresh. Raises as `get_token` does.
        """
        cached = self._cached
        if self._in_flight is None and cached is not None:
            if cached.value != rejected_token and self._clock() < cached.refresh_at:
                return cached.value
            if cached.value == rejected_token:
                self._cached = None
        return await self._shared_refresh()

    async def _shared_refresh(self) -> str:
        if self._closed:
            raise RuntimeError("this RefreshTokenProvider is closed; create a new one")
        task = self._in_flight
        if task is None:
            task = asyncio.get_running_loop().create_task(self._refresh_once())
            task.add_done_callback(_retrieve_exception)
            self._in_flight = task
        # The shield keeps a cancelled waiter from cancelling the refresh the others await.
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            own_cancellation = current is not None and current.cancelling() > 0
            if task.cancelled() and self._closed and not own_cancellation:
                raise RuntimeError("the token provider was closed while it refreshed the access "
                                   "token; create a new RefreshTokenProvider") from None
            raise

    async def _refresh_once(self) -> str:
        try:
            sent_at = self._clock()
            response = await self._request_token()
            self._check_data_centre(response)
        finally:
            if self._in_flight is asyncio.current_task():
                self._in_flight = None

        margin = min(self._refresh_margin, response.lifetime / 2)
        self._cached = _CachedToken(response.access_token, sent_at + response.lifetime - margin,
                                    sent_at + response.lifetime)
        if response.api_domain is not None:
            self._api_domain = response.api_domain
        logger.debug("got a new access token from %s, valid for %.0f s", self._token_url.host,
                     response.lifetime)
        return response.access_token

    async def _request_token(self) -> TokenResponse:
        session = self._get_session()
        form = {
            "grant_type": "refresh_token",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "refresh_token": self._refresh_token,
        }
        self._refresh_count += 1
        logger.debug("refreshing the access token at %s", self._token_url.host)
        try:
            # The credentials go in the form body, never in the URL, where proxies log them.
            async with session.post(
                self._token_url, data=form, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._request_timeout),
            ) as response:
                status, body = response.status, await _read_body(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(f"POST {self._token_url.host}{TOKEN_PATH} failed: "
                                 f"{describe_transport_error(exc, self._request_timeout)}") from exc

        secrets = (self._client_secret, self._refresh_token, self._client_id)
        try:
            return parse_token_response(status, body, secrets)
        except ZohoError as exc:
            logger.debug("token refresh at %s failed: %s", self._token_url.host, exc)
            raise

    def _check_data_centre(self, response: TokenResponse) -> None:
        if self._data_centre is not None and response.api_domain is not None:
            check_same_data_centre(self._data_centre.api_domain, response.api_domain)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(trust_env=False)
        if self._session.closed:
            raise RuntimeError("the aiohttp.ClientSession passed to RefreshTokenProvider is "
                               "closed; pass an open session or let the provider create its own")
        return self._session


def _retrieve_exception(task: asyncio.Task[str]) -> None:
    # Marks the error as retrieved, so that a refresh whose waiters were all
    # cancelled does not log "Task exception was never retrieved".
    if not task.cancelled():
        task.exception()


def _accounts_server(data_centre: DataCentre | str | None,
                     accounts_url: str | None) -> tuple[DataCentre | None, URL]:
    centre = DataCentre.parse(data_centre) if data_centre is not None else None
    if accounts_url is None:
        centre = centre or DataCentre.US
        return centre, URL(centre.accounts_url)
    url = check_server_url("accounts_url", accounts_url, "https://accounts.zoho.com")
    return centre or DataCentre.from_accounts_url(str(url)), url


def _check_credential(name: str, value: object) -> str:
    # The message never shows the value, which may be a secret.
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is missing: pass it as a non-empty str")
    if not _CREDENTIAL_PATTERN.fullmatch(value):
        raise ValueError(f"{name} contains spaces, line breaks or non-ASCII characters; "
                         "pass the value exactly as the Zoho API console shows it")
    return value


def _check_refresh_margin(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
            and value >= 0:
        return float(value)
    raise ValueError(f"invalid refresh_margin {value!r}: give a finite number of seconds, 0 or "
                     "more")


async def _read_body(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(16 * 1024):
        size += len(chunk)
        if size > MAX_TOKEN_BODY_BYTES:
            raise UnexpectedResponseError(
                f"the token endpoint's response exceeds {MAX_TOKEN_BODY_BYTES} bytes",
                response.status)
        chunks.append(chunk)
    return b"".join(chunks)
