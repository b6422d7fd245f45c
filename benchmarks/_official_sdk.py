"""Zoho's official Python SDK (`zohocrmsdk7-0`, version 6.0.0), set up for a local server.

Importing this module raises ImportError when the SDK is missing; install it
with ``pip install -e ".[bench]"``. The set-up follows the SDK's own sources
(`Initializer.initialize`, `OAuthToken.get_token`, `FileStore`):

- `DataCenter.Environment(api_domain, ...)` points every call at the local server.
- `OAuthToken(access_token=..., find_user=False)` skips the SDK's call to
  Zoho's user endpoint, which a fake server does not have.
- `MemoryTokenStore` replaces the default `FileStore`, which would write the
  token in plain text to ./sdk_tokens.txt.
- A `Logger` at NOTSET without a file path adds no log file handler.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import (  # type: ignore[import-untyped]
    OAuthToken,
)
from zohocrmsdk.src.com.zoho.api.authenticator.store.token_store import (  # type: ignore[import-untyped]
    TokenStore,
)
from zohocrmsdk.src.com.zoho.api.logger import Logger  # type: ignore[import-untyped]
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import (  # type: ignore[import-untyped]
    DataCenter,
)
from zohocrmsdk.src.com.zoho.crm.api.find_and_merge import (  # type: ignore[import-untyped]
    FindAndMergeOperations,
    GetRecordMergeParam,
    ResponseWrapper,
)
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer  # type: ignore[import-untyped]
from zohocrmsdk.src.com.zoho.crm.api.parameter_map import (  # type: ignore[import-untyped]
    ParameterMap,
)
from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig  # type: ignore[import-untyped]

# The SDK needs an accounts URL and a file upload URL. It sends nothing to them, because
# the access token is given and find_user is False. Nothing listens on port 9 here either.
_UNUSED_URL = "http://127.0.0.1:9"


class MemoryTokenStore(TokenStore):  # type: ignore[misc]
    """Token store that keeps tokens in a list, for `Initializer.initialize(store=...)`.

    Lookups match the way the SDK's `FileStore` does for a token given by
    access token alone: by access token, or by the id the store assigned.
    """

    def __init__(self) -> None:
        self._tokens: list[Any] = []

    def find_token(self, token: Any) -> Any:
        for stored in self._tokens:
            if stored.get_access_token() == token.get_access_token():
                return stored
        return None

    def save_token(self, token: Any) -> None:
        if token in self._tokens:
            return
        if token.get_id() is None:
            token.set_id(str(len(self._tokens) + 1))
        self._tokens.append(token)

    def delete_token(self, id: str) -> None:
        self._tokens = [token for token in self._tokens if token.get_id() != id]

    def get_tokens(self) -> list[Any]:
        return list(self._tokens)

    def delete_tokens(self) -> None:
        self._tokens.clear()

    def find_token_by_id(self, id: str) -> Any:
        for stored in self._tokens:
            if stored.get_id() == id:
                return stored
        return None


def initialise(api_domain: str, access_token: str, resource_path: Path) -> None:
    """Initialise the SDK's process-wide state for `api_domain`, which must be on 127.0.0.1.

    Every thread shares this set-up: `Initializer.get_initializer()` falls back
    to the process-wide initializer when a thread has not called `switch_user`.
    """
    if not api_domain.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise ValueError(f"invalid api_domain {api_domain!r}: the benchmark runs the official "
                         "SDK only against a local server such as http://127.0.0.1:PORT")
    Initializer.initialize(
        environment=DataCenter.Environment(api_domain, _UNUSED_URL, _UNUSED_URL),
        token=OAuthToken(access_token=access_token, find_user=False),
        store=MemoryTokenStore(),
        sdk_config=SDKConfig(auto_refresh_fields=False, pick_list_validation=False),
        resource_path=str(resource_path),
        logger=Logger.get_instance(Logger.Levels.NOTSET),
    )


def fetch_merge_status(module: str, master_record_id: str, job_id: str) -> str | None:
    """Fetch one merge job's status with the SDK, or return None when it reports no job.

    The SDK returns errors as objects instead of raising, so anything but a
    `ResponseWrapper` with one merge item gives None.
    """
    parameters = ParameterMap()
    parameters.add(GetRecordMergeParam.job_id, int(job_id))
    response = FindAndMergeOperations(module, int(master_record_id)).get_record_merge(parameters)
    if response is None or response.get_status_code() != 200:
        return None
    wrapper = response.get_object()
    if not isinstance(wrapper, ResponseWrapper) or len(wrapper.get_merge() or []) != 1:
        return None
    status = wrapper.get_merge()[0].get_status()
    return status if isinstance(status, str) else None
