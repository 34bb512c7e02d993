"""Fixtures: a real aiohttp server on 127.0.0.1 for each test, built by create_app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from realtime import Settings, create_app

# The Chromium fixtures (browser, pages) of the web tests.
pytest_plugins = ["tests.browser"]

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def make_client(aiohttp_client: Any) -> MakeClient:
    """``await make_client(replay=5, …)``: a client of a fresh server with those settings."""

    async def factory(**overrides: Any) -> TestClient[Any, Any]:
        overrides.setdefault("store", "memory")
        # Tests publish in bursts; test_guard.py checks the limits themselves.
        overrides.setdefault("rate_limit", "100000/s")
        overrides.setdefault("rate_burst", 100000)
        return await aiohttp_client(create_app(Settings(**overrides)))  # type: ignore[no-any-return]

    return factory


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient[Any, Any]:
    return await make_client()
