"""Fan-out latency of `realtime` per transport: N subscribers, one publisher.

    python benchmarks/fanout.py                         # starts its own server
    python benchmarks/fanout.py --subscribers 1000 --rate 100 --json out.json
    python benchmarks/fanout.py --url http://127.0.0.1:8080 --server-pid 1234

For each transport and each N it connects N subscribers to a fresh room,
spread over worker processes, waits until every one is live, publishes
``--rate`` messages/s for ``--duration`` seconds from a separate publisher
process, and drains for at most ``--drain`` seconds. Latency is the
subscriber's ``time.monotonic_ns()`` at receipt minus the publisher's, stamped
into the text (CLOCK_MONOTONIC is one clock for every process on Linux).
See benchmarks/README.md for how to read the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ipaddress
import json
import multiprocessing as mp
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fanout_clients import (
    NONE_YET,
    PublishJob,
    WorkerJob,
    publisher_main,
    raise_fd_limit,
    worker_main,
)
from fanout_report import (
    format_table,
    latency_summary,
    plot_cdfs,
    total_cpu,
    with_descendants,
)

STARTED = time.monotonic()
SERVER_START_TIMEOUT = 20.0
QUIET_CORES = 0.15  # server + clients below this many cores: the room has settled


# -- command line ---------------------------------------------------------------------
def _int_list(raw: str) -> list[int]:
    values = [int(v) for v in raw.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected positive integers, comma-separated")
    return values


def _transports(raw: str) -> list[str]:
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if not values or set(values) - {"ws", "sse"}:
        raise argparse.ArgumentTypeError("expected ws, sse or ws,sse")
    return values


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        value = kind(raw)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {raw}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Fan-out latency of realtime over WebSocket and SSE.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--transports", type=_transports, default=["ws", "sse"], help="ws,sse")
    p.add_argument("--subscribers", type=_int_list, default=[10, 100, 1000], help="N values")
    p.add_argument("--rate", type=_positive(float), default=50.0, help="messages per second")
    p.add_argument("--duration", type=_positive(float), default=5.0, help="publishing seconds")
    p.add_argument("--payload-bytes", type=_positive(int), default=100, help="message text size")
    p.add_argument(
        "--publish-via",
        choices=["auto", "ws", "post"],
        default="auto",
        help="auto: WebSocket frames for the ws run, POST for the sse run",
    )
    p.add_argument(
        "--client",
        choices=["raw", "aiohttp"],
        default="raw",
        help="subscriber implementation: raw (an asyncio.Protocol per connection, minimal "
        "parsing, as load generators do) or aiohttp (its WebSocket and streaming clients)",
    )
    p.add_argument("--drain", type=float, default=2.0, help="max seconds to wait after publishing")
    p.add_argument(
        "--procs", type=_positive(int), default=default_procs(), help="subscriber processes"
    )
    p.add_argument("--connect-timeout", type=_positive(float), default=60.0, help="seconds")
    p.add_argument(
        "--settle-max",
        type=float,
        default=20.0,
        help="max seconds to wait for the join wave (presence) to go quiet before publishing",
    )
    p.add_argument(
        "--stalled",
        type=int,
        default=0,
        help="extra subscribers per run that connect and never read (slow-consumer isolation)",
    )
    p.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="latency CDFs per transport (matplotlib)")
    p.add_argument("--url", help="benchmark a running server, e.g. http://127.0.0.1:8080")
    p.add_argument("--server-pid", type=int, help="with --url: measure this process's CPU")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --url")
    p.add_argument("--broker", help="passed to the server it starts (e.g. redis://127.0.0.1:6379)")
    p.add_argument("--workers", type=_positive(int), help="passed to the server it starts")
    p.add_argument(
        "--store",
        default="sqlite-temp",
        help="history store of the server it starts: 'sqlite-temp' (SQLite in a temporary "
        "directory, removed afterwards), or any --store value of the server, e.g. memory",
    )
    p.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for the server it starts (repeat), e.g. --server-arg=--store=...",
    )
    p.add_argument("--server-log", metavar="FILE", help="keep the started server's log here")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def default_procs() -> int:
    """Two on a 2-core box: the server needs a core, a third process only adds switching."""
    return max(2, min(4, (os.cpu_count() or 2) // 2))


def check_url(url: str, allow_remote: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SystemExit(f"--url must look like http://127.0.0.1:8080, not {url!r}")
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise SystemExit(f"refusing non-loopback host {host!r}; pass --allow-remote to insist")
    return url.rstrip("/")


# -- progress -----------------------------------------------------------------------
@dataclass
class Progress:
    quiet: bool = False

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


# -- the server --------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """In the server's child: get SIGTERM if the benchmark itself is killed."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def server_command(args: argparse.Namespace, port: int, tmp: str) -> list[str]:
    cmd = [sys.executable, "-m", "realtime", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--replay", "0", "--log-level", "WARNING"]
    store = f"sqlite:{tmp}/bench.db" if args.store == "sqlite-temp" else args.store
    cmd += ["--store", store]
    # Limits meant for the public must not throttle the benchmark's own clients.
    cmd += ["--rate-limit", "1000000/s", "--rate-burst", "1000000"]
    cmd += ["--max-connections-per-ip", "1000000"]
    if args.broker:
        cmd += ["--broker", args.broker]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    return cmd + list(args.server_arg)


def wait_healthy(base_url: str, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(base_url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no healthy server at {base_url} after {timeout:.0f}s")


@contextlib.contextmanager
def started_server(args: argparse.Namespace, progress: Progress) -> Iterator[tuple[str, int]]:
    """A `realtime` subprocess on a free loopback port; stopped on the way out."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="fanout-") as tmp:
        cmd = server_command(args, port, tmp)
        progress("starting server: " + " ".join(cmd[1:]))
        log_path = args.server_log or os.path.join(tmp, "server.log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
            try:
                wait_healthy(f"http://127.0.0.1:{port}", proc, SERVER_START_TIMEOUT)
                yield f"http://127.0.0.1:{port}", proc.pid
            finally:
                stop_process(proc)
                summarize_log(log_path, progress)


def summarize_log(path: str, progress: Progress) -> None:
    """The server logs at WARNING: say how much it said, and its last lines."""
    with open(path, errors="replace") as f:
        lines = f.read().splitlines()
    if lines:
        tail = "\n    ".join(line[:200] for line in lines[-3:])
        progress(f"server logged {len(lines)} lines ({path}); last:\n    {tail}")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# -- child processes ------------------------------------------------------------------
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

    @property
    def pid(self) -> int:
        return self.process.pid or 0


@dataclass
class Children:
    """Every process of one run; all are stopped when the run ends, however it ends."""

    ctx: Any = field(default_factory=lambda: mp.get_context("spawn"))
    started: list[Child] = field(default_factory=list)

    def start(self, name: str, target: Callable[..., None], job: Any) -> Child:
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


# -- one run ----------------------------------------------------------------------------
@dataclass
class Target:
    base_url: str
    server_pid: int | None


def open_stalled(base_url: str, room: str, transport: str, k: int) -> list[socket.socket]:
    """``k`` connections with a tiny receive buffer whose owner never reads."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    socks = []
    for i in range(k):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, port))
        path = f"/rooms/{room}/{'ws' if transport == 'ws' else 'events'}?user=stalled-{i}"
        key = secrets.token_urlsafe(16)[:22] + "=="
        upgrade = (
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            if transport == "ws"
            else "Accept: text/event-stream\r\n"
        )
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{upgrade}\r\n".encode())
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


def start_workers(
    children: Children, args: argparse.Namespace, target: Target, room: str, transport: str, n: int
) -> list[Child]:
    total = round(args.rate * args.duration)
    users = [f"s{i}" for i in range(n)]
    workers = []
    for index, part in enumerate(split(users, args.procs)):
        job = WorkerJob(
            index, target.base_url, room, transport, part, total, args.connect_timeout,
            lifetime(args), args.client,
        )  # fmt: skip
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
        w.conn.send(("status",))
    return sum(w.expect("status", 10) for w in workers)


@dataclass
class CpuClock:
    """CPU seconds of the server, the workers and the publisher at one instant."""

    wall: float
    server: float
    workers: list[float]
    publisher: float

    @classmethod
    def read(cls, server_pids: list[int], workers: list[Child], publisher: Child) -> CpuClock:
        return cls(
            time.monotonic(),
            total_cpu(server_pids),
            [total_cpu([w.pid]) for w in workers],
            total_cpu([publisher.pid]),
        )


def run_one(
    args: argparse.Namespace, target: Target, transport: str, n: int, say: Progress
) -> dict[str, Any]:
    room = f"fanout-{transport}-{n}-{secrets.token_hex(3)}"
    via = publish_via(args, transport)
    total = round(args.rate * args.duration)
    server_pids = with_descendants(target.server_pid) if target.server_pid else []
    children = Children()
    stalled: list[socket.socket] = []
    drops_before = slow_drops(target.base_url)
    try:
        say(f"{transport} N={n}: connecting {n} {args.client} subscribers over "
            f"{min(n, args.procs)} processes")  # fmt: skip
        t0 = time.monotonic()
        workers = start_workers(children, args, target, room, transport, n)
        ready = connect_all(workers, args)
        ready["connect_s"] = time.monotonic() - t0
        say(f"{transport} N={n}: {ready['ready']}/{n} live in {ready['connect_s']:.1f}s")
        if ready["failed"]:
            say(f"{transport} N={n}: connect errors {ready['errors']}")
        if args.stalled:
            stalled = open_stalled(target.base_url, room, transport, args.stalled)
            say(f"{transport} N={n}: {args.stalled} stalled subscribers connected, never reading")
        pjob = PublishJob(
            target.base_url, room, via, args.rate, total, args.payload_bytes,
            args.drain + 10, lifetime(args),
        )  # fmt: skip
        publisher = children.start("publisher", publisher_main, pjob)
        publisher.expect("ready", 30)
        quiet_pids = server_pids + [w.pid for w in workers] + [publisher.pid]
        settle = wait_quiet(quiet_pids, args.settle_max)
        say(f"{transport} N={n}: settled {settle:.1f}s; publishing {args.rate:g}/s via {via} "
            f"for {args.duration:g}s")  # fmt: skip
        live = count_live(workers)
        if live < ready["ready"]:
            say(f"{transport} N={n}: WARNING {ready['ready'] - live} subscribers were dropped "
                "before publishing (see drop_reasons)")  # fmt: skip
        c0 = CpuClock.read(server_pids, workers, publisher)
        publisher.conn.send(("go",))
        window = publisher.expect("sent", 3 * args.duration + 30)
        c1 = CpuClock.read(server_pids, workers, publisher)
        pub = publisher.expect("result", args.drain + 30)
        deadline = window[1] + int(args.drain * 1e9)
        expected = sum(pub["accepted"])
        say(f"{transport} N={n}: {expected}/{total} accepted; draining up to {args.drain:g}s")
        for w in workers:
            w.conn.send(("finish", expected, deadline))
        results = [w.expect("result", args.drain + 30) for w in workers]
        c2 = CpuClock.read(server_pids, workers, publisher)
    finally:
        children.stop()
        for sock in stalled:
            sock.close()
    run = summarize(args, transport, n, via, ready, pub, results, (c0, c1, c2))
    drops_after = slow_drops(target.base_url)
    run["stalled"] = args.stalled
    run["slow_consumers_dropped"] = (
        drops_after - drops_before if drops_before is not None and drops_after is not None else None
    )
    run["settle_s"] = settle
    run["live_at_start"] = live
    run["has_server_cpu"] = bool(server_pids)
    return run


# -- figures of a run -----------------------------------------------------------------
def _union(bitmaps: list[bytes], size: int) -> int:
    """How many seqs are set in any of these 0/1 byte maps."""
    acc = 0
    for bm in bitmaps:
        acc |= int.from_bytes(bm, "big")  # every byte is 0 or 1, so OR works bytewise
    return acc.to_bytes(size, "big").count(1)


def per_message(results: list[dict[str, Any]], total: int) -> tuple[list[int], list[int]]:
    """Per message: the latency of its first and of its last delivery, anywhere."""
    first = [NONE_YET] * total
    last = [-1] * total
    for r in results:
        first = list(map(min, first, memoryview(r["msg_first_ns"]).cast("q")))
        last = list(map(max, last, memoryview(r["msg_last_ns"]).cast("q")))
    return [v for v in first if v != NONE_YET], [v for v in last if v >= 0]


def summarize(
    args: argparse.Namespace,
    transport: str,
    n: int,
    via: str,
    ready: dict[str, Any],
    pub: dict[str, Any],
    results: list[dict[str, Any]],
    clocks: tuple[CpuClock, CpuClock, CpuClock],
) -> dict[str, Any]:
    subs = [s for r in results for s in r["subs"]]
    live = [s for s in subs if s["ready"]]
    total = len(pub["accepted"])
    expected = _union([pub["accepted"]] + [bm for r in results for bm in r["seen"]], total)
    delivered = sum(s["received"] for s in live)
    latencies: list[int] = []
    for r in results:
        latencies.extend(memoryview(r["latencies_ns"]).cast("q"))
    first, last = per_message(results, total)
    start_ns, end_ns = pub["window_ns"]
    last_ns = max((r["last_ns"] for r in results), default=0)
    c0, c1, c2 = clocks
    window = c1.wall - c0.wall
    dropped = Counter(s["closed"] for s in live if s["closed"])
    return {
        "transport": transport,
        "subscribers": n,
        "publish_via": via,
        "client": args.client,
        "rate": args.rate,
        "duration": args.duration,
        "payload_bytes": args.payload_bytes,
        "procs": len(results),
        **{f"connect_{k}": v for k, v in ready.items()},
        "published": total,
        "accepted": sum(pub["accepted"]),
        "publish_errors": pub["errors"],
        "publish_rate": total / max(1e-9, (end_ns - start_ns) / 1e9),
        "expected_per_subscriber": expected,
        "delivered": delivered,
        "lost": sum(expected - s["received"] for s in live),
        "duplicates": sum(s["duplicates"] for s in subs),
        "unknown": sum(s["unknown"] for s in subs),
        "dropped": sum(dropped.values()),
        "drop_reasons": dict(dropped.most_common(5)),
        "deliveries_per_s": delivered / max(1e-9, (last_ns - start_ns) / 1e9) if last_ns else 0.0,
        "window_s": window,
        "server_cores": (c1.server - c0.server) / window if c0.server or c1.server else None,
        "server_us_per_delivery": (
            (c2.server - c0.server) / delivered * 1e6 if delivered and c2.server else None
        ),
        "client_cores": (sum(c1.workers) - sum(c0.workers)) / window,
        "client_cores_per_process": [
            (b - a) / window for a, b in zip(c0.workers, c1.workers, strict=True)
        ],
        "publisher_cores": (c1.publisher - c0.publisher) / window,
        "latency": latency_summary(latencies),
        "first_delivery": latency_summary(first, cdf=False),
        "last_delivery": latency_summary(last, cdf=False),
    }


def say_result(run: dict[str, Any], say: Progress) -> None:
    lat = run["latency"]
    p50 = f"p50 {lat['p50_ms']:.2f}ms p99 {lat['p99_ms']:.2f}ms" if lat["count"] else "nothing"
    say(
        f"{run['transport']} N={run['subscribers']}: {p50}, lost {run['lost']}, "
        f"dup {run['duplicates']}, dropped {run['dropped']}, "
        f"last delivery of a message p50 {run['last_delivery'].get('p50_ms', 0):.2f}ms, "
        f"client {run['client_cores']:.2f} cores"
    )


# -- main ------------------------------------------------------------------------------
def environment(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "client_loop": loop,
        "client": args.client,
        "url": target.base_url,
        "started_server": args.url is None,
        "broker": args.broker or "memory",
        "store": args.store,
        "server_cwd": os.getcwd(),
        "server_workers": args.workers or 1,
        "argv": sys.argv[1:],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run_all(args: argparse.Namespace, target: Target, say: Progress) -> list[dict[str, Any]]:
    runs = []
    for transport in args.transports:
        for n in args.subscribers:
            run = run_one(args, target, transport, n, say)
            say_result(run, say)
            runs.append(run)
    return runs


def report(args: argparse.Namespace, target: Target, runs: list[dict[str, Any]]) -> None:
    for transport in args.transports:
        mine = [r for r in runs if r["transport"] == transport]
        if mine:
            print(format_table(transport, mine, mine[0]["publish_via"]))
            print()
    if target.server_pid is None:
        print("server CPU not measured: pass --server-pid with --url")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": environment(args, target), "runs": runs}, f, indent=1)
    if args.plot:
        plot_cdfs(runs, args.plot)


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.server_pid and not args.url:
        raise SystemExit("--server-pid only goes with --url")
    say = Progress(args.quiet)
    raise_fd_limit()
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        if args.url:
            base = check_url(args.url, args.allow_remote)
            wait_healthy(base, None, 5)
            target = Target(base, args.server_pid)
            runs = run_all(args, target, say)
        else:
            with started_server(args, say) as (base, pid):
                target = Target(base, pid)
                runs = run_all(args, target, say)
    except KeyboardInterrupt:
        print("interrupted; processes stopped", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError) as exc:
        print(f"fanout: {exc}", file=sys.stderr)
        return 1
    report(args, target, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
