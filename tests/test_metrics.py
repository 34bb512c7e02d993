"""/metrics in Prometheus text format reflects what happened on the server."""

from __future__ import annotations

import re
from typing import Any

from .conftest import MakeClient
from .helpers import ws_messages, ws_until


def sample(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.M)
    assert match, f"{name}{labels} not in metrics"
    return float(match.group(1))


async def test_metrics_count_connections_messages_and_refusals(make_client: MakeClient) -> None:
    client: Any = await make_client(rate_limit="1/min", rate_burst=2)
    async with client.ws_connect("/rooms/m/ws") as ws, client.ws_connect("/rooms/n/ws"):
        await ws_until(ws, "presence")
        sse = await client.get("/rooms/m/events")
        for i in range(3):
            await ws.send_json({"text": f"m{i}"})
        await ws_messages(ws, 2)
        await client.post(
            "/rooms/m/messages", json={"text": "x"}, headers={"Origin": "https://evil.example"}
        )
        resp = await client.get("/metrics")
        assert resp.status == 200 and resp.content_type == "text/plain"
        text = await resp.text()
        sse.close()
    assert sample(text, "realtime_connections", '{transport="ws"}') == 2
    assert sample(text, "realtime_connections", '{transport="sse"}') == 1
    assert sample(text, "realtime_subscribers_direct") == 3  # each has its duplicate
    assert sample(text, "realtime_rooms") == 2
    assert sample(text, "realtime_messages_received_total") == 2
    assert sample(text, "realtime_deliveries_total") >= 4  # 2 messages x 2 subscribers (+presence)
    assert sample(text, "realtime_rate_limited_total", '{transport="ws"}') == 1
    assert sample(text, "realtime_requests_refused_total", '{reason="origin"}') == 1
    assert sample(text, "realtime_broker_up", '{broker="memory"}') == 1
    assert sample(text, "realtime_fanout_seconds_count") >= 2
    assert sample(text, "realtime_slow_consumers_dropped_total") == 0


async def test_rooms_gauge_counts_what_rooms_lists(make_client: MakeClient) -> None:
    client: Any = await make_client()
    for name in ["a", "b", "c"]:
        assert (await client.post(f"/rooms/{name}/messages", json={"text": "x"})).status == 201
    async with client.ws_connect("/rooms/live/ws") as ws:
        await ws_until(ws, "presence")
        text = await (await client.get("/metrics")).text()
        listed = (await (await client.get("/rooms")).json())["rooms"]
        assert sample(text, "realtime_rooms") == len(listed) == 4
        assert sample(text, "realtime_rooms_active") == 1
