"""Errors answered at the edge: every refusal is a JSON body
``{"type":"error","code":…,"detail":…}`` with a fitting status."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..core.ports import BrokerUnavailable
from ..core.protocol import ProtocolError, dumps


class JsonError(web.HTTPException):
    """An HTTP error whose body is ``{"type":"error","code":…,"detail":…}``."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str]) -> None:
        self.status_code = status
        super().__init__(
            text=dumps({"type": "error", "code": code, "detail": detail}),
            content_type="application/json",
            headers=headers or None,
        )


def json_error(status: int, code: str, detail: str, **headers: str) -> web.HTTPException:
    """An HTTP error with a JSON body, ready to raise."""
    return JsonError(status, code, detail, headers)


def protocol_error(exc: ProtocolError) -> web.HTTPException:
    return json_error(exc.status, exc.code, exc.detail)


def unavailable(exc: BrokerUnavailable, what: str = "") -> web.HTTPException:
    """503 with Retry-After: the backend cannot answer; nothing was stored."""
    detail = f"{what}: {exc}" if what else str(exc)
    return json_error(503, "unavailable", detail, **{"Retry-After": "1"})


def too_large(limit: int) -> web.HTTPException:
    return json_error(413, "too_large", f"the body is over {limit} bytes")


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=dumps(data), status=status, content_type="application/json")
