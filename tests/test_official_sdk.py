"""Zoho's official Python SDK (zohocrmsdk7-0) against FakeZohoServer: a check of the wire format.

If the fake's responses drift from what Zoho sends, the official SDK fails to
parse them or returns an `APIException` object, so this test catches it.

How the SDK (zohocrmsdk7-0 6.0.0) is pointed at the fake, learned from its source:

- `DataCenter.Environment(url, accounts_url, file_upload_url)` sets the API domain;
  `DataCenter.get` finds no Zoho data centre for a 127.0.0.1 URL and keeps it.
- `OAuthToken(access_token=..., find_user=False)` sends the token as is; with
  `find_user=True` it would first ask Zoho's users API for the user name.
- `Initializer.initialize` writes tokens to `./sdk_tokens.txt` unless given a
  `store`, so the test passes an in-memory `TokenStore` and checks that the
  working directory stays empty. `Logger(NOTSET, None)` adds no file handler.
- The SDK sends ids as JSON numbers (`{"id": 2378988000000700002}`), which the
  fake accepts as Zoho does, and returns `details.job_id` as an int.
- The SDK is synchronous (`requests`), so it runs in a thread while the fake
  server runs in the test's event loop. `requests` reads proxy variables from
  the environment, so the test clears them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import (  # type: ignore[import-untyped]
    OAuthToken,
)
from zohocrmsdk.src.com.zoho.api.authenticator.store.token_store import (  # type: ignore[import-untyped]
    TokenStore,
)
from zohocrmsdk.src.com.zoho.api.logger import Logger  # type: ignore[import-untyped]
from zohocrmsdk.src.com.zoho.crm.api import ParameterMap  # type: ignore[import-untyped]
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import (  # type: ignore[import-untyped]
    DataCenter,
)
from zohocrmsdk.src.com.zoho.crm.api.find_and_merge import (  # type: ignore[import-untyped]
    ActionWrapper,
    BodyWrapper,
    DataFields,
    Merge,
    MergeData,
    ResponseWrapper,
    SuccessResponse,
)
from zohocrmsdk.src.com.zoho.crm.api.find_and_merge.find_and_merge_operations import (  # type: ignore[import-untyped]
    FindAndMergeOperations,
    GetRecordMergeParam,
)
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer  # type: ignore[import-untyped]
from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig  # type: ignore[import-untyped]

from zoho_merge_async._fake_merge import LARGE_MERGE_RELATED_RECORDS
from zoho_merge_async.testing import FakeZohoServer

TOKEN = "1000.official-sdk-token"
MODULE = "Leads"
MASTER = 2378988000000700001
LARGE_CHILD = 2378988000000700002
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                   "all_proxy")


class MemoryTokenStore(TokenStore):  # type: ignore[misc]
    """Token store that keeps tokens in memory, where the SDK's default writes a file."""

    def __init__(self) -> None:
        self.tokens: list[Any] = []

    def find_token(self, token: Any) -> None:
        return None

    def save_token(self, token: Any) -> None:
        self.tokens.append(token)

    def delete_token(self, id: str) -> None:
        self.tokens = [token for token in self.tokens if token.get_id() != id]

    def get_tokens(self) -> list[Any]:
        return list(self.tokens)

    def delete_tokens(self) -> None:
        self.tokens.clear()

    def find_token_by_id(self, id: str) -> None:
        return None


@pytest.fixture
async def server() -> AsyncIterator[FakeZohoServer]:
    async with FakeZohoServer(access_tokens=(TOKEN,)) as fake:
        fake.merges.add_record(MODULE, str(MASTER))
        fake.merges.add_record(MODULE, str(LARGE_CHILD),
                               related_records=LARGE_MERGE_RELATED_RECORDS + 1)
        yield fake


def schedule_and_read(api_domain: str, resource_path: Path) -> tuple[Any, Any]:
    """Schedule a merge with the official SDK, read the job's status, and return both responses."""
    environment = DataCenter.Environment(api_domain, api_domain, api_domain)
    Initializer.initialize(
        environment=environment,
        token=OAuthToken(access_token=TOKEN, find_user=False),
        store=MemoryTokenStore(),
        sdk_config=SDKConfig(auto_refresh_fields=False, update_api_domain=False),
        resource_path=str(resource_path),
        logger=Logger(Logger.Levels.NOTSET, None),
    )
    operations = FindAndMergeOperations(MODULE, MASTER)

    field = DataFields()
    field.set_api_name("Email")
    child = MergeData()
    child.set_id(LARGE_CHILD)
    child.set_fields([field])
    merge = Merge()
    merge.set_data([child])
    body = BodyWrapper()
    body.set_merge([merge])
    posted = operations.merge_records(body)

    job_id = posted.get_object().get_merge()[0].get_details()["job_id"]
    parameters = ParameterMap()
    parameters.add(GetRecordMergeParam.job_id, job_id)
    status = operations.get_record_merge(parameters)
    return posted, status


async def test_official_sdk_schedules_merge(server: FakeZohoServer, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    working_directory = tmp_path / "cwd"
    working_directory.mkdir()
    monkeypatch.chdir(working_directory)

    posted, status = await asyncio.to_thread(schedule_and_read, server.api_domain, tmp_path)

    assert posted.get_status_code() == 201
    answer = posted.get_object()
    assert isinstance(answer, ActionWrapper)
    item, = answer.get_merge()
    assert isinstance(item, SuccessResponse)
    assert item.get_code().get_value() == "SCHEDULED"
    assert item.get_status().get_value() == "success"
    job_id = str(item.get_details()["job_id"])

    assert status.get_status_code() == 200
    jobs = status.get_object()
    assert isinstance(jobs, ResponseWrapper)
    job, = jobs.get_merge()
    assert str(job.get_job_id()) == job_id
    assert job.get_status() == "SCHEDULED"

    assert list(working_directory.iterdir()) == []
    assert [request.method for request in server.requests] == ["POST", "GET"]
