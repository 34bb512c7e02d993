"""The Room core: rooms, subscribers, fan-out, presence and the interfaces
backends implement. It imports neither aiohttp nor redis, and knows no
transport by name: a transport hands it a :class:`~realtime.core.room.Sink`."""
