"""How a connection the server ends looks on the wire, beyond closing it.

The core names the reason (:class:`CloseReason`); a WebSocket carries it as
its close code and text, while SSE and long-polling, which have no close
code, get one last event first: ``disconnect`` (with the same code and
reason, and whether to reconnect) or an ``error`` with ``token_expired``.
"""

from __future__ import annotations

from ..core.protocol import Event
from ..core.room import CloseReason

# WebSocket close codes in the range left to applications (4000-4999).
APP_CODES = {
    CloseReason.DISCONNECT: 4000,  # do not reconnect
    CloseReason.DISCONNECT_RECONNECT: 4001,
    CloseReason.TOKEN_EXPIRED: 4003,
}


def final_event(reason: CloseReason, detail: str = "") -> Event | None:
    """The last event a stream without close codes gets, if the reason has one."""
    if reason is CloseReason.TOKEN_EXPIRED:
        payload = {"type": "error", "code": "token_expired", "detail": "the token has expired"}
        return Event("error", payload)
    if reason in (CloseReason.DISCONNECT, CloseReason.DISCONNECT_RECONNECT):
        return Event(
            "disconnect",
            {
                "type": "disconnect",
                "code": APP_CODES[reason],
                "reason": detail or reason.value,
                "reconnect": reason is CloseReason.DISCONNECT_RECONNECT,
            },
        )
    return None
