"""One run: N subscribers of one transport, one publisher, one server, and the clocks.

:func:`run_one` connects the subscribers (spread over worker processes) to a
fresh room, waits until server and clients are idle, publishes for
``--duration`` seconds, drains, and returns the figures of
:func:`benchmarks.figures.summarize`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from benchmarks import rawclient
from benchmarks.dialect import Endpoint
from benchmarks.fanout_report import rss_mib, total_cpu, total_cpu_split, with_descendants
from benchmarks.figures import summarize
from benchmarks.pipe import Child, Children
from benchmarks.publisher import PublishJob, publisher_main
from benchmarks.servers import Target
from benchmarks.worker import WorkerJob, worker_main

QUIET_CORES = 0.15  # server + clients below this many cores: the room has settled


def open_stalled(target: Target, room: str, transport: str, k: int) -> list[socket.socket]:
    """``k`` connections with a tiny receive buffer whose owner never reads."""
    parts = urlsplit(target.base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    socks = []
    for i in range(k):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, port))
        path = target.dialect.path(transport, room, f"stalled-{i}")
        if transport == "ws":
            sock.sendall(rawclient.ws_upgrade_request(path, host, rawclient.ws_key()))
        elif transport == "sse":
            sock.sendall(rawclient.sse_request(path, host))
        else:
            sock.sendall(rawclient.get_request(path + "&since=0", host))
        socks.append(sock)
    return socks


def slow_drops(base_url: str) -> int | None:
    """The server's count of subscribers dropped for falling behind."""
    try:
        with urllib.request.urlopen(base_url + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except (OSError, urllib.error.URLError):
        return None
    for line in text.splitlines():
        if line.startswith("realtime_slow_consumers_dropped_total "):
            return int(float(line.split()[1]))
    return None


def split(users: list[str], parts: int) -> list[list[str]]:
    return [users[i::parts] for i in range(parts) if users[i::parts]]


def wait_quiet(pids: list[int], max_wait: float) -> float:
    """Wait until these processes use under QUIET_CORES together; seconds waited."""
    start = time.monotonic()
    step = 0.25
    while time.monotonic() - start < max_wait:
        before = total_cpu(pids)
        time.sleep(step)
        if (total_cpu(pids) - before) / step < QUIET_CORES:
            break
    return time.monotonic() - start


def publish_via(args: argparse.Namespace, transport: str) -> str:
    if args.publish_via != "auto":
        return str(args.publish_via)
    return "ws" if transport == "ws" else "post"


def lifetime(args: argparse.Namespace) -> float:
    """A hard bound on any child's life: every phase's timeout added up, and some."""
    return float(args.connect_timeout + args.settle_max + 3 * args.duration + args.drain + 60)


def nominal_window_ns(args: argparse.Namespace) -> int:
    """Publishing time as planned: the last message is due one interval before its end."""
    rate, duration = float(args.rate), float(args.duration)
    return round(round(rate * duration) / rate * 1e9)


def start_workers(
    children: Children, args: argparse.Namespace, target: Target, room: str, transport: str, n: int
) -> list[Child]:
    total = round(args.rate * args.duration)
    users = [f"s{i}" for i in range(n)]
    workers = []
    for index, part in enumerate(split(users, args.procs)):
        at = Endpoint(target.base_url, target.dialect, transport, room)
        job = WorkerJob(index, at, part, total, args.connect_timeout, lifetime(args), args.client)
        workers.append(children.start(f"worker-{index}", worker_main, job))
    return workers


def connect_all(workers: list[Child], args: argparse.Namespace) -> dict[str, Any]:
    reports = [w.expect("ready", args.connect_timeout + 30) for w in workers]
    errors: Counter[str] = Counter()
    for r in reports:
        errors.update(r["errors"])
    return {
        "ready": sum(r["ready"] for r in reports),
        "failed": sum(r["failed"] for r in reports),
        "errors": dict(errors),
    }


def count_live(workers: list[Child]) -> int:
    """Subscribers still connected now (the join wave can drop some)."""
    for w in workers:
        w.send("status")
    return sum(w.expect("status", 10) for w in workers)


@dataclass
class CpuClock:
    """CPU seconds of the server (user, kernel), the workers and the publisher at one instant."""

    wall: float
    server: tuple[float, float]
    workers: list[float]
    publisher: float

    @classmethod
    def read(cls, server_pids: list[int], workers: list[Child], publisher: Child) -> CpuClock:
        return cls(
            time.monotonic(),
            total_cpu_split(server_pids),
            [total_cpu([w.pid]) for w in workers],
            total_cpu([publisher.pid]),
        )


def run_one(
    args: argparse.Namespace, target: Target, transport: str, n: int, say: Callable[[str], None]
) -> dict[str, Any]:
    room = f"fanout-{transport}-{n}-{secrets.token_hex(3)}"
    via = publish_via(args, transport)
    total = round(args.rate * args.duration)
    server_pids = with_descendants(target.server_pid) if target.server_pid else []
    children = Children()
    stalled: list[socket.socket] = []
    drops_before = slow_drops(target.base_url)
    tag = f"{target.name} {transport} N={n}"
    try:
        say(f"{tag}: connecting {n} {args.client} subscribers over "
            f"{min(n, args.procs)} processes")  # fmt: skip
        t0 = time.monotonic()
        workers = start_workers(children, args, target, room, transport, n)
        ready = connect_all(workers, args)
        ready["connect_s"] = time.monotonic() - t0
        say(f"{tag}: {ready['ready']}/{n} live in {ready['connect_s']:.1f}s")
        if ready["failed"]:
            say(f"{tag}: connect errors {ready['errors']}")
        if args.stalled:
            stalled = open_stalled(target, room, transport, args.stalled)
            say(f"{tag}: {args.stalled} stalled subscribers connected, never reading")
        pjob = PublishJob(
            target.base_url, target.dialect, room, via, args.rate, total, args.payload_bytes,
            args.drain + 10, lifetime(args),
        )  # fmt: skip
        publisher = children.start("publisher", publisher_main, pjob)
        publisher.expect("ready", 30)
        quiet_pids = server_pids + [w.pid for w in workers] + [publisher.pid]
        settle = wait_quiet(quiet_pids, args.settle_max)
        say(f"{tag}: settled {settle:.1f}s; publishing {args.rate:g}/s via {via} "
            f"for {args.duration:g}s")  # fmt: skip
        live = count_live(workers)
        if live < ready["ready"]:
            say(f"{tag}: WARNING {ready['ready'] - live} subscribers were dropped "
                "before publishing (see drop_reasons)")  # fmt: skip
        c0 = CpuClock.read(server_pids, workers, publisher)
        publisher.send("go")
        window = publisher.expect("sent", 3 * args.duration + 30)
        c1 = CpuClock.read(server_pids, workers, publisher)
        pub = publisher.expect("result", args.drain + 30)
        deadline = window[1] + int(args.drain * 1e9)
        expected = sum(pub["accepted"])
        say(f"{tag}: {expected}/{total} accepted; draining up to {args.drain:g}s")
        for w in workers:
            w.send("finish", expected, deadline, window[0] + nominal_window_ns(args))
        results = [w.expect("result", args.drain + 30) for w in workers]
        c2 = CpuClock.read(server_pids, workers, publisher)
        rss = rss_mib(server_pids)  # with every subscriber still connected
    finally:
        children.stop()
        for sock in stalled:
            sock.close()
    run = summarize(args, transport, n, via, ready, pub, results, (c0, c1, c2))
    drops_after = slow_drops(target.base_url)
    run["server"] = target.name
    run["server_rss_mib"] = rss
    run["stalled"] = args.stalled
    run["slow_consumers_dropped"] = (
        drops_after - drops_before if drops_before is not None and drops_after is not None else None
    )
    run["settle_s"] = settle
    run["loadavg_1m"] = os.getloadavg()[0]  # what else ran: the machine may be shared
    run["live_at_start"] = live
    run["has_server_cpu"] = bool(server_pids)
    return run
