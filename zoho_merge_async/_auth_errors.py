"""Exceptions for getting an access token, under the SDK's root `ZohoError`.

A refresh failure is not a `ZohoAPIError`: Zoho's accounts server returns
an OAuth `error` value (such as "invalid_code") instead of a CRM error code.
No message here ever contains a token or a client secret.
"""

from __future__ import annotations

from typing import Any

from ._errors import ZohoError, shorten


class TokenRefreshError(ZohoError):
    """Zoho's accounts server rejected a refresh of the access token.

    `error` is the accounts server's `error` value, such as "invalid_code",
    and `description` its `error_description`, if any. Subclasses name the
    errors with a known cause; this class is raised for any other value.
    """

    _explanation = "Zoho's accounts server rejected the refresh of the access token"
    _advice = "check the client id, the client secret and the refresh token"

    def __init__(self, error: str, description: str = "", http_status: int = 200) -> None:
        self.error = error
        self.description = description
        self.http_status = http_status
        text = f"{self._explanation} ({error!r}, HTTP {http_status})"
        # The server's sentence may end in a period, and the advice follows after one.
        sentence = description.rstrip().rstrip(".")
        if sentence:
            text += f": {sentence}"
        super().__init__(f"{text}. {self._advice[:1].upper()}{self._advice[1:]}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.error, self.description, self.http_status))


class InvalidRefreshTokenError(TokenRefreshError):
    """invalid_code: the refresh token was revoked, has expired or was never issued."""

    _explanation = "Zoho rejected the refresh token"
    _advice = ("the refresh token was revoked, replaced or never issued to this client; "
               "generate a new refresh token in the Zoho API console and configure it")


class InvalidClientError(TokenRefreshError):
    """invalid_client: wrong client id or secret, or another data centre's accounts server."""

    _explanation = "Zoho's accounts server does not know this client id and client secret"
    _advice = ("check client_id and client_secret, and use the accounts server of the data "
               "centre where the client was registered (such as https://accounts.zoho.eu "
               "for EU)")


class RefreshRateLimitError(TokenRefreshError):
    """Access Denied: too many refreshes, more than 10 in 10 minutes for one refresh token."""

    _explanation = "Zoho rejected the refresh of the access token because of too many requests"
    _advice = ("a refresh token yields at most 10 access tokens in 10 minutes; wait up to 10 "
               "minutes before the next attempt, and share one token provider between all "
               "coroutines and processes")


class DataCentreMismatchError(ZohoError):
    """The API domain chosen for requests is in another data centre than the token's.

    Zoho rejects a token at another data centre's API domain, so no request
    is sent. `chosen` and `token_data_centre` are the data centre names.
    """

    def __init__(self, api_domain: str, chosen: str, token_api_domain: str,
                 token_data_centre: str) -> None:
        self.api_domain = api_domain
        self.chosen = chosen
        self.token_api_domain = token_api_domain
        self.token_data_centre = token_data_centre
        super().__init__(
            f"the API domain {api_domain} is in the {chosen} data centre, but the access "
            f"token is for {token_api_domain} in the {token_data_centre} data centre; "
            f"use the {token_data_centre} API domain (or omit api_domain to use the "
            "token's), or the accounts server of the account's data centre")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.api_domain, self.chosen, self.token_api_domain,
                             self.token_data_centre))


class UntrustedAPIDomainError(ZohoError):
    """The token provider named an API domain that is not one of Zoho's, so nothing was sent.

    Without a chosen `api_domain`, `MergeClient` sends requests to the
    `api_domain` of its token provider, which `RefreshTokenProvider` takes
    from the last token response. The client follows only the API domains
    of the `DataCentre` presets (www, sandbox and developer hosts, https on
    port 443) and loopback addresses, so that a forged token response
    cannot send the access token to another host. `api_domain` is the
    rejected value.
    """

    def __init__(self, api_domain: str) -> None:
        self.api_domain = api_domain
        super().__init__(
            f"the token provider named the API domain {shorten(api_domain, 200)}, which is not "
            "a Zoho API domain, so no request was sent to it. If it is your account's API "
            "domain, pass it as MergeClient(api_domain=...)")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.api_domain,))


_ERRORS_BY_VALUE: dict[str, type[TokenRefreshError]] = {
    "access denied": RefreshRateLimitError,
    "invalid_client": InvalidClientError,
    "invalid_code": InvalidRefreshTokenError,
}


def refresh_error(error: str, description: str, http_status: int) -> TokenRefreshError:
    """Build the exception class that matches the accounts server's `error` value.

    Values match case-insensitively, because Zoho writes "Access Denied" with
    capitals but its other values in lower case.
    """
    cls = _ERRORS_BY_VALUE.get(error.strip().lower(), TokenRefreshError)
    return cls(error, description, http_status)
