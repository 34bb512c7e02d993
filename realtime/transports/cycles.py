"""Breaking the reference cycles aiohttp leaves around a WebSocket that ended.

Each of them kept every WebSocket connection, with its request, protocol,
transport and buffers (about 40 objects), alive until a full pass of the
cycle collector, which at 10,000 connections stalls the process for most of
a second (``realtime/collector.py``). Broken here, a connection that ends is
freed by reference counting at once (``tests/test_session.py``).
"""

from __future__ import annotations

from aiohttp import web


def drop_tracebacks(ws: web.WebSocketResponse) -> None:
    """Keep the error that ended a socket (``ws.exception()``, which says
    why), but not its traceback.

    aiohttp stores the error a close or a heartbeat met writing to a
    connection the peer had already reset (``web_ws.py``, ``close`` and
    ``_handle_ping_pong_exception``), traceback and all. Its frames hold the
    socket (``close``'s ``self``) or the writer that reaches it: a reference
    cycle that kept every connection the peer reset, with its request,
    protocol and transport, until a full garbage collection.
    """
    todo, seen = [ws.exception()], set()
    while todo:
        exc = todo.pop()
        if exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            exc.__traceback__ = None
            todo += (exc.__cause__, exc.__context__)


def unhook_heartbeat(request: web.Request) -> None:
    """Take a socket's heartbeat hook back from its connection's protocol,
    once the handler is done with the socket.

    aiohttp gives the protocol the socket's ``_on_data_received`` (incoming
    bytes put off the next ping, ``web_protocol.py`` ``set_parser``) and
    never takes it back, not even when the connection is lost; the socket
    keeps its request (``WebSocketResponse.write_eof`` does not drop it, as
    ``StreamResponse.write_eof`` does), and the request its protocol. That
    cycle (socket -> request -> protocol -> socket) kept every WebSocket
    connection, however it ended, until a full garbage collection. No public
    call undoes it. Nothing changes on the wire: the hook only moves the
    next ping, and after the handler the socket is closed (no more pings)
    or its connection gone (no more bytes).
    """
    protocol = request.protocol
    if getattr(protocol, "_data_received_cb", None) is not None:
        protocol._data_received_cb = None
