"""Exceptions of the client: every one of them is a :class:`ClientError`."""

from __future__ import annotations


class ClientError(Exception):
    """Base class of the client's own errors."""


class Refused(ClientError):
    """The server refused a request with a clear answer: an HTTP error with
    its JSON body (``status`` set), or an ``error`` event answering a send
    over the WebSocket (``status`` is ``None``). Retrying the same request
    unchanged would get the same answer, except for ``rate_limited``
    (``retry_after`` says when) and ``unavailable``."""

    def __init__(
        self, code: str, detail: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        where = f"HTTP {status} " if status is not None else ""
        super().__init__(f"{where}{code}: {detail}")
        self.code = code
        self.detail = detail
        self.status = status
        self.retry_after = retry_after


class Disconnected(ClientError):
    """The server disconnected us on purpose and asked us not to come back
    (WebSocket close 4000-4099, or an SSE ``event: disconnect``)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"disconnected by the server ({code}): {reason or 'no reason given'}")
        self.code = code
        self.reason = reason


class TokenExpired(ClientError):
    """The token expired and no ``token_provider`` gave a fresh one."""


class ClientGaveUp(ClientError):
    """No connection could be made for ``after`` seconds in a row."""

    def __init__(self, after: float, last_error: str) -> None:
        super().__init__(f"no connection for {after:g} s; last error: {last_error}")
        self.after = after
        self.last_error = last_error
