"""The server API's door: keys (404 without one configured, 401 wrong or missing),
rotation, its own rate limit, no Origin or per-address rules, keys never logged."""

from __future__ import annotations

import logging

import pytest

from realtime.transports.openapi import document

from .api_helpers import HEADERS, KEY, OTHER_KEY, Client, MakeApi, api, call, make_api, publish
from .conftest import MakeClient
from .helpers import post

__all__ = ["api", "make_api"]


def api_routes() -> list[tuple[str, str]]:
    """Every documented ``/api/`` operation, with its example path."""
    out = []
    for path, ops in document()["paths"].items():
        if path.startswith("/api/"):
            out.extend((method.upper(), path.replace("{room}", "lobby")) for method in ops)
    return out


async def test_without_a_configured_key_every_api_route_is_404(make_client: MakeClient) -> None:
    client = await make_client()
    for method, path in api_routes():
        resp = await client.request(method, path, headers=HEADERS, json={})
        assert resp.status == 404, (method, path)
        assert (await resp.json())["code"] == "not_found"
    await post(client, "lobby", "the public routes still work")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": "wrong"},
        {"X-API-Key": KEY + "x"},
        {"X-API-Key": KEY[:-1]},
        {"Authorization": f"Bearer {KEY}"},
        {"Authorization": "apikey"},
    ],
)
async def test_a_wrong_or_missing_key_is_401_on_every_route(
    api: Client, headers: dict[str, str]
) -> None:
    for method, path in api_routes():
        resp = await api.request(method, path, headers=headers, json={"room": "r", "text": "x"})
        assert resp.status == 401, (method, path)
        assert (await resp.json())["code"] == "bad_api_key"
        assert resp.headers["WWW-Authenticate"] == "apikey"
    history = await (await api.get("/rooms/r/messages")).json()
    assert history["messages"] == []  # nothing was published


async def test_both_header_forms_and_every_configured_key_are_accepted(api: Client) -> None:
    for headers in (
        {"X-API-Key": KEY},
        {"X-API-Key": OTHER_KEY},
        {"Authorization": f"apikey {KEY}"},
        {"Authorization": f"ApiKey {OTHER_KEY}"},
    ):
        await call(api, "GET", "/api/rooms", headers=headers)


async def test_origin_rules_and_per_address_limits_do_not_apply(make_api: MakeApi) -> None:
    client = await make_api(rate_limit="1/min", rate_burst=1)
    headers = {**HEADERS, "Origin": "https://elsewhere.example"}
    for i in range(30):
        await publish(client, room="r", text=f"n{i}", headers=headers)
    resp = await client.post("/rooms/r/messages", json={"text": "browser"})
    assert resp.status == 201
    resp = await client.post("/rooms/r/messages", json={"text": "browser again"})
    assert resp.status == 429  # the public POST keeps its own limit


async def test_the_api_rate_limit_answers_429_with_retry_after(make_api: MakeApi) -> None:
    client = await make_api(api_rate_limit="3/min")
    for _ in range(3):
        await call(client, "GET", "/api/rooms")
    resp = await client.get("/api/rooms", headers=HEADERS)
    assert resp.status == 429
    assert (await resp.json())["code"] == "rate_limited"
    assert int(resp.headers["Retry-After"]) >= 1
    # Each key has its own budget.
    await call(client, "GET", "/api/rooms", headers={"X-API-Key": OTHER_KEY})


async def test_keys_are_never_logged(make_api: MakeApi, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = await make_api(api_rate_limit="2/min")
    for key in (KEY, "wrong-key-abcdef", KEY, KEY):
        await client.post(
            "/api/publish", json={"room": "r", "text": "hello"}, headers={"X-API-Key": key}
        )
    logged = caplog.text + repr([r.__dict__ for r in caplog.records])
    assert KEY not in logged and "wrong-key-abcdef" not in logged


async def test_requests_are_counted_by_route_and_status(api: Client) -> None:
    await publish(api, room="r", text="one")
    await api.post("/api/publish", json={"room": "r", "text": "x"})  # 401
    await call(api, "GET", "/api/rooms/r/history")
    await call(api, "GET", "/api/rooms/bad%20room/history", 400)
    metrics = await (await api.get("/metrics")).text()
    assert 'realtime_api_requests_total{route="/api/publish",status="200"} 1.0' in metrics
    assert 'realtime_api_requests_total{route="/api/publish",status="401"} 1.0' in metrics
    assert (
        'realtime_api_requests_total{route="/api/rooms/{room}/history",status="200"} 1.0' in metrics
    )
    assert (
        'realtime_api_requests_total{route="/api/rooms/{room}/history",status="400"} 1.0' in metrics
    )
