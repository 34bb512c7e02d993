"""Signed tokens: minting, checking, and the ``token`` subcommand."""

from __future__ import annotations

import subprocess
import sys

import pytest

from realtime.policy.tokens import Gate, TokenError, mint, parse_ttl, token_from, verify

SECRET = "k" * 32


def test_round_trip_and_room_patterns() -> None:
    grant = verify(SECRET, mint(SECRET, "ana", ["team-*", "ops"], 60))
    assert grant.user == "ana"
    assert grant.allows("team-x") and grant.allows("ops") and not grant.allows("opsx")


def test_gate_rules() -> None:
    gate = Gate(SECRET, "team-*")
    assert gate.check("lobby", None) is None
    with pytest.raises(TokenError) as err:
        gate.check("team-a", None)
    assert err.value.status == 401
    with pytest.raises(TokenError) as err:
        gate.check("team-a", mint(SECRET, "ana", ["ops"], 60))
    assert err.value.status == 403
    with pytest.raises(TokenError) as err:
        gate.check("team-a", mint(SECRET, "ana", ["team-*"], -5))
    assert err.value.code == "token_expired"


def test_token_sources_in_order() -> None:
    assert token_from({"token": "q"}, {"Authorization": "Bearer h"}, {}) == "q"
    assert token_from({}, {"Authorization": "Bearer h"}, {"realtime_token": "c"}) == "h"
    assert token_from({}, {"Sec-WebSocket-Protocol": "realtime, a.b.c"}, {}) == "a.b.c"
    assert token_from({}, {}, {"realtime_token": "c"}) == "c"
    assert token_from({}, {}, {}) is None


def test_ttl_units() -> None:
    assert parse_ttl("90") == 90 and parse_ttl("15m") == 900 and parse_ttl("1h") == 3600


def token_cli(secret: str, *args: str) -> str:
    """``python -m realtime token ARGS`` with ``REALTIME_SECRET``; its token."""
    out = subprocess.run(
        [sys.executable, "-m", "realtime", "token", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={"REALTIME_SECRET": secret, "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_cli_mints_a_token_the_server_accepts() -> None:
    token = token_cli(SECRET, "--user", "ana", "--rooms", "team-*", "--ttl", "1h")
    grant = verify(SECRET, token)
    assert grant.user == "ana" and grant.allows("team-1")
