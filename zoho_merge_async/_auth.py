"""Access tokens for requests: the `TokenProvider` protocol, a static token, the API domain
that follows the token, and the one replay after Zoho rejects a token."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from yarl import URL

from ._auth_errors import DataCentreMismatchError, UntrustedAPIDomainError
from ._datacentre import DataCentre, is_zoho_api_domain
from ._errors import TransportError
from ._validation import check_access_token, check_api_domain, is_loopback

if TYPE_CHECKING:
    from ._transport import HttpResponse

logger = logging.getLogger("zoho_merge_async")

_T = TypeVar("_T")

REJECTED_TOKEN_CODES = frozenset({"INVALID_TOKEN", "INVALID_OAUTHTOKEN"})
"""Zoho error codes of a 401 for an expired, revoked or replaced access token."""


@runtime_checkable
class TokenProvider(Protocol):
    """Source of the access token that `MergeClient` sends with every request.

    Implement it to take tokens from your own store, or use
    `RefreshTokenProvider`. `MergeClient` calls `get_token()` before each
    request, so it should return a cached token quickly. After a 401
    INVALID_TOKEN or INVALID_OAUTHTOKEN the client calls `refresh()` with the
    rejected token once and replays the request once with the new token.
    """

    @property
    def api_domain(self) -> str | None:
        """API domain of the token's data centre, such as https://www.zohoapis.eu, or None."""
        ...

    async def get_token(self) -> str:
        """Return a current access token."""
        ...

    async def refresh(self, rejected_token: str) -> str | None:
        """Return a new access token after Zoho rejected `rejected_token`.

        Return None when this provider cannot get another token, and the
        client then raises `InvalidTokenError`. Many coroutines may call this
        for the same rejected token at once, and all of them should get the
        one new token.
        """
        ...


@dataclass(frozen=True, slots=True)
class StaticToken:
    """Fixed access token that is never refreshed; `MergeClient` wraps a str token in it.

    Raises `ValueError` for a token that cannot be sent in a header.
    """

    access_token: str = field(repr=False)

    def __post_init__(self) -> None:
        check_access_token(self.access_token)

    @property
    def api_domain(self) -> str | None:
        """None, because a bare token does not tell its data centre."""
        return None

    async def get_token(self) -> str:
        """Return the token."""
        return self.access_token

    async def refresh(self, rejected_token: str) -> str | None:
        """Return None: a static token cannot be replaced."""
        return None


def as_token_provider(access_token: object) -> TokenProvider:
    """Wrap a str token in `StaticToken`, and pass a `TokenProvider` through.

    Raises `ValueError` for anything else; the message never shows the value.
    """
    if access_token is None or isinstance(access_token, str):
        return StaticToken(check_access_token(access_token))
    if isinstance(access_token, TokenProvider):
        return access_token
    raise ValueError(
        f"invalid access_token of type {type(access_token).__name__}: pass the Zoho OAuth "
        "access token as a str, or a TokenProvider such as RefreshTokenProvider")


class ApiRoot:
    """Scheme and host that requests go to.

    The API domain the caller chose wins. Without one, requests go to the
    provider's `api_domain`, else to the US data centre.
    """

    def __init__(self, chosen: str | None, provider: TokenProvider) -> None:
        self._chosen = check_api_domain(chosen) if chosen is not None else None
        self._provider = provider
        default = DataCentre.US.api_domain
        self._parsed: tuple[str, URL] = (default, URL(default))
        self._checked_domain: str | None = None

    def current(self) -> URL:
        """Return the root that the next request goes to, without checking it."""
        if self._chosen is not None:
            return self._chosen
        domain = self._provider.api_domain or DataCentre.US.api_domain
        if domain != self._parsed[0]:
            self._parsed = (domain, check_api_domain(domain))
        return self._parsed[1]

    def checked(self) -> URL:
        """Return the current root after checking it against the provider's `api_domain`.

        Raises `DataCentreMismatchError` when the chosen API domain and the
        provider's `api_domain` are hosts of two different Zoho data centres.
        Without a chosen API domain, raises `UntrustedAPIDomainError` when the
        provider's `api_domain` is neither a Zoho API domain nor a loopback
        address.
        """
        token_domain = self._provider.api_domain
        if token_domain is not None and token_domain != self._checked_domain:
            if self._chosen is not None:
                check_same_data_centre(str(self._chosen), token_domain)
            else:
                followed = self.current()
                if not (is_zoho_api_domain(followed) or is_loopback(followed.host or "")):
                    raise UntrustedAPIDomainError(str(followed))
            self._checked_domain = token_domain
        return self.current()


