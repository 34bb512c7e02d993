"""Errors answered at the edge: every refusal is a JSON body
``{"type":"error","code":…,"detail":…}`` with a fitting status."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

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


# A request aiohttp could not parse, and a peer that reset or hung up under a
# write (not ConnectionRefusedError: that is this server failing to reach out).
CLIENT_FAULTS_SEEN = (
    HttpProcessingError,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)


class ClientFaults(logging.Filter):
    """aiohttp logs a request it cannot parse (a bare LF, a control character
    in a header) and a client that hangs up mid-handshake as an ERROR with a
    traceback. Both are the client's doing: one INFO line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, CLIENT_FAULTS_SEEN):
            return True
        detail = " ".join(str(exc).split())[:200]  # one line, whatever the parser said
        record.msg = f"{record.getMessage()}: {type(exc).__name__}: {detail}"
        record.args = None
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.INFO, "INFO"
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


CLIENT_FAULTS = ClientFaults()


def quiet_client_faults() -> None:
    logging.getLogger("aiohttp.server").addFilter(CLIENT_FAULTS)  # once: same filter object
