"""Who may call the server API under ``/api/``: API keys and the API's own limit.

The API is for a team's backend, not for browsers: no Origin rule and no
per-address limit applies, only a valid key (``X-API-Key: KEY`` or
``Authorization: apikey KEY``) and ``--api-rate-limit`` per key. Keys are
compared in constant time and never logged. Without a configured key every
``/api/`` route answers 404, as if the API did not exist.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import re
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from ..policy.ratelimit import TokenBucket, parse_rate
from .errors import json_error
from .state import METRICS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parse_keys(value: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in value.split(",") if k.strip())


def key_from(headers: Mapping[str, str]) -> str | None:
    """The key a request carries: ``X-API-Key``, else ``Authorization: apikey``."""
    key = headers.get("X-API-Key", "").strip()
    if key:
        return key
    scheme, _, value = headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "apikey" and value.strip():
        return value.strip()
    return None


def _digest(key: str) -> bytes:
    # Equal-length digests: compare_digest then takes the same time for any key.
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def _burst(rate: str) -> float:
    """``1000/s`` may make 1000 requests at once, ``600/min`` 600."""
    match = re.match(r"\s*(\d+(?:\.\d+)?)", rate)
    return max(1.0, float(match.group(1))) if match else 1.0


class ApiKeys:
    """The configured keys, and one rate-limit bucket per key."""

    def __init__(self, keys: str, rate_limit: str) -> None:
        self._digests = [_digest(k) for k in parse_keys(keys)]
        rate = parse_rate(rate_limit)
        self._buckets = [TokenBucket(rate, _burst(rate_limit)) for _ in self._digests]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def match(self, given: str | None) -> int | None:
        """The index of the key ``given`` is, checking every key, or None."""
        if given is None:
            return None
        digest = _digest(given)
        found: int | None = None
        for index, known in enumerate(self._digests):
            if hmac.compare_digest(digest, known) and found is None:
                found = index
        return found

    def check(self, request: web.Request) -> None:
        """Raise the JSON 404, 401 or 429 this request gets, if any."""
        if not self.enabled:
            raise json_error(404, "not_found", "the server API is not enabled (--api-key)")
        index = self.match(key_from(request.headers))
        if index is None:
            raise json_error(
                401,
                "bad_api_key",
                "send a valid key as X-API-Key: KEY or Authorization: apikey KEY",
                **{"WWW-Authenticate": "apikey"},
            )
        wait = self._buckets[index].take()
        if wait > 0:
            retry = str(max(1, math.ceil(wait)))
            raise json_error(
                429,
                "rate_limited",
                f"over --api-rate-limit; retry in {retry} s",
                **{"Retry-After": retry},
            )


API_KEYS = web.AppKey("api_keys", ApiKeys)


def route_of(request: web.Request) -> str:
    """The route's pattern (``/api/rooms/{room}/history``): a bounded label."""
    route = request.match_info.route
    resource = route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def api_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every ``/api/`` request: the key check first, then the handler; counted
    by route and status."""
    status = 500
    try:
        request.app[API_KEYS].check(request)
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away first
        raise
    finally:
        request.config_dict[METRICS].api_requests.labels(route_of(request), str(status)).inc()
