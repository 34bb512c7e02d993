"""Settings come from flags, then REALTIME_* variables, then defaults."""

from __future__ import annotations

import pytest

from realtime.settings import Settings, build_parser, from_sources, load


def test_defaults() -> None:
    s = load([], env={})
    assert (s.host, s.port, s.history_size, s.replay) == ("127.0.0.1", 8080, 1000, 50)
    assert s.max_message_bytes == 4096


def test_env_then_flag_precedence() -> None:
    env = {"REALTIME_PORT": "9001", "REALTIME_REPLAY": "7", "REALTIME_HEARTBEAT": "2.5"}
    s = load([], env=env)
    assert (s.port, s.replay, s.heartbeat) == (9001, 7, 2.5)
    s = load(["--port", "9002"], env=env)
    assert (s.port, s.replay) == (9002, 7)


def test_bad_values_are_refused_clearly() -> None:
    with pytest.raises(SystemExit, match="REALTIME_PORT"):
        load([], env={"REALTIME_PORT": "eighty"})
    with pytest.raises(SystemExit, match="--replay"):
        from_sources({"replay": 5000}, {})
    with pytest.raises(SystemExit, match="--log-level"):
        from_sources({"log_level": "LOUD"}, {})


def test_help_names_every_option_and_its_variable() -> None:
    text = build_parser().format_help()
    for option in ["--host", "--port", "--history-size", "--replay", "--log-level"]:
        assert option in text
    for var in ["REALTIME_HOST", "REALTIME_PORT", "REALTIME_HISTORY_SIZE", "REALTIME_REPLAY"]:
        assert var in text
    assert Settings().max_frame_bytes > Settings().max_message_bytes


def test_redis_options_are_checked_before_anything_starts() -> None:
    with pytest.raises(SystemExit, match="--redis-wait needs a Redis --broker"):
        from_sources({"redis_wait": 1}, {})
    with pytest.raises(SystemExit, match="--redis-wait must be 0 or more"):
        from_sources({"redis_wait": -1, "broker": "redis://h:6379/0"}, {})
    with pytest.raises(SystemExit, match="--redis-wait-timeout must be positive"):
        from_sources({"redis_wait_timeout": 0.0}, {})
    with pytest.raises(SystemExit, match="name the master"):
        from_sources({"broker": "redis-sentinel://h1:26379,h2:26379"}, {})
    s = load(["--broker", "redis-cluster://n1:7000,n2:7001", "--redis-wait", "1"], env={})
    assert (s.broker, s.redis_wait, s.redis_wait_timeout) == (
        "redis-cluster://n1:7000,n2:7001",
        1,
        1.0,
    )
