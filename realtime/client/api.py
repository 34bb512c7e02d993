"""The server API for backends: ``POST /api/publish`` with ``X-API-Key``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from .context import Context
from .errors import ClientError, Refused
from .link import refusal

MAX_ROOMS = 1000


@dataclass(frozen=True, slots=True)
class Published:
    """One room's result: the stored id, or why that room refused."""

    room: str
    id: str | None
    code: str | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.id is not None


def _result(item: Any) -> Published:
    room = str(item.get("room", ""))
    if item.get("id") is not None:
        return Published(room, str(item["id"]))
    error = item.get("error") if isinstance(item.get("error"), dict) else item
    return Published(room, None, str(error.get("code", "error")), str(error.get("detail", "")))


async def publish(
    ctx: Context,
    rooms: str | list[str] | tuple[str, ...],
    text: str,
    *,
    user: str | None,
    client_id: str | None,
    idempotency_key: str | None,
) -> list[Published]:
    if not ctx.api_key:
        raise ClientError("publish goes through the server API: give Client(api_key=…)")
    body: dict[str, Any] = {"text": text}
    if isinstance(rooms, str):
        body["room"] = rooms
    else:
        if not 1 <= len(rooms) <= MAX_ROOMS:
            raise ValueError(f"publish to 1-{MAX_ROOMS} rooms at a time")
        body["rooms"] = list(rooms)
    extra = {"user": user, "client_id": client_id, "idempotency_key": idempotency_key}
    body.update({k: v for k, v in extra.items() if v is not None})
    timeout = aiohttp.ClientTimeout(total=ctx.options.send_timeout)
    async with ctx.session.post(
        ctx.base / "api" / "publish", json=body, headers={"X-API-Key": ctx.api_key}, timeout=timeout
    ) as resp:
        if resp.status != 200:
            raise await refusal(resp)
        data = await resp.json()
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list):
        raise Refused("bad_answer", f"unexpected answer: {str(data)[:200]}", resp.status)
    return [_result(item) for item in results if isinstance(item, dict)]
