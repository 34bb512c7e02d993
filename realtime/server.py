"""Run one server process: uvloop when installed, the app, a clean exit code."""

from __future__ import annotations

import asyncio
import logging
import os

from aiohttp import web

from .app import create_app
from .core.ports import BrokerUnavailable
from .settings import Settings

EXIT_BROKER = 3  # the broker could not be reached at start

log = logging.getLogger("realtime")


def install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def serve(
    settings: Settings, *, reuse_port: bool = False, app: web.Application | None = None
) -> None:
    fast = install_uvloop()
    log.info(
        "realtime listening on http://%s:%d broker=%s loop=%s pid=%d",
        settings.host,
        settings.port,
        settings.broker,
        "uvloop" if fast else "asyncio",
        os.getpid(),
    )
    try:
        web.run_app(
            app or create_app(settings),
            host=settings.host,
            port=settings.port,
            print=None,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=5.0,
            reuse_port=reuse_port or None,
        )
    except BrokerUnavailable as exc:
        log.error("realtime cannot start: %s", exc)
        raise SystemExit(EXIT_BROKER) from None
    log.info("realtime stopped")
