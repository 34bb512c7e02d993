"""A subscription to one room: the events, in order, each at most once.

``async with client.subscribe("lobby") as sub: async for event in sub: …``

A background task keeps a link up (see :mod:`.reconnect`) and hands each
server event to :meth:`Subscription.received`, which drops any message whose
id is not newer than the last one accepted (a resume replays from there, and
the server compares ids the same way), and queues the rest for the consumer.
A ``gap`` event resets that floor: what follows may start a new sequence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from types import TracebackType
from typing import Any

from .context import Context
from .errors import Refused
from .events import ErrorEvent, Event, Gap, Message, id_key, parse_event
from .link import WS_TOO_BIG, Ending, Reason, Sender, State, ending_for_disconnect
from .reconnect import Reconnector

log = logging.getLogger("realtime.client")

TRANSPORTS = ("ws", "sse", "poll")


class LinkLost(ConnectionError):
    """The WebSocket went down before a send was answered."""


class Subscription:
    def __init__(self, ctx: Context, room: str, transport: str, since: str | None) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}")
        self.ctx = ctx
        self.room = room
        self.transport = transport
        self.state = State.CLOSED
        self.last_id: str | None = since  # the last message id the consumer got
        self.reconnects = 0
        self.retry: float | None = None  # the server's SSE retry:, in seconds
        self._floor = since  # the last id accepted: resume and de-duplicate from here
        self._floor_key = None if since is None else id_key(since)
        self._buffer: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._final: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._opened_at: float | None = None
        self._ever_opened = False
        self._delivered_on_link = 0
        self._sender: Sender | None = None
        self._send_lock = asyncio.Lock()  # one frame written at a time, in order
        self._pending: dict[str, tuple[asyncio.Future[Message], int]] = {}  # id -> answer, size

    @property
    def resume_from(self) -> str | None:
        """The id the next connection resumes after. Once connected, a room
        that had nothing to deliver resumes from its start ("0"), so nothing
        sent while we were away is left out of a fresh join's replay."""
        if self._floor is None and self._ever_opened:
            return "0"
        return self._floor

    # -- lifecycle --------------------------------------------------------
    async def __aenter__(self) -> Subscription:
        self.state = State.CONNECTING
        self._task = asyncio.get_running_loop().create_task(self._run(Reconnector(self)))
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        self._finish(None)

    async def _run(self, reconnector: Reconnector) -> None:
        try:
            await reconnector.run()
        except Exception as exc:
            self._finish(exc)

    def _finish(self, exc: BaseException | None) -> None:
        self._link_closed()
        self.state = State.CLOSED
        if self._final is None:
            self._final = exc if exc is not None else StopAsyncIteration()
        self._ready.set()

    # -- the consumer -----------------------------------------------------
    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        while not self._buffer:
            if self._final is not None:
                if isinstance(self._final, StopAsyncIteration):
                    raise StopAsyncIteration
                raise self._final
            self._ready.clear()
            await self._ready.wait()
        event = self._buffer.popleft()
        self._drained.set()
        if isinstance(event, Message):
            self.last_id = event.id
        return event

    # -- the links (see link.Handler) -------------------------------------
    def opened(self, sender: Sender | None) -> None:
        if self._opened_at is not None or self.state is State.CLOSED:
            return
        if self._ever_opened:
            self.reconnects += 1
        self._ever_opened = True
        self._opened_at = time.monotonic()
        self._delivered_on_link = 0
        self._sender = sender
        self.state = State.LIVE

    def retry_hint(self, seconds: float) -> None:
        self.retry = seconds

    async def received(self, data: dict[str, Any]) -> Ending | None:
        if data.get("type") == "disconnect":  # the last event of an SSE stream or a poll
            return ending_for_disconnect(data)
        try:
            event = parse_event(data)
        except (KeyError, ValueError, TypeError) as exc:
            log.warning(
                "room %s: ignoring a malformed %s event: %s", self.room, data.get("type"), exc
            )
            return None
        if isinstance(event, Message):
            key = id_key(event.id)
            if self._floor_key is not None and key <= self._floor_key:
                return None  # already delivered: a resume replays from the floor
            self._floor, self._floor_key = event.id, key
            self._delivered_on_link += 1
            self._answer(event.client_id, event)
        elif isinstance(event, Gap):
            self._floor = self._floor_key = None
        elif isinstance(event, ErrorEvent):
            if event.code == "token_expired":
                return Ending(Reason.TOKEN_EXPIRED, event.detail)
            answers = event.client_id if event.client_id in self._pending else None
            if answers is None and len(self._pending) == 1:
                answers = next(iter(self._pending))  # an older server names no client_id
            if answers is not None:
                self._answer(answers, Refused(event.code, event.detail))
                return None
        elif event is None:
            return None
        while len(self._buffer) >= self.ctx.options.max_queue:
            self._drained.clear()
            await self._drained.wait()
        self._buffer.append(event)
        self._ready.set()
        return None

    def _link_closed(self, ending: Ending | None = None) -> tuple[float | None, int]:
        """Called when a link ends: when it had opened, and how many
        messages it delivered."""
        opened, self._opened_at = self._opened_at, None
        self._sender = None
        # A frame over the server's limit closes the socket: the largest one
        # in flight was it; the others may or may not be stored.
        too_big = ending is not None and ending.code == WS_TOO_BIG
        largest = max(self._pending, key=lambda c: self._pending[c][1], default=None)
        for client_id in list(self._pending):
            if too_big and client_id == largest:
                answer: BaseException = Refused("too_long", "the message is over the size limit")
            else:
                answer = LinkLost(f"the connection to room {self.room} was lost")
            self._answer(client_id, answer)
        return opened, self._delivered_on_link

    def _answer(self, client_id: str | None, answer: Message | BaseException) -> None:
        pending = self._pending.get(client_id) if client_id is not None else None
        if pending is None:
            return
        future = pending[0]
        if not future.done():
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)

    # -- sending over the open WebSocket ----------------------------------
    @property
    def can_send(self) -> bool:
        return self._sender is not None and self.state is State.LIVE

    async def send_frame(self, frame: str, client_id: str) -> Message:
        """Send a frame and wait for the message that carries ``client_id``
        (or the error answering it). Sends are pipelined: the next frame goes
        out while earlier ones wait for their answers, in the order of the
        calls. Raises :class:`LinkLost` when the link goes down first: the
        message may or may not be stored."""
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[client_id] = (future, len(frame.encode()))
        try:
            async with self._send_lock:
                sender = self._sender
                if sender is None:
                    raise LinkLost(f"no open WebSocket to room {self.room}")
                await sender(frame)
            async with asyncio.timeout(self.ctx.options.send_timeout):
                return await future
        except ConnectionError as exc:
            if isinstance(exc, LinkLost):
                raise
            raise LinkLost(str(exc)) from exc
        finally:
            if self._pending.get(client_id, (None,))[0] is future:
                del self._pending[client_id]
