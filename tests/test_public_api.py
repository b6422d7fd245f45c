"""The public surface: exported names, frozen models, the error hierarchy and pickling."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import pickle

import pytest

import zoho_merge_async
from zoho_merge_async import (
    MergeJob,
    MergeJobNotFoundError,
    MergeStatus,
    MergeTimeoutError,
    MultipleMergeJobsError,
    RateLimitError,
    TransportError,
    UnexpectedResponseError,
    ZohoAPIError,
    ZohoError,
)
from zoho_merge_async._errors import ERROR_CLASSES, api_error

EXPECTED_ALL = [
    "APINotSupportedError",
    "AuthenticationFailureError",
    "ChildRecord",
    "ClientStats",
    "ConcurrencyLimiter",
    "DEFAULT_API_DOMAIN",
    "DEFAULT_MAX_CONCURRENCY",
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
    "WAIT_STATE_VERSION",
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

ERROR_NAMES = [name for name in EXPECTED_ALL if name.endswith("Error")]


def test_all_pinned() -> None:
    assert sorted(zoho_merge_async.__all__) == EXPECTED_ALL


def test_all_sorted() -> None:
    # Ruff RUF022 (isort-style) order: SCREAMING_CASE names, then CamelCase, then the rest.
    assert zoho_merge_async.__all__ == sorted(
        zoho_merge_async.__all__,
        key=lambda name: (not name.isupper(), not name[:1].isupper(), name),
    )


def test_all_has_no_duplicates() -> None:
    assert len(set(zoho_merge_async.__all__)) == len(zoho_merge_async.__all__)


@pytest.mark.parametrize("name", EXPECTED_ALL)
def test_name_importable(name: str) -> None:
    assert getattr(zoho_merge_async, name) is not None


def test_version_matches_metadata() -> None:
    assert zoho_merge_async.__version__ == importlib.metadata.version("zoho-merge-async")


def test_merge_job_frozen() -> None:
    job = MergeJob("2423488000000513988", MergeStatus.RUNNING)

    with pytest.raises(dataclasses.FrozenInstanceError):
        job.status = MergeStatus.COMPLETED  # type: ignore[misc]


def test_merge_job_equality() -> None:
    first = MergeJob("2423488000000513988", MergeStatus.RUNNING)
    second = MergeJob("2423488000000513988", MergeStatus.RUNNING)

    assert first == second
    assert hash(first) == hash(second)


# Error hierarchy


@pytest.mark.parametrize("name", ERROR_NAMES)
def test_error_under_zoho_error(name: str) -> None:
    assert issubclass(getattr(zoho_merge_async, name), ZohoError)


@pytest.mark.parametrize("error_class", sorted(set(ERROR_CLASSES.values()), key=str))
def test_code_class_exported(error_class: type[ZohoAPIError]) -> None:
    assert getattr(zoho_merge_async, error_class.__name__) is error_class


@pytest.mark.parametrize("error_class", sorted(set(ERROR_CLASSES.values()), key=str))
def test_code_class_under_api_error(error_class: type[ZohoAPIError]) -> None:
    assert issubclass(error_class, ZohoAPIError)


def test_timeout_error_is_timeout() -> None:
    assert issubclass(MergeTimeoutError, TimeoutError)


def test_misuse_errors_outside_root() -> None:
    assert not issubclass(ZohoError, ValueError | RuntimeError)


# Pickling


def round_trip(error: ZohoError) -> ZohoError:
    restored = pickle.loads(pickle.dumps(error))
    assert isinstance(restored, ZohoError)
    return restored


@pytest.mark.parametrize("code", sorted(ERROR_CLASSES))
def test_api_error_pickles(code: str) -> None:
    error = api_error(code, 400, "zoho says no", {"api_name": "id"})

    restored = round_trip(error)

    assert type(restored) is type(error)
    assert isinstance(restored, ZohoAPIError)
    assert restored.code == code
    assert restored.http_status == 400
    assert restored.message == "zoho says no"
    assert restored.details == {"api_name": "id"}
    assert str(restored) == str(error)


def test_unknown_code_pickles() -> None:
    restored = round_trip(ZohoAPIError("BRAND_NEW_CODE", 418))

    assert type(restored) is ZohoAPIError
    assert isinstance(restored, ZohoAPIError)
    assert restored.code == "BRAND_NEW_CODE"


def test_rate_limit_pickles() -> None:
    restored = round_trip(RateLimitError("TOO_MANY_REQUESTS", 429, retry_after=12.5))

    assert isinstance(restored, RateLimitError)
    assert restored.retry_after == 12.5


def test_job_not_found_pickles() -> None:
    error = MergeJobNotFoundError("Leads", "2378988000000509963", "2423488000000513988")

    restored = round_trip(error)

    assert isinstance(restored, MergeJobNotFoundError)
    assert (restored.module, restored.master_record_id, restored.job_id) == (
        "Leads", "2378988000000509963", "2423488000000513988")
    assert str(restored) == str(error)


def test_multiple_jobs_pickles() -> None:
    error = MultipleMergeJobsError("Leads", "2378988000000509963", ["1", "2"])

    restored = round_trip(error)

    assert isinstance(restored, MultipleMergeJobsError)
    assert restored.job_ids == ["1", "2"]
    assert str(restored) == str(error)


def test_merge_timeout_pickles() -> None:
    error = MergeTimeoutError("2423488000000513988", MergeStatus.RUNNING, 600.25, 41)

    restored = round_trip(error)

    assert isinstance(restored, MergeTimeoutError)
    assert restored.job_id == "2423488000000513988"
    assert restored.last_status is MergeStatus.RUNNING
    assert restored.elapsed == 600.25
    assert restored.polls == 41
    assert str(restored) == str(error)


def test_unexpected_response_pickles() -> None:
    error = UnexpectedResponseError("the body is not JSON", 502, "<html>")

    restored = round_trip(error)

    assert isinstance(restored, UnexpectedResponseError)
    assert (restored.reason, restored.http_status, restored.body_excerpt) == (
        "the body is not JSON", 502, "<html>")


def test_transport_error_pickles() -> None:
    error = TransportError("GET www.zohoapis.com/crm/v7/Leads/1/actions/merge failed")

    restored = round_trip(error)

    assert type(restored) is TransportError
    assert str(restored) == str(error)
