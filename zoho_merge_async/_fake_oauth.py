"""Zoho's OAuth token endpoint for `FakeZohoServer`: refreshes, expiry and refresh errors.

The fake follows Zoho CRM's "Token Validity" page and the "Refresh Access
Token" pages of Zoho's API guides. A refresh is a form POST to
/oauth/v2/token, and an access token lives an hour. A refresh token yields at
most 10 access tokens in 10 minutes and keeps at most 15 active: the 16th
replaces the oldest, which then gets INVALID_OAUTHTOKEN. A rejected refresh
gets HTTP 200 with an `error` value.

This module imports only the standard library and aiohttp.
"""

from __future__ import annotations

import asyncio
import collections
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from aiohttp import web

TOKEN_PATH = "/oauth/v2/token"

REFRESH_LIMIT = 10
"""Access tokens one refresh token may yield per `REFRESH_WINDOW`."""

REFRESH_WINDOW = 600.0
"""Seconds of the refresh limit's sliding window."""

MAX_ACTIVE_TOKENS = 15
"""Access tokens kept active per refresh token; a new one beyond this replaces the oldest."""

REFRESH_ERRORS = ("invalid_code", "invalid_client", "Access Denied")
"""The `error` values the token endpoint sends: revoked refresh token, wrong client, too many."""

# NOTE: Zoho's "Access Denied" response is described as HTTP 200 with that message (Zoho's
# "Kaizen #43 - Tokens and Limitations" post); the description text here is an approximation.
_TOO_MANY_DESCRIPTION = ("You have made too many requests continuously. Please try again after "
                         "some time.")

ExpiresInFormat = Literal["seconds", "milliseconds"]


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """Request received by the fake token endpoint, rejected ones included.

    `form` contains the form fields, secrets included, so keep it out of logs.
    `query_string` is the raw query, which a careful client leaves empty.
    """

    method: str
    query_string: str
    form: dict[str, str] = field(repr=False)
    received_at: float


@dataclass(frozen=True, slots=True)
class _RefreshFailure:
    error: str
    http_status: int


@dataclass(slots=True)
class _OAuthClient:
    client_id: str
    client_secret: str
    token_lifetime: float
    expires_in_format: ExpiresInFormat
    api_domain: str | None
    issued_at: collections.deque[float] = field(default_factory=collections.deque)
    active: collections.deque[str] = field(default_factory=collections.deque)
    revoked: bool = False


@dataclass(slots=True)
class _IssuedToken:
    expires_at: float
    replaced: bool = False


class _Server(Protocol):
    @property
    def api_domain(self) -> str: ...


