"""The application's shared state, one ``web.AppKey`` each."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..core.hub import Hub
from ..metrics import Metrics
from ..settings import Settings

HUB = web.AppKey("hub", Hub)
SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
# Close handshakes under way; shutdown waits for them before dropping sockets.
CLOSING: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("closing")
# Echo sockets are not room subscribers; shutdown closes them from here.
ECHO_SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("echo_sockets")
