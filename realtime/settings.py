"""One typed settings object, built from CLI flags and ``REALTIME_*`` variables.

Precedence: a command-line flag, then the environment variable, then the
default. No other module reads the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from .backends import is_redis_url
from .core.protocol import max_json_bytes


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    backlog: int = 1024
    write_delay: int = 0
    request_timeout: float = 5.0
    history_size: int = 1000
    replay: int = 50
    max_message_bytes: int = 4096
    max_buffer_bytes: int = 1 << 20
    max_rooms: int = 10_000
    heartbeat: float = 15.0
    gc_growth: float = 2.0
    presence_limit: int = 100
    broker: str = "memory"
    redis_wait: int = 0
    redis_wait_timeout: float = 1.0
    store: str = "sqlite:data/realtime.db"
    workers: int = 1
    allow_origin: str = ""
    rate_limit: str = "20/s"
    rate_burst: int = 40
    max_connections_per_ip: int = 256
    secret: str = ""
    private_rooms: str = ""
    api_key: str = field(default="", repr=False)
    api_rate_limit: str = "1000/s"
    idempotency_window: float = 300.0
    log_level: str = "INFO"
    log_format: str = "text"

    @property
    def max_frame_bytes(self) -> int:
        """Largest WebSocket frame or POST body: room for a text of
        ``max_message_bytes`` however its JSON is escaped."""
        return max_json_bytes(self.max_message_bytes)


_HELP: dict[str, str] = {
    "host": "interface to listen on",
    "port": "TCP port to listen on",
    "write_delay": "milliseconds to gather a room's events before writing them to its "
    "subscribers: fewer writes than messages, at that much added latency (0 writes "
    "in the same loop pass)",
    "backlog": "connections the kernel queues while the server is busy accepting "
    "(capped by net.core.somaxconn)",
    "request_timeout": "seconds a client has to send a request's headers (and a POST its "
    "body); also how long an idle keep-alive connection is kept",
    "history_size": "messages kept per room for history and resume",
    "replay": "messages sent to a fresh join before live ones",
    "max_message_bytes": "largest message text in bytes (UTF-8)",
    "max_rooms": "rooms whose state this process keeps in memory: past it the memory store "
    "forgets the least recently used room's history, the SQLite store reads an idle "
    "room's last id back from disk",
    "max_buffer_bytes": "unsent bytes a subscriber may fall behind before it is dropped",
    "heartbeat": "seconds between WebSocket pings and SSE comment pings",
    "gc_growth": "a full garbage-collector pass when the heap has grown this many times "
    "(and by at least 2**20 blocks or 64 MiB) since the last one; between them a pass "
    "covers only what was allocated since the previous pass, so it does not stall every "
    "connection (0: Python's own collection)",
    "presence_limit": "members up to which joins and leaves are broadcast with the member list",
    "broker": "where messages meet: 'memory' (one process), redis://host:port/db, "
    "redis-sentinel://host:port,…/MASTER[?db=N] or redis-cluster://host:port,…",
    "redis_wait": "Redis replicas that must have a message before it is acknowledged (WAIT)",
    "redis_wait_timeout": "seconds to wait for --redis-wait replicas before answering 503",
    "store": "history of the memory broker: sqlite:PATH (kept across restarts; "
    "relative paths are under the working directory) or 'memory' (throwaway)",
    "workers": "server processes sharing the port (needs a Redis broker above 1)",
    "allow_origin": "extra origins allowed to open WebSockets and POST, comma-separated",
    "rate_limit": "messages a connection or client address may send, as N/s or N/min",
    "rate_burst": "messages that may be sent at once before --rate-limit applies",
    "max_connections_per_ip": "concurrent WebSocket and SSE connections per client address",
    "secret": "HS256 key for signed tokens; enables --private-rooms",
    "private_rooms": "room name patterns (fnmatch, comma-separated) that need a token",
    "api_key": "keys of the server API under /api/, comma-separated (rotation); "
    "without one every /api/ route answers 404",
    "api_rate_limit": "requests per second or minute one API key may make, as N/s or N/min",
    "idempotency_window": "seconds an idempotency_key of POST /api/publish is remembered",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "log_format": "'text' (key=value lines) or 'json'",
}


_METAVARS: dict[type, str] = {int: "N", float: "SECONDS"}
_METAVAR_NAMES: dict[str, str] = {"write_delay": "MS", "gc_growth": "FACTOR"}

USAGE = """python -m realtime [options]             serve (the options below)
       python -m realtime token --user NAME ...  print a signed token for private rooms
       python -m realtime listen ROOM ...        print a room's events (Ctrl-C to stop)
       python -m realtime send ROOM TEXT ...     send one message
       python -m realtime publish ROOM TEXT ...  publish through the server API (--api-key)"""


def env_name(field: str) -> str:
    return "REALTIME_" + field.upper()


def build_parser(prog: str = "python -m realtime") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        usage=USAGE,
        description="Chat rooms over WebSocket, Server-Sent Events and long-polling.",
        epilog="Every option can also be set by the environment variable shown "
        "in brackets; a flag wins over the variable. Subcommands (each with --help): "
        "token (mint a token for private rooms), listen ROOM (print a room's events), "
        "send ROOM TEXT (send a message), publish ROOM TEXT (through the server API).",
    )
    defaults = Settings()
    for f in fields(Settings):
        default = getattr(defaults, f.name)
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=type(default),
            default=None,
            metavar=_METAVAR_NAMES.get(f.name)
            or _METAVARS.get(type(default), f.name.split("_")[-1].upper()),
            help=f"{_HELP[f.name]} (default {default}) [{env_name(f.name)}]",
        )
    return parser


def _convert(name: str, raw: str, kind: type) -> Any:
    try:
        return kind(raw)
    except ValueError:
        raise SystemExit(f"{env_name(name)}={raw!r}: expected {kind.__name__}") from None


def load(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    args = build_parser().parse_args(argv)
    return from_sources(vars(args), env)


def from_sources(flags: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    defaults = Settings()
    values: dict[str, Any] = {}
    for f in fields(Settings):
        kind = type(getattr(defaults, f.name))
        if flags.get(f.name) is not None:
            values[f.name] = flags[f.name]
        elif env_name(f.name) in env:
            values[f.name] = _convert(f.name, env[env_name(f.name)], kind)
    settings = Settings(**values)
    check(settings)
    return settings


def _redis_url_problems(url: str) -> list[str]:
    try:
        from .backends.redis.url import parse_redis_url
    except ImportError:  # without the redis extra: said when the backend starts
        return []
    try:
        parse_redis_url(url)
    except ValueError as exc:
        return [f"--broker: {exc}"]
    return []


def check(s: Settings) -> None:
    problems = []
    if not 0 <= s.port <= 65535:
        problems.append("--port must be 0-65535")
    if s.history_size < 1:
        problems.append("--history-size must be at least 1")
    if not 0 <= s.replay <= s.history_size:
        problems.append("--replay must be between 0 and --history-size")
    if s.max_message_bytes < 1:
        problems.append("--max-message-bytes must be positive")
    if not 0 <= s.write_delay <= 1000:
        problems.append("--write-delay must be 0-1000 milliseconds")
    if s.max_rooms < 1:
        problems.append("--max-rooms must be at least 1")
    if s.backlog < 1:
        problems.append("--backlog must be at least 1")
    if s.request_timeout <= 0:
        problems.append("--request-timeout must be positive")
    if s.heartbeat <= 0:
        problems.append("--heartbeat must be positive")
    if s.presence_limit < 0:
        problems.append("--presence-limit must be 0 or more")
    if s.gc_growth != 0 and s.gc_growth <= 1:
        problems.append("--gc-growth must be 0 (off) or above 1")
    if s.redis_wait < 0:
        problems.append("--redis-wait must be 0 or more")
    if s.redis_wait_timeout <= 0:
        problems.append("--redis-wait-timeout must be positive")
    if is_redis_url(s.broker):
        problems += _redis_url_problems(s.broker)
    elif s.redis_wait:
        problems.append("--redis-wait needs a Redis --broker")
    if s.idempotency_window <= 0:
        problems.append("--idempotency-window must be positive")
    if s.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        problems.append("--log-level must be DEBUG, INFO, WARNING or ERROR")
    if s.log_format not in ("text", "json"):
        problems.append("--log-format must be text or json")
    if problems:
        raise SystemExit("realtime: " + "; ".join(problems))
