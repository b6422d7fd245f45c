"""Translation of a response from Zoho's token endpoint into a token or a typed error.

A refresh (`POST {accounts server}/oauth/v2/token`, the "Refresh Access Token"
pages of Zoho's API guides) returns ``{"access_token": ..., "api_domain": ...,
"token_type": "Bearer", "expires_in": 3600}``. Older responses, such as the one
on Zoho Writer's "Refresh your Access Tokens" page, give `expires_in` in
milliseconds and add `expires_in_sec`. A refused refresh comes as
``{"error": "invalid_code"}`` and the like, usually with HTTP 200.

No error built here includes the body, because it may contain a token.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ._auth_errors import refresh_error
from ._errors import UnexpectedResponseError
from ._validation import check_access_token, check_api_domain

DEFAULT_TOKEN_LIFETIME = 3600.0
"""Seconds an access token lives when the response gives no lifetime (Zoho's documented hour)."""

MAX_DESCRIPTION_CHARS = 200
"""Characters of Zoho's `error_description` kept in a `TokenRefreshError`."""


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """Access token issued by the accounts server."""

    access_token: str = field(repr=False)
    lifetime: float
    """Seconds the token is valid from when the request was sent."""
    api_domain: str | None
    """API domain of the account's data centre, or None when the response has none."""


def parse_token_response(http_status: int, body: bytes, secrets: Iterable[str]) -> TokenResponse:
    """Return the token in a token endpoint response, or raise the matching error.

    Raises a `TokenRefreshError` subclass for a response with an `error` value,
    and `UnexpectedResponseError` for any other response without a usable token.
    Each of `secrets` is masked in the error description Zoho sends.
    """
    try:
        payload: Any = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        payload = None
    if not isinstance(payload, dict):
        raise UnexpectedResponseError("the token endpoint's response is not a JSON object",
                                      http_status)

    error = payload.get("error")
    if isinstance(error, str) and error:
        description = payload.get("error_description")
        text = _mask(description, secrets) if isinstance(description, str) else ""
        raise refresh_error(error, text, http_status)
    if http_status != 200:
        raise UnexpectedResponseError("the token endpoint responded without a token or an "
                                      "error value", http_status)

    return TokenResponse(
        access_token=_read_token(payload, http_status),
        lifetime=_read_lifetime(payload, http_status),
        api_domain=_read_api_domain(payload, http_status),
    )


def _read_token(payload: dict[str, Any], http_status: int) -> str:
    try:
        return check_access_token(payload.get("access_token"))
    except ValueError:
        raise UnexpectedResponseError("the token endpoint's response has no usable access_token",
                                      http_status) from None


def _read_lifetime(payload: dict[str, Any], http_status: int) -> float:
    # When `expires_in_sec` is present, `expires_in` is the same lifetime in milliseconds.
    key = "expires_in_sec" if "expires_in_sec" in payload else "expires_in"
    value = payload.get(key)
    if value is None:
        return DEFAULT_TOKEN_LIFETIME
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not (math.isfinite(value) and value > 0):
        raise UnexpectedResponseError(
            f"the token endpoint's {key} {value!r} is not a positive number of seconds",
            http_status)
    return float(value)


def _read_api_domain(payload: dict[str, Any], http_status: int) -> str | None:
    value = payload.get("api_domain")
    if value is None or value == "":
        return None
    try:
        return str(check_api_domain(value))
    except ValueError as exc:
        raise UnexpectedResponseError(f"the token endpoint's api_domain is unusable: {exc}",
                                      http_status) from exc


def _mask(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:MAX_DESCRIPTION_CHARS]
