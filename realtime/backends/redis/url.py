"""Which Redis a broker URL names: one server, a Sentinel-managed master, or a Cluster.

Three deployments, one URL each:

- ``redis://[user:pass@]host:port/db`` (also ``rediss://``, ``unix://``): one
  server.
- ``redis-sentinel://[user:pass@]h1:p1,h2:p2,…/MASTER[?db=N]``: the master
  that the sentinels name ``MASTER``; every new connection asks them, so a
  failover is followed. Credentials are the master's (sentinels without a
  password). The port defaults to 26379.
- ``redis-cluster://[user:pass@]h1:p1[,h2:p2…]``: a Redis Cluster found from
  any of these seed nodes; the client follows slot moves and failovers. The
  port defaults to 6379; cluster mode has only database 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

Kind = Literal["server", "sentinel", "cluster"]

SERVER_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEME = "redis-sentinel"
CLUSTER_SCHEME = "redis-cluster"
SCHEMES = (*SERVER_SCHEMES, SENTINEL_SCHEME, CLUSTER_SCHEME)
SENTINEL_PORT = 26379
REDIS_PORT = 6379


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A parsed Redis URL: what to connect to, not yet connected."""

    kind: Kind
    url: str
    hosts: tuple[tuple[str, int], ...] = ()
    service: str = ""  # the Sentinel master name
    db: int = 0
    username: str | None = None
    password: str | None = None

    @property
    def safe_url(self) -> str:
        """The URL without its password, for log lines and error messages."""
        return safe_url(self.url)


def is_redis_url(url: str) -> bool:
    return url.split(":", 1)[0].lower() in SCHEMES


def safe_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    creds, at, hosts = netloc.rpartition("@")
    if not at or ":" not in creds:
        return url
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hosts}{slash}{tail}"


def _host_port(item: str, default_port: int, url: str) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):  # [::1]:6379
        host, _, rest = item[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = item.rpartition(":") if ":" in item else (item, "", "")
    if not host:
        raise ValueError(f"{safe_url(url)}: a host is missing in {item!r}")
    if not port_text:
        return host, default_port
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{safe_url(url)}: bad port in {item!r}")
    return host, int(port_text)


def parse_redis_url(url: str) -> RedisTarget:
    """Parse a broker URL; raise ``ValueError`` with a readable reason."""
    scheme = url.split(":", 1)[0].lower()
    if scheme in SERVER_SCHEMES:
        return RedisTarget("server", url)
    if scheme not in (SENTINEL_SCHEME, CLUSTER_SCHEME):
        raise ValueError(f"not a Redis URL: {safe_url(url)!r} (schemes: {', '.join(SCHEMES)})")
    parts = urlsplit(url)
    creds, at, netloc = parts.netloc.rpartition("@")
    username = password = None
    if at:
        user, _, pw = creds.partition(":")
        username = unquote(user) or None
        password = unquote(pw) or None
    default = SENTINEL_PORT if scheme == SENTINEL_SCHEME else REDIS_PORT
    hosts = tuple(_host_port(h, default, url) for h in netloc.split(",") if h.strip())
    if not hosts:
        raise ValueError(f"{safe_url(url)}: no host given")
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"db"})
    if unknown:
        raise ValueError(f"{safe_url(url)}: unknown option {unknown[0]!r} (known: db)")
    db_text = query.get("db", ["0"])[-1]
    if not db_text.isascii() or not db_text.isdigit():
        raise ValueError(f"{safe_url(url)}: db must be a number, not {db_text!r}")
    db = int(db_text)
    path = unquote(parts.path.strip("/"))
    if scheme == SENTINEL_SCHEME:
        if not path or "/" in path:
            raise ValueError(
                f"{safe_url(url)}: name the master, as in redis-sentinel://host:26379/mymaster"
            )
        return RedisTarget("sentinel", url, hosts, path, db, username, password)
    if path:
        raise ValueError(f"{safe_url(url)}: a cluster URL has no path (cluster mode has db 0 only)")
    if db:
        raise ValueError(f"{safe_url(url)}: cluster mode has db 0 only")
    return RedisTarget("cluster", url, hosts, "", 0, username, password)
