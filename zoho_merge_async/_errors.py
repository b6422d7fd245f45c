"""Exceptions raised by the SDK.

Every failure of a request or a wait is a `ZohoError`::

    ZohoError
    ├── ZohoAPIError                 Zoho responded with an error code
    │   ├── InvalidRequestMethodError, InvalidDataError, InvalidModuleError, ...
    │   ├── InternalError            INTERNAL_ERROR, the only code retried
    │   ├── InvalidTokenError        INVALID_TOKEN, INVALID_OAUTHTOKEN
    │   └── RateLimitError           429 TOO_MANY_REQUESTS
    ├── MergeJobNotFoundError        HTTP 204: no such merge job
    ├── MultipleMergeJobsError       a wait without job id found several jobs
    ├── MergeTimeoutError            the wait's deadline passed (also a TimeoutError)
    ├── UnexpectedResponseError      a body that is not Zoho's documented JSON
    ├── TransportError               connection failure or request timeout
    ├── MergeOutcomeUnknownError     a merge request failed in a way that may have merged
    ├── TokenRefreshError            the accounts server refused a refresh (_auth_errors)
    │   └── InvalidRefreshTokenError, InvalidClientError, RefreshRateLimitError
    ├── DataCentreMismatchError      the API domain and the token are in two data centres
    └── UntrustedAPIDomainError      the token named an API domain that is not Zoho's

Misuse of the API (a malformed module name, a closed client) raises `ValueError`
or `RuntimeError` instead, before any request is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._models import MergeStatus

MAX_SERVER_TEXT_CHARS = 300
"""Characters of Zoho's `message`, and of its `details` as text, shown in an error message."""

MAX_CAUSE_CHARS = 200
"""Characters of the last error's text shown in a `MergeTimeoutError` message."""


def shorten(text: str, limit: int) -> str:
    """Return `text` cut to `limit` characters, ending in "…" when it was cut."""
    if len(text) <= limit:
        return text
    return text[:limit - 1] + "…"


class ZohoError(Exception):
    """Root of every error the SDK raises for a failed request or wait."""


class ZohoAPIError(ZohoError):
    """An error response from Zoho, identified by its `code`.

    `message` and `details` are Zoho's own text and detail object. Decide on
    `code` (or the subclass), never on `message`, which Zoho may reword.
    """

    def __init__(
        self,
        code: str,
        http_status: int,
        message: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.http_status = http_status
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = f"Zoho returned {self.code} (HTTP {self.http_status})"
        if self.message:
            text += f": {shorten(self.message, MAX_SERVER_TEXT_CHARS)}"
        if self.details:
            text += f" {shorten(str(self.details), MAX_SERVER_TEXT_CHARS)}"
        hint = _HINTS.get(self.code)
        if hint:
            text += f". {hint}"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.http_status, self.message, self.details))


class InvalidRequestMethodError(ZohoAPIError):
    """INVALID_REQUEST_METHOD: the HTTP method is not allowed on this URL."""


class InvalidDataError(ZohoAPIError):
    """INVALID_DATA: a value in the request, such as the master record id, is invalid."""


class InvalidModuleError(ZohoAPIError):
    """INVALID_MODULE: the module API name does not exist or does not support merging."""


class OAuthScopeMismatchError(ZohoAPIError):
    """OAUTH_SCOPE_MISMATCH: the access token lacks the module's READ or ALL scope."""


class AuthenticationFailureError(ZohoAPIError):
    """AUTHENTICATION_FAILURE: the request carried no usable credentials."""


class InvalidUrlPatternError(ZohoAPIError):
    """INVALID_URL_PATTERN: the URL does not match a Zoho API path."""


class InternalError(ZohoAPIError):
    """INTERNAL_ERROR: a server-side failure, retried according to `RetryPolicy`."""


class InvalidTokenError(ZohoAPIError):
    """INVALID_TOKEN or INVALID_OAUTHTOKEN: the access token expired or was revoked."""


class InvalidHostError(ZohoAPIError):
    """INVALID_HOST: the API domain does not serve this account."""


class APINotSupportedError(ZohoAPIError):
    """API_NOT_SUPPORTED: this API version lacks the call; see `details["supported_version"]`."""


