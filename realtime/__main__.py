"""``python -m realtime``: parse settings, set up logging, serve."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from aiohttp import web

from .app import create_app
from .settings import Settings, load

log = logging.getLogger("realtime")


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def serve(settings: Settings) -> None:
    fast = install_uvloop()
    log.info(
        "realtime listening on http://%s:%d broker=%s loop=%s",
        settings.host,
        settings.port,
        settings.broker,
        "uvloop" if fast else "asyncio",
    )
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=5.0,
    )
    log.info("realtime stopped")


def main(argv: Sequence[str] | None = None) -> None:
    settings = load(argv)
    setup_logging(settings.log_level)
    serve(settings)


if __name__ == "__main__":
    main()
