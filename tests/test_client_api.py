"""``Client.publish`` through the server API (``POST /api/publish``)."""

from __future__ import annotations

import pytest

from realtime.client import Client, ClientError, Message, Refused

from .conftest import MakeClient
from .test_client_subscription import FAST, base_url, messages, ready

KEY = "test-api-key-1"


async def test_publish_to_one_room_returns_its_id(make_client: MakeClient) -> None:
    server = await make_client(api_key=KEY)
    async with (
        Client(base_url(server), api_key=KEY, options=FAST) as client,
        client.subscribe("news", transport="sse") as sub,
    ):
        await ready(sub)
        msg_id = await client.publish("news", "deployed", user="ci")
        (got,) = await messages(sub, 1)
        assert isinstance(got, Message)
        assert (got.id, got.user, got.text) == (msg_id, "ci", "deployed")
        default = await client.publish("news", "by the server")
        (got,) = await messages(sub, 1)
        assert (got.id, got.user) == (default, "server")


async def test_publish_to_several_rooms_reports_each(make_client: MakeClient) -> None:
    server = await make_client(api_key=KEY)
    async with Client(base_url(server), api_key=KEY, options=FAST) as client:
        results = await client.publish(["a", "b", "bad room!"], "hello")
        assert [(r.room, r.ok) for r in results] == [("a", True), ("b", True), ("bad room!", False)]
        assert results[2].code == "bad_room" and results[2].id is None
        assert [m.text for m in (await client.history("a")).messages] == ["hello"]
        with pytest.raises(Refused) as refused:
            await client.publish("bad room!", "x")
        assert refused.value.code == "bad_room"


async def test_the_same_idempotency_key_publishes_once(make_client: MakeClient) -> None:
    server = await make_client(api_key=KEY)
    async with Client(base_url(server), api_key=KEY, options=FAST) as client:
        first = await client.publish("r", "once", idempotency_key="job-42")
        again = await client.publish("r", "once", idempotency_key="job-42")
        assert first == again
        assert [m.id for m in (await client.history("r")).messages] == [first]


async def test_publish_needs_the_right_key(make_client: MakeClient) -> None:
    server = await make_client(api_key=KEY)
    async with Client(base_url(server), options=FAST) as client:
        with pytest.raises(ClientError, match="api_key"):
            await client.publish("r", "x")
    async with Client(base_url(server), api_key="wrong", options=FAST) as client:
        with pytest.raises(Refused) as refused:
            await client.publish("r", "x")
        assert refused.value.status == 401