class NotAllowedError(ZohoAPIError):
    """NOT_ALLOWED: a record may not be merged, for example one in another scheduled merge."""


class DuplicateDataError(ZohoAPIError):
    """DUPLICATE_DATA: a record id or a field is given twice, or a unique value would repeat."""


class MandatoryNotFoundError(ZohoAPIError):
    """MANDATORY_NOT_FOUND: a required value is missing from the request."""


class DependentFieldMissingError(ZohoAPIError):
    """DEPENDENT_FIELD_MISSING: a field was given without the field it depends on."""


class LimitExceededError(ZohoAPIError):
    """LIMIT_EXCEEDED: a Zoho limit was exceeded, such as the total size of a merged file field.

    For a merge, `details` can name the limit (`MAXIMUM_SIZE`) and the fields
    that exceed it (`limit_due_to`).
    """


class RateLimitError(ZohoAPIError):
    """TOO_MANY_REQUESTS (HTTP 429): the organisation's concurrency or credit limit was hit.

    `retry_after` is the number of seconds the server asked to wait, or None
    when it sent no usable `Retry-After` header.
    """

    def __init__(
        self,
        code: str,
        http_status: int,
        message: str = "",
        details: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(code, http_status, message, details)

    def __reduce__(self) -> tuple[Any, ...]:
        args = (self.code, self.http_status, self.message, self.details, self.retry_after)
        return (type(self), args)


ERROR_CLASSES: dict[str, type[ZohoAPIError]] = {
    "API_NOT_SUPPORTED": APINotSupportedError,
    "AUTHENTICATION_FAILURE": AuthenticationFailureError,
    "DEPENDENT_FIELD_MISSING": DependentFieldMissingError,
    "DUPLICATE_DATA": DuplicateDataError,
    "INTERNAL_ERROR": InternalError,
    "INVALID_DATA": InvalidDataError,
    "INVALID_HOST": InvalidHostError,
    "INVALID_MODULE": InvalidModuleError,
    "INVALID_OAUTHTOKEN": InvalidTokenError,
    "INVALID_REQUEST_METHOD": InvalidRequestMethodError,
    "INVALID_TOKEN": InvalidTokenError,
    "INVALID_URL_PATTERN": InvalidUrlPatternError,
    "LIMIT_EXCEEDED": LimitExceededError,
    "MANDATORY_NOT_FOUND": MandatoryNotFoundError,
    "NOT_ALLOWED": NotAllowedError,
    "OAUTH_SCOPE_MISMATCH": OAuthScopeMismatchError,
    "TOO_MANY_REQUESTS": RateLimitError,
}
"""Zoho error `code` to exception class; codes not listed give a plain `ZohoAPIError`."""

_HINTS: dict[str, str] = {
    "AUTHENTICATION_FAILURE": "Check that an access token is configured",
    "INVALID_HOST": "Use the API domain of the account's data centre",
    "INVALID_MODULE": "Use the module's API name, such as Leads or Contacts",
    "INVALID_OAUTHTOKEN": "Get a new access token",
    "INVALID_TOKEN": "Get a new access token",
    "OAUTH_SCOPE_MISMATCH": ("Grant the token the ZohoCRM.modules.<module>.READ scope to read "
                             "merge status, or .WRITE (or .ALL) to merge records"),
}


def api_error(
    code: str,
    http_status: int,
    message: str = "",
    details: Mapping[str, Any] | None = None,
    retry_after: float | None = None,
) -> ZohoAPIError:
    """Build the exception class that matches Zoho's error `code`."""
    cls = ERROR_CLASSES.get(code, ZohoAPIError)
    if issubclass(cls, RateLimitError):
        return cls(code, http_status, message, details, retry_after)
    return cls(code, http_status, message, details)


class MergeJobNotFoundError(ZohoError):
    """HTTP 204 from Zoho: no merge job matches the master record (and job id, if given)."""

    def __init__(self, module: str, master_record_id: str, job_id: str | None) -> None:
        self.module = module
        self.master_record_id = master_record_id
        self.job_id = job_id
        if job_id is None:
            what = f"no merge job exists for {module} record {master_record_id}"
        else:
            what = f"merge job {job_id} was not found for {module} record {master_record_id}"
        super().__init__(f"{what}. Check the module, the master record id and the job id")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.module, self.master_record_id, self.job_id))


