"""``/metrics`` in Prometheus text format, one registry per app.

Gauges and counters the hub already keeps are read at scrape time by a
collector, so the fan-out path pays nothing for them; the fan-out time is a
histogram fed once per flush pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .core.hub import Hub
from .core.presence import by_transport
from .core.room import CloseReason

if TYPE_CHECKING:
    from .collector import Collector as GcPolicy

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HubCollector(Collector):
    def __init__(self, hub: Hub, transports: Sequence[str], known_rooms: Callable[[], int]) -> None:
        self.hub = hub
        self.transports = transports
        self.known_rooms = known_rooms

    def collect(self) -> Iterator[Metric]:
        hub = self.hub
        conns = GaugeMetricFamily(
            "realtime_connections",
            "Open subscriber connections in this process",
            labels=["transport"],
        )
        counts = by_transport(s.member for s in hub.subscribers())
        for transport in (*self.transports, *(t for t in counts if t not in self.transports)):
            conns.add_metric([transport], counts.get(transport, 0))
        yield conns
        yield GaugeMetricFamily(
            "realtime_subscribers_direct",
            "Subscribers the room writes to straight to their socket (the others,"
            " past half the open-files limit or over TLS, through their transport)",
            value=sum(1 for s in hub.subscribers() if s.descriptor >= 0),
        )
        yield GaugeMetricFamily(
            "realtime_rooms",
            "Rooms GET /rooms knows (with history or members), private ones included",
            value=self.known_rooms(),
        )
        yield GaugeMetricFamily(
            "realtime_rooms_active",
            "Rooms with subscribers in this process",
            value=hub.room_count(),
        )
        yield CounterMetricFamily(
            "realtime_messages_received", "Messages accepted and stored", value=hub.published
        )
        yield CounterMetricFamily(
            "realtime_deliveries", "Events written to subscribers", value=hub.delivered
        )
        yield CounterMetricFamily(
            "realtime_slow_consumers_dropped",
            "Subscribers dropped for falling behind",
            value=hub.dropped_slow,
        )
        closed = CounterMetricFamily(
            "realtime_disconnects",
            "Connections the server closed, by reason (slow, shutdown, gone, disconnect, "
            "disconnect_reconnect, token_expired)",
            labels=["reason"],
        )
        for reason in CloseReason:
            closed.add_metric([reason.name.lower()], hub.closed_by[reason.name.lower()])
        yield closed
        yield CounterMetricFamily(
            "realtime_token_expiries",
            "Connections closed because their token expired",
            value=hub.closed_by[CloseReason.TOKEN_EXPIRED.name.lower()],
        )
        up = GaugeMetricFamily(
            "realtime_broker_up", "1 when the broker is reachable", labels=["broker"]
        )
        up.add_metric([hub.backend.name], 1.0 if hub.healthy else 0.0)
        yield up


class GcCollector(Collector):
    """The server's garbage-collection policy (``realtime.collector``), when installed."""

    def __init__(self, gc: GcPolicy) -> None:
        self.gc = gc

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "realtime_gc_passes",
            "Collector passes over the oldest generation (each covers only what was "
            "allocated since the last; what survives it is frozen)",
            value=self.gc.passes,
        )
        yield CounterMetricFamily(
            "realtime_gc_sweeps",
            "Full passes over every object, frozen or not (--gc-growth)",
            value=self.gc.sweeps,
        )
        yield CounterMetricFamily(
            "realtime_gc_swept_objects",
            "Unreachable objects the sweeps freed (cycles reference counting could not)",
            value=self.gc.swept,
        )
        yield GaugeMetricFamily(
            "realtime_gc_last_sweep_seconds",
            "How long the last sweep paused the process",
            value=self.gc.last_sweep_seconds,
        )


class Metrics:
    def __init__(self, hub: Hub, transports: Sequence[str] = ()) -> None:
        # Counting known rooms asks the backend (awaited), which a collector
        # cannot: the /metrics handler sets it before each render.
        self.known_rooms = 0
        self.registry = CollectorRegistry()
        self.registry.register(HubCollector(hub, transports, lambda: self.known_rooms))
        self.fanout = Histogram(
            "realtime_fanout_seconds",
            "From an event's arrival in the hub to its last socket write, per flush pass",
            buckets=(
                0.0001,
                0.00025,
                0.0005,
                0.001,
                0.0025,
                0.005,
                0.01,
                0.025,
                0.05,
                0.1,
                0.25,
                1.0,
            ),
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "realtime_rate_limited",
            "Sends refused by the rate limit",
            ["transport"],
            registry=self.registry,
        )
        self.refused = Counter(
            "realtime_requests_refused",
            "Requests refused before reaching a room",
            ["reason"],
            registry=self.registry,
        )
        self.api_requests = Counter(
            "realtime_api_requests",
            "Server API requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        hub.fanout.on_pass = self._observe

    def _observe(self, seconds: float, deliveries: int) -> None:
        self.fanout.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