class FakeOAuthEndpoint:
    """Zoho's token endpoint on a `FakeZohoServer`, reached as `server.oauth`.

    It serves `POST /oauth/v2/token` on the server's host and port. Access
    tokens it issues are accepted by the merge endpoints until they expire
    (INVALID_TOKEN) or are replaced (INVALID_OAUTHTOKEN), alongside the
    server's static `access_tokens`.

    `clock` (seconds, `time.monotonic` by default) times token expiry and the
    refresh limit; tests may replace it with a fake clock. `refresh_delay` is
    the seconds the endpoint waits before each response. Token requests are
    recorded in `requests`, not in the server's `requests`.
    """

    def __init__(self, server: _Server) -> None:
        self._server = server
        self.clock: Callable[[], float] = time.monotonic
        self.refresh_delay = 0.0
        self.requests: list[TokenRequest] = []
        self._oauth_clients: dict[str, _OAuthClient] = {}
        self._issued: dict[str, _IssuedToken] = {}
        self._refresh_failures: collections.deque[_RefreshFailure] = collections.deque()

    @property
    def accounts_url(self) -> str:
        """Base URL of the token endpoint: the server's `api_domain`."""
        return self._server.api_domain

    @property
    def refresh_count(self) -> int:
        """Requests received by the token endpoint, refused ones included."""
        return len(self.requests)

    def add_client(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        *,
        token_lifetime: float = 3600.0,
        expires_in_format: ExpiresInFormat = "seconds",
        api_domain: str | None = None,
    ) -> None:
        """Accept refreshes of `refresh_token` by this client id and secret.

        Issued access tokens live `token_lifetime` seconds on `clock`.
        With `expires_in_format="milliseconds"` responses give `expires_in` in
        milliseconds plus `expires_in_sec`, as older Zoho responses do.
        `api_domain` is sent in each response: this server's own by default, and
        none at all for "".
        Raises ValueError for an empty value, a refresh token already added,
        a lifetime that is not positive, or an unknown format.
        """
        for name, value in (("client_id", client_id), ("client_secret", client_secret),
                            ("refresh_token", refresh_token)):
            if not value:
                raise ValueError(f"{name} must be a non-empty str")
        if refresh_token in self._oauth_clients:
            raise ValueError("this refresh_token was already added")
        if not (math.isfinite(token_lifetime) and token_lifetime > 0):
            raise ValueError(f"token_lifetime must be a positive number of seconds, "
                             f"got {token_lifetime!r}")
        if expires_in_format not in ("seconds", "milliseconds"):
            raise ValueError(f"expires_in_format must be 'seconds' or 'milliseconds', "
                             f"got {expires_in_format!r}")
        self._oauth_clients[refresh_token] = _OAuthClient(
            client_id, client_secret, float(token_lifetime), expires_in_format, api_domain)

    def fail_refreshes(self, error: str, *, times: int = 1, http_status: int = 200) -> None:
        """Respond to the next `times` token requests with `{"error": error}`, whatever they send.

        Zoho's values are in `REFRESH_ERRORS`; "Access Denied" also gets
        Zoho's description and `"status": "failure"`. Raises ValueError for an
        empty error, `times` below 1 or a status outside 200-599.
        """
        if not error:
            raise ValueError("error must be a non-empty str such as 'invalid_code'")
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times!r}")
        if not 200 <= http_status <= 599:
            raise ValueError(f"http_status must be 200-599, got {http_status!r}")
        self._refresh_failures.extend([_RefreshFailure(error, http_status)] * times)

    def revoke_refresh_token(self, refresh_token: str) -> None:
        """Respond to later refreshes of `refresh_token` with invalid_code.

        Raises KeyError for a refresh token never added.
        """
        self._oauth_clients[refresh_token].revoked = True

    def expire_tokens(self) -> None:
        """Make every access token issued so far expire now; static `access_tokens` stay valid."""
        for issued in self._issued.values():
            issued.expires_at = -math.inf

    def rejection_code(self, token: str) -> str | None:
        """Return the Zoho error code for an issued token that is no longer valid, else None.

        A token that was never issued gets INVALID_TOKEN.
        """
        issued = self._issued.get(token)
        if issued is None:
            return "INVALID_TOKEN"
        if issued.replaced:
            return "INVALID_OAUTHTOKEN"
        if self.clock() >= issued.expires_at:
            return "INVALID_TOKEN"
        return None

    async def handle(self, request: web.Request) -> web.Response:
        """Respond to one request to the token endpoint."""
        form = {name: str(value) for name, value in (await request.post()).items()}
        self.requests.append(TokenRequest(
            request.method, request.query_string, form, asyncio.get_running_loop().time()))
        if self.refresh_delay > 0:
            await asyncio.sleep(self.refresh_delay)

        if request.method != "POST":
            # NOTE: Zoho does not document its response to other methods.
            return web.json_response({"error": "invalid_request"}, status=405)
        if self._refresh_failures:
            failure = self._refresh_failures.popleft()
            return _refresh_error(failure.error, failure.http_status)
        if form.get("grant_type") != "refresh_token":
            # NOTE: Zoho's value for an unsupported grant type is not documented.
            return _refresh_error("unsupported_grant_type")
        return self._issue_token(form)

    def _issue_token(self, form: dict[str, str]) -> web.Response:
        client = self._oauth_clients.get(form.get("refresh_token", ""))
        if client is None or client.revoked:
            return _refresh_error("invalid_code")
        if (form.get("client_id"), form.get("client_secret")) != (client.client_id,
                                                                  client.client_secret):
            return _refresh_error("invalid_client")

        now = self.clock()
        while client.issued_at and now - client.issued_at[0] >= REFRESH_WINDOW:
            client.issued_at.popleft()
        if len(client.issued_at) >= REFRESH_LIMIT:
            return _refresh_error("Access Denied")
        client.issued_at.append(now)

        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        self._issued[token] = _IssuedToken(now + client.token_lifetime)
        client.active.append(token)
        if len(client.active) > MAX_ACTIVE_TOKENS:
            self._issued[client.active.popleft()].replaced = True
        return web.json_response(self._token_response(token, client))

    def _token_response(self, token: str, client: _OAuthClient) -> dict[str, object]:
        lifetime: float = client.token_lifetime
        seconds: float = int(lifetime) if lifetime.is_integer() else lifetime
        response: dict[str, object] = {"access_token": token, "scope": "ZohoCRM.modules.ALL"}
        if client.api_domain != "":
            response["api_domain"] = client.api_domain or self._server.api_domain
        response["token_type"] = "Bearer"
        if client.expires_in_format == "milliseconds":
            response["expires_in_sec"] = seconds
            response["expires_in"] = round(lifetime * 1000)
        else:
            response["expires_in"] = seconds
        return response


def _refresh_error(error: str, http_status: int = 200) -> web.Response:
    body: dict[str, str] = {"error": error}
    if error == "Access Denied":
        body = {"error_description": _TOO_MANY_DESCRIPTION, "error": error, "status": "failure"}
    return web.json_response(body, status=http_status)
