"""realtime: chat rooms over WebSocket, Server-Sent Events and long-polling
on one Room core.

``create_app`` and ``Settings`` are imported on first use, so that
``import realtime.client`` does not load the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .settings import Settings

__all__ = ["Settings", "create_app"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "Settings":
        from .settings import Settings

        return Settings
    raise AttributeError(f"module 'realtime' has no attribute {name!r}")
