"""The garbage-collection policy: full passes cover only what is new, sweeps
free cycles among the rest when the heap has doubled; the server installs it
and reports it."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref

import aiohttp
import pytest

from realtime.collector import Collector
from realtime.workers import free_port

from .test_main import wait_healthy


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def pairs(n: int) -> list[Node]:
    """``n`` two-node cycles, like a closed connection that refers to itself."""
    nodes = []
    for _ in range(n):
        a, b = Node(), Node()
        a.other, b.other = b, a
        nodes.append(a)
    return nodes


def test_what_survives_a_pass_is_frozen_and_a_sweep_frees_cycles_among_it() -> None:
    collector = Collector(growth=2.0, floor=1000)
    collector.install()
    try:
        assert collector.sweeps == 1 and gc.get_freeze_count() > 0
        held = pairs(1000)
        alive = [weakref.ref(n) for n in held]
        gc.collect()  # a pass over the oldest generation: what survives is frozen
        assert collector.passes == 1
        frozen = gc.get_freeze_count()
        assert frozen >= 2000
        assert not any(o is held[0] for o in gc.get_objects(2))
        # Frozen objects are still freed by reference counting...
        plain = [Node() for _ in range(100)]
        gone = [weakref.ref(n) for n in plain]
        gc.collect()
        frozen = gc.get_freeze_count()
        del plain
        assert not any(r() for r in gone) and gc.get_freeze_count() <= frozen - 100
        # ...but cycles among them wait for a sweep, and passes do not look at them.
        del held
        gc.collect()
        assert all(r() is not None for r in alive)
        assert collector.sweep() >= 2000
        assert not any(r() for r in alive)
        assert collector.sweeps == 2 and collector.swept >= 2000
        # The next sweep is due once the heap has doubled.
        assert not collector.due()
        grown = [Node() for _ in range(collector.baseline[0])]
        assert collector.due()
        del grown
    finally:
        collector.uninstall()
    assert gc.get_freeze_count() == 0


async def gc_metrics(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with session.get(base + "/metrics") as resp:
        text = await resp.text()
    return {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("realtime_gc_")
    }


@pytest.mark.parametrize("growth", ["2", "0"])
async def test_the_server_paces_its_collector_unless_told_not_to(
    growth: str,
) -> None:
    port = free_port()
    args = ["--port", str(port), "--store", "memory", "--gc-growth", growth]
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtime", *args],
        stderr=subprocess.DEVNULL,  # nothing read back: no pipe to fill
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(base, proc)
        async with aiohttp.ClientSession() as session:
            values = await gc_metrics(session, base)
            sockets = [await session.ws_connect(base + f"/rooms/r{i}/ws") for i in range(50)]
            for ws in sockets:
                await ws.close()
            again = await gc_metrics(session, base)
    finally:
        proc.terminate()
        proc.wait(10)
    if growth == "0":  # Python's own collection: nothing frozen, nothing reported
        assert values == {} and again == {}
        return
    # One sweep at start (modules and the app frozen); 50 connections are far
    # from doubling the heap, so no other.
    assert values["realtime_gc_sweeps_total"] == again["realtime_gc_sweeps_total"] == 1
    assert 0 < values["realtime_gc_last_sweep_seconds"] < 1
    assert "realtime_gc_passes_total" in again
