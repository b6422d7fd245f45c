"""Asyncio client for Zoho CRM record-merge jobs.

Fetch the status of background merge jobs and wait for them to finish::

    async with MergeClient(access_token=token) as client:
        job = await wait_for_merge(client, "Leads", "2378988000000509963", "2423488000000513988")
"""

from ._auth import StaticToken, TokenProvider
from ._auth_errors import (
    DataCentreMismatchError,
    InvalidClientError,
    InvalidRefreshTokenError,
    RefreshRateLimitError,
    TokenRefreshError,
    UntrustedAPIDomainError,
)
from ._client import DEFAULT_API_DOMAIN, MergeClient
from ._datacentre import DataCentre
from ._errors import (
    APINotSupportedError,
    AuthenticationFailureError,
    DependentFieldMissingError,
    DuplicateDataError,
    InternalError,
    InvalidDataError,
    InvalidHostError,
    InvalidModuleError,
    InvalidRequestMethodError,
    InvalidTokenError,
    InvalidUrlPatternError,
    LimitExceededError,
    MandatoryNotFoundError,
    MergeJobNotFoundError,
    MergeOutcomeUnknownError,
    MergeTimeoutError,
    MultipleMergeJobsError,
    NotAllowedError,
    OAuthScopeMismatchError,
    RateLimitError,
    TransportError,
    UnexpectedResponseError,
    ZohoAPIError,
    ZohoError,
)
from ._fleet import MergeTarget, WaitOutcome, wait_all, wait_many
from ._limiter import DEFAULT_MAX_CONCURRENCY, ConcurrencyLimiter, Limiter
from ._merge import FinishedMerge, MergeOutcome, MergeResult, merge_and_wait
from ._merge_request import ChildRecord, MergeField
from ._models import MergeJob, MergeStatus
from ._policy import PollPolicy, RetryPolicy
from ._progress import MergeStatusChange, WaitStats
from ._refresh import RefreshTokenProvider
from ._resume import SaveState, resume_wait
from ._state import WAIT_STATE_VERSION, WaitState
from ._stats import ClientStats
from ._wait import wait_for_merge

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_API_DOMAIN",
    "DEFAULT_MAX_CONCURRENCY",
    "WAIT_STATE_VERSION",
    "APINotSupportedError",
    "AuthenticationFailureError",
    "ChildRecord",
    "ClientStats",
    "ConcurrencyLimiter",
    "DataCentre",
    "DataCentreMismatchError",
    "DependentFieldMissingError",
    "DuplicateDataError",
    "FinishedMerge",
    "InternalError",
    "InvalidClientError",
    "InvalidDataError",
    "InvalidHostError",
    "InvalidModuleError",
    "InvalidRefreshTokenError",
    "InvalidRequestMethodError",
    "InvalidTokenError",
    "InvalidUrlPatternError",
    "LimitExceededError",
    "Limiter",
    "MandatoryNotFoundError",
    "MergeClient",
    "MergeField",
    "MergeJob",
    "MergeJobNotFoundError",
    "MergeOutcome",
    "MergeOutcomeUnknownError",
    "MergeResult",
    "MergeStatus",
    "MergeStatusChange",
    "MergeTarget",
    "MergeTimeoutError",
    "MultipleMergeJobsError",
    "NotAllowedError",
    "OAuthScopeMismatchError",
    "PollPolicy",
    "RateLimitError",
    "RefreshRateLimitError",
    "RefreshTokenProvider",
    "RetryPolicy",
    "SaveState",
    "StaticToken",
    "TokenProvider",
    "TokenRefreshError",
    "TransportError",
    "UnexpectedResponseError",
    "UntrustedAPIDomainError",
    "WaitOutcome",
    "WaitState",
    "WaitStats",
    "ZohoAPIError",
    "ZohoError",
    "__version__",
    "merge_and_wait",
    "resume_wait",
    "wait_all",
    "wait_for_merge",
    "wait_many",
]
