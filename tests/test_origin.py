"""Origin rules for WebSocket upgrades and POSTs."""

from __future__ import annotations

from realtime.policy.origin import origin_allowed, parse_allowed


def allowed(origin: str | None, extra: str = "") -> bool:
    return origin_allowed(
        origin, host="chat.example:8080", scheme="http", allowed=parse_allowed(extra)
    )


def test_rules() -> None:
    assert allowed(None)
    assert allowed("http://chat.example:8080")
    assert (
        allowed("http://localhost:5173")
        and allowed("http://127.0.0.1")
        and allowed("http://[::1]:9")
    )
    assert not allowed("https://evil.example")
    assert not allowed("http://chat.example:9999")
    assert not allowed("null")
    assert allowed("https://App.Example", "https://app.example")
    assert allowed("https://anything.example", "*")
