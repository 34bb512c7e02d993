"""What the server API tests share: a client with a key, and calls that check status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from .conftest import MakeClient

KEY = "test-api-key-0123456789"
OTHER_KEY = "rotated-key-9876543210"
HEADERS = {"X-API-Key": KEY}

Client = TestClient[Any, Any]
MakeApi = Callable[..., Awaitable[Client]]


@pytest.fixture
def make_api(make_client: MakeClient) -> MakeApi:
    """``await make_api(**settings)``: a server with the API enabled (key ``KEY``)."""

    async def factory(**overrides: Any) -> Client:
        overrides.setdefault("api_key", f"{KEY},{OTHER_KEY}")
        return await make_client(**overrides)

    return factory


@pytest.fixture
async def api(make_api: MakeApi) -> Client:
    return await make_api()


async def call(
    client: Client, method: str, path: str, status: int = 200, **kwargs: Any
) -> dict[str, Any]:
    """An API request with the key; asserts the status and returns the JSON body."""
    kwargs.setdefault("headers", HEADERS)
    resp = await client.request(method, path, **kwargs)
    assert resp.status == status, f"{method} {path}: {resp.status} {await resp.text()}"
    data: dict[str, Any] = await resp.json()
    return data


async def publish(
    client: Client, status: int = 200, headers: dict[str, str] = HEADERS, **body: Any
) -> dict[str, Any]:
    return await call(client, "POST", "/api/publish", status, json=body, headers=headers)
