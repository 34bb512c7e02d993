"""Which browser origins may open a WebSocket or POST (CSRF and cross-site
WebSocket hijacking defence). Requests without ``Origin`` are non-browser
clients and pass."""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


def parse_allowed(value: str) -> frozenset[str]:
    """``--allow-origin`` as a set of normalised origins (``*`` allows all)."""
    return frozenset(normalise(part.strip()) for part in value.split(",") if part.strip())


def normalise(origin: str) -> str:
    if origin == "*":
        return "*"
    parts = urlsplit(origin.lower())
    return f"{parts.scheme}://{parts.netloc}"


def origin_allowed(
    origin: str | None, *, host: str | None, scheme: str, allowed: frozenset[str]
) -> bool:
    """True for: no Origin, the server's own origin, loopback, and ``allowed``."""
    if origin is None:
        return True
    if "*" in allowed:
        return True
    parts = urlsplit(origin.lower())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null" (sandboxed frames, file://) and the like
    if parts.hostname in LOOPBACK_HOSTS or f"[{parts.hostname}]" in LOOPBACK_HOSTS:
        return True
    own = {f"http://{host.lower()}", f"https://{host.lower()}"} if host else set()
    candidate = f"{parts.scheme}://{parts.netloc}"
    return candidate in own or candidate in allowed