class MultipleMergeJobsError(ZohoError):
    """A wait without a job id found more than one merge job for the master record."""

    def __init__(self, module: str, master_record_id: str, job_ids: list[str]) -> None:
        self.module = module
        self.master_record_id = master_record_id
        self.job_ids = list(job_ids)
        super().__init__(
            f"{module} record {master_record_id} has {len(job_ids)} merge jobs "
            f"({', '.join(job_ids)}); pass job_id to choose the one to wait for"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.module, self.master_record_id, self.job_ids))


class MergeTimeoutError(ZohoError, TimeoutError):
    """The merge job was not finished when the wait's deadline passed.

    `last_error` summarises the error that ended the last request before the
    deadline: its type and the start of its text. It is "" when there was
    none. The error itself is chained as `__cause__`.
    """

    def __init__(
        self,
        job_id: str | None,
        last_status: MergeStatus | None,
        elapsed: float,
        polls: int,
        last_error: str = "",
    ) -> None:
        self.job_id = job_id
        self.last_status = last_status
        self.elapsed = elapsed
        self.polls = polls
        self.last_error = last_error
        status = last_status.value if last_status else "unknown"
        text = (f"merge job {job_id or '(not yet known)'} was still {status} after "
                f"{elapsed:.1f} s and {polls} polls")
        if last_error:
            text += f" (last error: {last_error})"
        super().__init__(f"{text}; raise the timeout or resume the wait later")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.job_id, self.last_status, self.elapsed, self.polls,
                             self.last_error))


def summarize_error(error: BaseException) -> str:
    """Return the error's type name and the start of its text, for another error's message."""
    return f"{type(error).__name__}: {shorten(str(error), MAX_CAUSE_CHARS)}"


class UnexpectedResponseError(ZohoError):
    """Zoho, or a gateway in front of it, sent a response that is not the documented JSON.

    `body_excerpt` contains at most the first 200 characters of the body.
    """

    def __init__(self, reason: str, http_status: int, body_excerpt: str = "") -> None:
        self.reason = reason
        self.http_status = http_status
        self.body_excerpt = body_excerpt
        text = f"unexpected response (HTTP {http_status}): {reason}"
        if body_excerpt:
            text += f"; body starts {body_excerpt!r}"
        super().__init__(text)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.http_status, self.body_excerpt))


class TransportError(ZohoError):
    """The request failed before a complete response arrived: connection error or timeout.

    `request_sent` is True when the request may have reached the server: the
    connection broke or the request timed out after it was opened. It is
    False when the request was never sent, because no connection could be
    opened, no access token or request slot came in time, or the deadline
    had passed. The aiohttp or timeout exception, if any, is chained as
    `__cause__`.
    """

    def __init__(self, message: str, *, request_sent: bool = False) -> None:
        super().__init__(message)
        self.request_sent = request_sent

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self),), {"request_sent": self.request_sent})


class MergeOutcomeUnknownError(ZohoError):
    """A Merge Records request failed in a way that leaves open whether Zoho merged.

    Raised for a lost connection or request timeout after the request may have
    been sent (`TransportError.request_sent`), an HTTP 5xx response or
    INTERNAL_ERROR, and a 2xx response that cannot be read. Errors before the
    request was sent (getting a token, the data centre check, waiting for a
    request slot, opening the connection) and 3xx or 4xx responses without
    Zoho's error body are raised as they are. The request is never sent again
    automatically, because a second request could merge twice. The original
    error is chained as `__cause__`.
    """

    def __init__(self, module: str, master_record_id: str, child_ids: list[str],
                 reason: str) -> None:
        self.module = module
        self.master_record_id = master_record_id
        self.child_ids = list(child_ids)
        self.reason = reason
        children = " and ".join(child_ids)
        records, exist = ("record", "exists") if len(child_ids) == 1 else ("records", "exist")
        super().__init__(
            f"the merge of {module} {records} {children} into {master_record_id} may or may "
            f"not have been done or scheduled: {reason}. It was not retried, because a second "
            f"request could merge twice. Check with get_merge_jobs({module!r}, "
            f"{master_record_id!r}) and whether {records} {children} still {exist} before "
            "sending it again"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.module, self.master_record_id, self.child_ids, self.reason))