def check_same_data_centre(api_domain: str, token_api_domain: str) -> None:
    """Raise `DataCentreMismatchError` if the two domains are in different data centres.

    Hosts outside Zoho's known API domains, such as a local test server,
    pass unchecked.
    """
    chosen = DataCentre.from_api_domain(api_domain)
    token_centre = DataCentre.from_api_domain(token_api_domain)
    if chosen is not None and token_centre is not None and chosen is not token_centre:
        raise DataCentreMismatchError(api_domain, chosen.name, token_api_domain,
                                      token_centre.name)


def is_rejected_token(response: HttpResponse) -> bool:
    """Return True for a 401 with the Zoho error code INVALID_TOKEN or INVALID_OAUTHTOKEN."""
    if response.status != 401:
        return False
    try:
        payload: Any = json.loads(response.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    candidates: list[Any] = [payload]
    if isinstance(payload, dict):
        for key in ("merge", "data"):
            items = payload.get(key)
            if isinstance(items, list):
                candidates.extend(items[:1])
    return any(isinstance(item, dict) and item.get("code") in REJECTED_TOKEN_CODES
               for item in candidates)


async def send_with_token(
    provider: TokenProvider, send: Callable[[str], Awaitable[HttpResponse]], *,
    deadline: float | None = None, clock: Callable[[], float] = time.monotonic,
    request_label: str = "the request",
) -> HttpResponse:
    """Send a request with the provider's token, and replay it once if Zoho rejects the token.

    The replay gets the token that `provider.refresh()` returns. Its response
    is returned as it is, so a second rejection becomes `InvalidTokenError`
    when the caller reads the response. A provider that returns None from
    `refresh()` gets no replay.

    With a `deadline` (on `clock`), `get_token()` and `refresh()` may run
    until the deadline at most. Then `TransportError` (not sent) is raised,
    naming `request_label`. `RefreshTokenProvider` keeps its shared refresh
    running for its other callers, while the coroutine of another provider
    is cancelled.

    NOTE: without a deadline (`get_merge_status`, `merge_records`) only the
    provider bounds its own work; `RefreshTokenProvider` bounds each refresh
    by its `request_timeout`.
    """
    token = await _before_deadline(provider.get_token, deadline, clock, request_label)
    token = _check_provided(provider, token)
    response = await send(token)
    if not is_rejected_token(response):
        return response

    new_token = await _before_deadline(lambda: provider.refresh(token), deadline, clock,
                                       request_label)
    if new_token is None:
        return response
    new_token = _check_provided(provider, new_token)
    # Zoho checks the token before it runs a request, so a request rejected with
    # INVALID_TOKEN did not run, and sending it once more is safe even for a POST.
    logger.debug("Zoho rejected the access token; sending the request again with a new token")
    return await send(new_token)


async def _before_deadline(
    fetch: Callable[[], Awaitable[_T]], deadline: float | None, clock: Callable[[], float],
    request_label: str,
) -> _T:
    """Await `fetch()`, raising `TransportError` (not sent) if it is not done by `deadline`."""
    if deadline is None:
        return await fetch()
    remaining = deadline - clock()
    if remaining <= 0:
        raise TransportError(f"{request_label} was not sent: the deadline passed before an "
                             "access token was available")

    timeout = asyncio.timeout(remaining)
    try:
        async with timeout:
            return await fetch()
    except TimeoutError as exc:
        if not timeout.expired():
            raise
        raise TransportError(f"{request_label} was not sent: no access token within "
                             f"{remaining:.3g} s, before the deadline") from exc


def _check_provided(provider: TokenProvider, token: object) -> str:
    try:
        return check_access_token(token)
    except ValueError as exc:
        raise ValueError(f"{type(provider).__name__} returned an unusable access token: "
                         f"{exc}") from None
