"""realtime: chat rooms over WebSocket and Server-Sent Events on one Room core."""

from .app import create_app
from .settings import Settings

__all__ = ["Settings", "create_app"]
__version__ = "0.1.0"
