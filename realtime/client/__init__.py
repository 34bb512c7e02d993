"""A Python client for ``realtime`` with resume built in.

    async with Client("http://127.0.0.1:8080", user="ana") as client:
        async with client.subscribe("lobby", transport="ws") as sub:
            await client.send("lobby", "hi")
            async for event in sub:   # Message, Presence, Gap, ErrorEvent
                print(event)

Subscriptions reconnect by themselves (backoff with full jitter), resume from
the last message id they delivered, never yield a message twice, yield a
:class:`Gap` when the server no longer holds what was missed, and stop with an
exception on a deliberate disconnect or after ``give_up_after`` seconds
without a connection. Only aiohttp's client is used.
"""

from .api import Published
from .backoff import Backoff
from .client import Client
from .context import Options, TokenProvider
from .errors import ClientError, ClientGaveUp, Disconnected, Refused, TokenExpired
from .events import ErrorEvent, Event, Gap, Member, Message, Presence, id_key
from .link import State
from .sending import History
from .subscription import Subscription

__all__ = [
    "Backoff",
    "Client",
    "ClientError",
    "ClientGaveUp",
    "Disconnected",
    "ErrorEvent",
    "Event",
    "Gap",
    "History",
    "Member",
    "Message",
    "Options",
    "Presence",
    "Published",
    "Refused",
    "State",
    "Subscription",
    "TokenExpired",
    "TokenProvider",
    "id_key",
]
