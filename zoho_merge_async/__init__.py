"""Asyncio client for Zoho CRM record-merge jobs.

Fetch the status of background merge jobs and wait for them to finish::

    async with MergeClient(access_token=token) as client:
        job = await wait_for_merge(client, "Leads", "2378988000000509963", "2423488000000513988")
"""

from ._client import DEFAULT_API_DOMAIN, ClientStats, MergeClient
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
from ._models import MergeJob, MergeStatus
from ._policy import PollPolicy, RetryPolicy
from ._wait import wait_for_merge

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_API_DOMAIN",
    "APINotSupportedError",
    "AuthenticationFailureError",
    "ClientStats",
    "DependentFieldMissingError",
    "DuplicateDataError",
    "InternalError",
    "InvalidDataError",
    "InvalidHostError",
    "InvalidModuleError",
    "InvalidRequestMethodError",
    "InvalidTokenError",
    "InvalidUrlPatternError",
    "LimitExceededError",
    "MandatoryNotFoundError",
    "MergeClient",
    "MergeJob",
    "MergeJobNotFoundError",
    "MergeStatus",
    "MergeTimeoutError",
    "MultipleMergeJobsError",
    "NotAllowedError",
    "OAuthScopeMismatchError",
    "PollPolicy",
    "RateLimitError",
    "RetryPolicy",
    "TransportError",
    "UnexpectedResponseError",
    "ZohoAPIError",
    "ZohoError",
    "__version__",
    "wait_for_merge",
]
