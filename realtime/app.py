"""``create_app(settings)``: routes, start-up and shutdown, the web pages."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from aiohttp import WSCloseCode, web

from .backends import create_backend
from .core.hub import Hub
from .core.ports import BrokerUnavailable
from .core.room import CloseReason
from .metrics import CONTENT_TYPE, Metrics
from .policy.origin import origin_allowed
from .settings import Settings
from .transports import echo, http, poll, sse, websocket
from .transports.api import create_api
from .transports.errors import quiet_client_faults
from .transports.guard import GUARD, Guard
from .transports.state import CLOSING, ECHO_SOCKETS, HUB, METRICS, SETTINGS

TRANSPORTS = (websocket.NAME, sse.NAME, poll.NAME)


def web_root() -> Path:
    """``web/`` inside the installed package, else beside it in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "web", here.parent / "web"):
        if (candidate / "index.html").is_file():
            return candidate
    raise RuntimeError(f"web pages not found next to {here}")


def page(name: str, path: str | None = None, headers: Mapping[str, str] = {}) -> web.RouteDef:
    async def handler(request: web.Request) -> web.FileResponse:
        return web.FileResponse(web_root() / name, headers={"Cache-Control": "no-cache", **headers})

    return web.get(path or "/" + name.removesuffix(".html").replace("index", ""), handler)


# client.js is importable from any origin; its connections obey --allow-origin.
CLIENT_JS = {"Access-Control-Allow-Origin": "*", "X-TypeScript-Types": "/client.d.ts"}
CLIENT_TYPES = {"Access-Control-Allow-Origin": "*", "Content-Type": "application/typescript"}


async def _hub_lifecycle(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    await hub.start()
    yield
    await hub.close()


async def _close_connections(app: web.Application) -> None:
    """Close every WebSocket with 1001 and end every SSE stream."""
    app[HUB].close_all(CloseReason.SHUTDOWN)
    await asyncio.gather(
        *app[CLOSING],
        *(
            ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
            for ws in app[ECHO_SOCKETS]
        ),
        return_exceptions=True,
    )


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.content_type == "text/html":
        response.headers["Content-Security-Policy"] = CSP
        response.headers["Referrer-Policy"] = "same-origin"


async def _cors(request: web.Request, response: web.StreamResponse) -> None:
    """Let pages of an allowed other origin read answers and event streams (no cookies)."""
    origin = request.headers.get("Origin")
    if origin is None or "Access-Control-Allow-Origin" in response.headers:
        return
    allowed = request.config_dict[GUARD].allowed_origins  # /api/ is a sub-app
    if origin_allowed(origin, host=request.host, scheme=request.scheme, allowed=allowed):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "Retry-After"
        response.headers.add("Vary", "Origin")


async def _preflight(request: web.Request) -> web.Response:
    """``OPTIONS`` before a cross-origin POST (JSON, ``Authorization``)."""
    request.app[GUARD].check_origin(request)
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": "GET, POST",
            "Access-Control-Allow-Headers": "Content-Type, Authorization",
            "Access-Control-Max-Age": "600",
        },
    )


async def _metrics(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    with contextlib.suppress(BrokerUnavailable):  # the gauge keeps its last value
        metrics.known_rooms = len(await request.app[HUB].rooms())
    body = metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def create_app(settings: Settings | None = None) -> web.Application:
    settings = settings or Settings()
    app = web.Application(
        client_max_size=settings.max_frame_bytes,
        # aiohttp closes a connection still waiting for a complete request
        # after keepalive_timeout, counted from the connection's start (or the
        # end of the previous response): the bound on slow header senders.
        handler_args={"keepalive_timeout": settings.request_timeout},
    )
    app[SETTINGS] = settings
    backend = create_backend(
        settings.broker,
        history_size=settings.history_size,
        store_url=settings.store,
        max_rooms=settings.max_rooms,
        redis_wait=settings.redis_wait,
        redis_wait_timeout=settings.redis_wait_timeout,
    )
    app[HUB] = Hub(
        backend,
        replay=settings.replay,
        history_size=settings.history_size,
        max_buffer=settings.max_buffer_bytes,
        presence_limit=settings.presence_limit,
        write_delay=settings.write_delay / 1000,
        idempotency_window=settings.idempotency_window,
    )
    app[METRICS] = metrics = Metrics(app[HUB], TRANSPORTS)
    app[GUARD] = Guard.from_settings(settings, metrics)
    app[ECHO_SOCKETS] = set()
    app[CLOSING] = set()
    app.on_response_prepare.append(_security_headers)
    app.on_response_prepare.append(_cors)
    quiet_client_faults()
    app.cleanup_ctx.append(_hub_lifecycle)
    app.add_subapp("/api", create_api(settings))
    app.on_shutdown.append(_close_connections)
    app.add_routes(
        [
            page("index.html"),
            page("compare.html"),
            page("client.js", "/client.js", CLIENT_JS),
            page("client.d.ts", "/client.d.ts", CLIENT_TYPES),
            web.get("/rooms", http.list_rooms),
            web.get("/rooms/{room}/ws", websocket.room_socket),
            web.get("/rooms/{room}/events", sse.room_events),
            web.get("/rooms/{room}/poll", poll.room_poll),
            web.post("/rooms/{room}/messages", http.post_message),
            web.get("/rooms/{room}/messages", http.get_messages),
            web.options("/rooms/{room}/messages", _preflight),
            web.get("/ws/echo", echo.echo_socket),
            web.get("/ws", websocket.room_socket),
            web.get("/sse", sse.room_events),
            web.get("/healthz", http.healthz),
            web.get("/metrics", _metrics),
            web.static("/static", web_root()),
        ]
    )
    return app
