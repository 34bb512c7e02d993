"""Stopping a background task."""

from __future__ import annotations

import asyncio


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait until it has ended. Its own
    cancellation is expected; an error it ended with is raised; a
    cancellation of the caller itself still propagates (``asyncio.wait``
    does not swallow it, as ``suppress(CancelledError)`` around ``await
    task`` would)."""
    if task is None:
        return
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error
