"""The controller and its child processes, and what they say over a ``multiprocessing`` pipe.

Every child runs its own asyncio loop (uvloop when installed). Messages are
tuples, the kind first::

    worker:    -> ("ready", report)    <- ("status",)  -> ("status", n_open)
               <- ("finish", n_expected, deadline_ns, window_end_ns)  -> ("result", result)
    publisher: -> ("ready", None)      <- ("go",)  -> ("sent", window)  -> ("result", result)

A child whose controller is gone (EOF on the pipe) exits; the controller
stops every child when a run ends, however it ends.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from realtime.server import raise_fd_limit


# -- the child's side ------------------------------------------------------------------
def run_child(main: Coroutine[Any, Any, None]) -> None:
    """Run a child's coroutine: Ctrl-C is the controller's job, uvloop if present."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_fd_limit()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


async def receive(conn: Connection) -> tuple[Any, ...]:
    """The controller's next command; EOF (controller gone) ends the process."""
    try:
        msg: tuple[Any, ...] = await asyncio.to_thread(conn.recv)
    except (EOFError, OSError):
        raise SystemExit(1) from None
    return msg


def tell(conn: Connection, message: tuple[Any, ...]) -> None:
    """Report to the controller; if it is gone, so is this process."""
    try:
        conn.send(message)
    except OSError:
        raise SystemExit(1) from None


# -- the controller's side -------------------------------------------------------------
@dataclass
class Child:
    name: str
    process: BaseProcess
    conn: Connection

    def expect(self, kind: str, timeout: float) -> Any:
        """The child's next message, which must be ``kind``; its payload."""
        deadline = time.monotonic() + timeout
        while not self.conn.poll(0.1):
            if not self.process.is_alive():
                raise RuntimeError(f"{self.name} exited with code {self.process.exitcode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no {kind!r} after {timeout:.0f}s")
        got = self.conn.recv()
        if got[0] != kind:
            raise RuntimeError(f"{self.name}: expected {kind!r}, got {got[0]!r}")
        return got[1]

    def send(self, *message: Any) -> None:
        self.conn.send(message)

    @property
    def pid(self) -> int:
        return self.process.pid or 0


@dataclass
class Children:
    """Every process of one run; all are stopped when the run ends, however it ends."""

    ctx: Any = field(default_factory=lambda: mp.get_context("spawn"))
    started: list[Child] = field(default_factory=list)

    def start(self, name: str, target: Callable[[Connection, Any], None], job: Any) -> Child:
        parent_end, child_end = self.ctx.Pipe()
        proc = self.ctx.Process(target=target, args=(child_end, job), name=name, daemon=True)
        proc.start()
        child_end.close()
        child = Child(name, proc, parent_end)
        self.started.append(child)
        return child

    def stop(self) -> None:
        for child in self.started:
            child.conn.close()
        deadline = time.monotonic() + 5
        for child in self.started:
            child.process.join(max(0.0, deadline - time.monotonic()))
        for child in self.started:
            if child.process.is_alive():
                child.process.terminate()
                child.process.join(2)
            if child.process.is_alive():
                child.process.kill()
                child.process.join(2)
