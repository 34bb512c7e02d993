"""Run one server process: uvloop when installed, the app, a clean exit code."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os

from aiohttp import web

from .app import create_app
from .collector import collector_for
from .core.ports import BrokerUnavailable
from .settings import Settings

EXIT_LISTEN = 2  # the port could not be bound (in use, not ours)
EXIT_BROKER = 3  # the broker could not be reached at start

log = logging.getLogger("realtime")


def install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit, as Go programs do at
    start; return the new soft limit. A subscriber holds two descriptors
    (``transports/direct.py``), and a busy server needs more than the usual
    soft limit of 1024."""
    if os.name != "posix":
        return 0
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def serve(
    settings: Settings, *, reuse_port: bool = False, app: web.Application | None = None
) -> None:
    fast = install_uvloop()
    open_files = raise_fd_limit()

    def listening(banner: str) -> None:  # run_app calls this once the port is bound
        log.info(
            "realtime listening on http://%s:%d broker=%s loop=%s pid=%d open_files=%d",
            settings.host,
            settings.port,
            settings.broker,
            "uvloop" if fast else "asyncio",
            os.getpid(),
            open_files,
        )

    try:
        app = app or create_app(settings)
        if settings.gc_growth:
            app.cleanup_ctx.insert(0, collector_for(settings.gc_growth))
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            backlog=settings.backlog,
            print=listening,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=5.0,
            reuse_port=reuse_port or None,
        )
    except BrokerUnavailable as exc:
        log.error("realtime cannot start: %s", exc)
        raise SystemExit(EXIT_BROKER) from None
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        reason = os.strerror(exc.errno)
        log.error("realtime cannot listen on %s:%d: %s", settings.host, settings.port, reason)
        raise SystemExit(EXIT_LISTEN) from None
    log.info("realtime stopped")
