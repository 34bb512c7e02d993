"""Fan-out latency of `realtime` per transport: N subscribers, one publisher.

    python -m benchmarks.fanout                         # starts its own servers
    python -m benchmarks.fanout --subscribers 1000 --rate 100 --json out.json
    python -m benchmarks.fanout --url http://127.0.0.1:8080 --server-pid 1234

(``python benchmarks/fanout.py`` is the same in the project's venv, whose
editable install puts the checkout on the import path.) For each transport and
each N it starts a fresh server and connects N subscribers to a fresh room,
spread over worker processes, waits until every one is live, publishes
``--rate`` messages/s for ``--duration`` seconds from a separate publisher
process, and drains for at most ``--drain`` seconds. Latency is the
subscriber's ``time.monotonic_ns()`` at receipt minus the publisher's, stamped
into the text (CLOCK_MONOTONIC is one clock for every process on Linux).
See benchmarks/README.md for how to read the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks import servers
from benchmarks.compare import comparisons
from benchmarks.dialect import REALTIME
from benchmarks.fanout_report import format_table, plot_cdfs
from benchmarks.figures import say_result
from benchmarks.run import run_one
from benchmarks.servers import Target
from realtime.server import raise_fd_limit

STARTED = time.monotonic()


# -- command line ---------------------------------------------------------------------
def _int_list(raw: str) -> list[int]:
    values = [int(v) for v in raw.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected positive integers, comma-separated")
    return values


def _transports(raw: str) -> list[str]:
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if not values or set(values) - {"ws", "sse", "poll"}:
        raise argparse.ArgumentTypeError("expected some of ws,sse,poll")
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
        description="Fan-out latency and CPU of realtime over WebSocket, SSE and long-polling.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--transports", type=_transports, default=["ws", "sse"], help="some of ws,sse,poll"
    )
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
    p.add_argument("--repeat", type=_positive(int), default=1, help="runs of every transport and N")
    p.add_argument(
        "--peer",
        choices=servers.PEERS,
        help="also run the same plan against this reference server (a fresh one per run, "
        "alternating with realtime) and print realtime/peer ratios; needs --peer-path",
    )
    p.add_argument(
        "--peer-path",
        metavar="PATH",
        help="bun: a copy of the Bun + Hono directory after 'npm install'; "
        "python: a script that serves the peer's routes, run as SCRIPT PORT [--uvloop]",
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


# -- progress -----------------------------------------------------------------------
@dataclass
class Progress:
    quiet: bool = False

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


# -- main ------------------------------------------------------------------------------
def environment(args: argparse.Namespace) -> dict[str, Any]:
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
        "url": args.url,
        "started_server": args.url is None,
        "broker": args.broker or "memory",
        "store": args.store,
        "server_cwd": os.getcwd(),
        "server_workers": args.workers or 1,
        "argv": sys.argv[1:],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run_all(args: argparse.Namespace, say: Progress) -> list[dict[str, Any]]:
    """Every transport and N, ``--repeat`` times, realtime and the peer taking turns.

    A fresh server for each run, unless ``--url`` names one.
    """
    kinds = ["realtime", args.peer] if args.peer else ["realtime"]
    runs = []
    for transport in args.transports:
        for n in args.subscribers:
            for _ in range(args.repeat):
                for kind in kinds:
                    if args.url:
                        target = Target("realtime", args.url, args.server_pid, REALTIME)
                        run = run_one(args, target, transport, n, say)
                    else:
                        with servers.started(kind, args, say) as target:
                            run = run_one(args, target, transport, n, say)
                    say_result(run, say)
                    runs.append(run)
    return runs


def report(args: argparse.Namespace, runs: list[dict[str, Any]]) -> None:
    for server in dict.fromkeys(r["server"] for r in runs):
        for transport in args.transports:
            mine = [r for r in runs if r["transport"] == transport and r["server"] == server]
            if mine:
                label = transport if server == "realtime" else f"{transport} on {server}"
                print(format_table(label, mine, mine[0]["publish_via"]))
                print()
    if args.peer:
        print(comparisons(runs, args.peer))
        print()
    if args.url and args.server_pid is None:
        print("server CPU not measured: pass --server-pid with --url")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": environment(args), "runs": runs}, f, indent=1)
    if args.plot:
        plot_cdfs(runs, args.plot)


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.server_pid and not args.url:
        raise SystemExit("--server-pid only goes with --url")
    if args.peer and (args.url or not args.peer_path or "poll" in args.transports):
        raise SystemExit("--peer needs --peer-path, no --url, and serves ws and sse only")
    say = Progress(args.quiet)
    raise_fd_limit()
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        if args.url:
            args.url = servers.check_url(args.url, args.allow_remote)
            servers.wait_healthy(args.url + REALTIME.health_path, None, 5)
        runs = run_all(args, say)
    except KeyboardInterrupt:
        print("interrupted; processes stopped", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError) as exc:
        print(f"fanout: {exc}", file=sys.stderr)
        return 1
    report(args, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
