"""``python -m realtime publish ROOM TEXT``: publish through the server API.

For shell scripts and cron jobs: the key comes from ``--api-key`` or
``REALTIME_API_KEY``; ``ROOM`` may list several rooms, comma-separated. The
results are printed as JSON; the exit code is 0 when every room got the
message, 1 when some did not, 2 for a refused request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

import aiohttp

TIMEOUT = 10.0  # seconds for the whole request


async def publish(
    url: str,
    api_key: str,
    rooms: Sequence[str],
    text: str,
    *,
    user: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[int, Any]:
    """``POST {url}/api/publish``; the status and the decoded answer."""
    body: dict[str, Any] = {"text": text}
    if len(rooms) == 1:
        body["room"] = rooms[0]
    else:
        body["rooms"] = list(rooms)
    if user is not None:
        body["user"] = user
    if idempotency_key is not None:
        body["idempotency_key"] = idempotency_key
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(
            url.rstrip("/") + "/api/publish", json=body, headers={"X-API-Key": api_key}
        ) as resp,
    ):
        try:
            return resp.status, await resp.json(content_type=None)
        except ValueError:
            return resp.status, {"detail": (await resp.text())[:200]}


def cli(argv: Sequence[str], api_key: str) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m realtime publish",
        description="Publish a message through the server API (POST /api/publish).",
    )
    parser.add_argument("room", help="room name, or several comma-separated")
    parser.add_argument("text", help="the message text")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the server's base URL")
    parser.add_argument("--api-key", default=api_key, help="an API key [REALTIME_API_KEY]")
    parser.add_argument("--user", help="sender name (default: server)")
    parser.add_argument("--idempotency-key", help="retries with the same key publish once")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error("no API key: pass --api-key or set REALTIME_API_KEY")
    rooms = [r.strip() for r in args.room.split(",") if r.strip()]
    try:
        status, answer = asyncio.run(
            publish(
                args.url,
                args.api_key,
                rooms,
                args.text,
                user=args.user,
                idempotency_key=args.idempotency_key,
            )
        )
    except (aiohttp.ClientError, TimeoutError) as exc:
        print(f"realtime publish: {args.url}: {exc or type(exc).__name__}", file=sys.stderr)
        return 2
    print(json.dumps(answer))
    if status != 200:
        return 2
    return 0 if all("id" in r for r in answer.get("results", [])) else 1
