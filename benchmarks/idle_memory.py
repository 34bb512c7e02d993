"""Server memory per idle connection, WebSocket and SSE.

Starts ``python -m realtime`` on a free loopback port, opens N idle
connections (half WebSocket, half SSE) from two client processes, waits
until ``GET /rooms`` counts all of them, and reads the server's resident
memory (``VmRSS`` in ``/proc/PID/status``) before and after. Prints KB per
connection, then closes everything and stops the server. Bounded: every
phase has a timeout, and the whole run gives up after ``--timeout`` seconds.

    .venv/bin/python -m benchmarks.idle_memory            # 10,000 connections
    .venv/bin/python -m benchmarks.idle_memory -n 2000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from realtime.server import raise_fd_limit
from realtime.workers import free_port

ROOM = "idle"
# Members per room. Every join sends the room's member list to every member,
# so one room of N costs O(N^2) bytes of presence; small rooms keep that
# traffic (which nobody here reads) from dominating or filling buffers.
ROOM_SIZE = 20


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def members(base: str) -> dict[str, int]:
    counts = {"ws": 0, "sse": 0}
    url: str | None = f"{base}/rooms?limit=1000"
    while url is not None:  # GET /rooms answers a page at a time
        page = get_json(url)
        for room in page["rooms"]:
            if room["room"].startswith(ROOM):
                for kind in counts:
                    counts[kind] += room["members"][kind]
        url = f"{base}/rooms?limit=1000&cursor={page['next']}" if page["next"] else None
    return counts


# -- client processes ---------------------------------------------------
async def hold(base: str, ws_count: int, sse_count: int, pipe: Connection, first: int) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        sem = asyncio.Semaphore(200)  # connects under way at once
        conns: list[Any] = []
        failed = 0

        async def open_ws(i: int) -> None:
            nonlocal failed
            async with sem:
                try:
                    room = f"{ROOM}-{(first + i) // ROOM_SIZE}"
                    ws = await http.ws_connect(f"{base}/rooms/{room}/ws?user=w{i}", heartbeat=None)
                    conns.append(ws)
                except Exception:
                    failed += 1

        async def open_sse(i: int) -> None:
            nonlocal failed
            async with sem:
                try:
                    room = f"{ROOM}-{(first + ws_count + i) // ROOM_SIZE}"
                    resp = await http.get(f"{base}/rooms/{room}/events?user=s{i}")
                    if resp.status != 200:
                        raise RuntimeError(resp.status)
                    conns.append(resp)
                except Exception:
                    failed += 1

        await asyncio.gather(
            *(open_ws(i) for i in range(ws_count)), *(open_sse(i) for i in range(sse_count))
        )
        pipe.send({"opened": len(conns), "failed": failed})
        # Idle: nobody reads. Presence events pile up in kernel buffers only.
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        for c in conns:
            if isinstance(c, aiohttp.ClientWebSocketResponse):
                await c.close()
            else:
                c.close()


def client_main(base: str, ws_count: int, sse_count: int, pipe: Connection, first: int) -> None:
    raise_fd_limit()
    asyncio.run(hold(base, ws_count, sse_count, pipe, first))


# -- controller ---------------------------------------------------------
def wait_until(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def run(n: int, clients: int, timeout: float) -> dict[str, Any]:
    limit = raise_fd_limit()
    if n // clients + 100 > limit:
        raise SystemExit(f"RLIMIT_NOFILE limit {limit} is too low for {n // clients}")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "REALTIME_MAX_CONNECTIONS_PER_IP": str(n + 100),
            "REALTIME_LOG_LEVEL": "WARNING",
            "REALTIME_STORE": "memory",
            "REALTIME_REPLAY": "0",
        }
        server = subprocess.Popen(
            [sys.executable, "-c", PRELUDE, "--port", str(port)],
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
        )
        procs: list[BaseProcess] = []
        pipes: list[Connection] = []
        try:
            wait_until(lambda: get_json(f"{base}/healthz")["status"] == "ok", 20, "the server")
            get_json(f"{base}/rooms")  # warm the routes up before measuring
            time.sleep(0.5)
            before = rss_kb(server.pid)
            ctx = multiprocessing.get_context("spawn")
            per = n // clients
            for k in range(clients):
                mine, theirs = ctx.Pipe()
                args = (base, per // 2, per - per // 2, theirs, k * per)
                proc = ctx.Process(target=client_main, args=args)
                proc.start()
                procs.append(proc)
                pipes.append(mine)
            opened = failed = 0
            for pipe in pipes:
                left = max(1.0, timeout - (time.monotonic() - started))
                if not pipe.poll(left):
                    raise TimeoutError("clients did not finish connecting")
                report = pipe.recv()
                opened += report["opened"]
                failed += report["failed"]
            total = per * clients
            wait_until(lambda: sum(members(base).values()) >= opened, 60, "all members")
            time.sleep(1.0)  # let presence traffic settle
            counts = members(base)
            after = rss_kb(server.pid)
            result = {
                "connections": sum(counts.values()),
                "ws": counts["ws"],
                "sse": counts["sse"],
                "asked": total,
                "failed": failed,
                "rss_before_kb": before,
                "rss_after_kb": after,
                "kb_per_connection": round((after - before) / max(1, sum(counts.values())), 1),
                "seconds": round(time.monotonic() - started, 1),
            }
            for pipe in pipes:
                pipe.send("close")
            return result
        finally:
            for child in procs:
                child.join(timeout=10)
                if child.is_alive():
                    child.kill()
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


# The server process raises its own file limit before it starts.
PRELUDE = (
    "import resource, sys\n"
    "s, h = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))\n"
    "from realtime.__main__ import main\n"
    "sys.argv[0] = 'realtime'\n"
    "sys.exit(main())\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="connections (half WS, half SSE)")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--timeout", type=float, default=180.0, help="give up after seconds")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    result = run(args.n, args.clients, args.timeout)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{result['connections']} idle connections ({result['ws']} WebSocket, "
        f"{result['sse']} SSE; {result['failed']} failed to open) in {result['seconds']} s\n"
        f"server RSS {result['rss_before_kb']} KB -> {result['rss_after_kb']} KB: "
        f"{result['kb_per_connection']} KB per connection"
    )


if __name__ == "__main__":
    main()
