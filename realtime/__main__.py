"""``python -m realtime``: parse settings, set up logging, serve."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from aiohttp import web

from . import logs, tokens
from .app import create_app
from .settings import Settings, load

log = logging.getLogger("realtime")


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
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["token"]:
        secret = load([]).secret  # REALTIME_SECRET, unless --secret is given
        raise SystemExit(tokens.cli(args[1:], secret))
    settings = load(args)
    logs.setup(settings.log_level, settings.log_format)
    serve(settings)


if __name__ == "__main__":
    main()
