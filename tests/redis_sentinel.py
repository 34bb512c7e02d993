"""A real Sentinel setup on loopback ports: a master, its replica, three sentinels.

The sentinels mark a master down after one second without an answer, so a
killed master's replica is promoted within a few seconds. One setup serves a
whole test module (the ``redis_sentinel`` fixture); a test that kills the
master brings the old one back as a replica (:meth:`LocalSentinel.restore`).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from realtime.workers import free_port

from .redis_cluster import admin
from .redis_server import REDIS_SERVER, RedisServer, spawn_answering, stop, wait_until

SERVICE = "rt"
DOWN_AFTER_MS = 1000
SENTINEL_BIN = shutil.which("redis-sentinel")


class SentinelProcess:
    """One sentinel: ``redis-sentinel CONF`` (or ``redis-server CONF --sentinel``)."""

    def __init__(self, workdir: Path, master_port: int, quorum: int) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.conf = workdir / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            "daemonize no\n"
            f'dir "{workdir}"\n'
            f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} {quorum}\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        if SENTINEL_BIN:
            args = [SENTINEL_BIN, str(self.conf)]
        else:
            args = [REDIS_SERVER, str(self.conf), "--sentinel"]
        self.proc = spawn_answering(args, self.port, timeout)
        if self.proc is None:
            raise RuntimeError(f"sentinel did not start on port {self.port}")

    def kill(self) -> None:
        stop(self.proc)
        self.proc = None


class LocalSentinel:
    def __init__(self, workdir: Path, *, replicas: int = 1, sentinels: int = 3) -> None:
        self.workdir = workdir
        self.replica_count = replicas
        self.sentinel_count = sentinels
        self.servers: list[RedisServer] = []
        self.sentinels: list[SentinelProcess] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis-sentinel://{hosts}/{SERVICE}"

    def start(self, timeout: float = 20.0) -> None:
        for i in range(1 + self.replica_count):
            home = self.workdir / f"redis-{i}"
            home.mkdir(parents=True, exist_ok=True)
            server = RedisServer(home)
            if i == 0:
                server.start()
            else:
                server.extra = ["--replicaof", "127.0.0.1", str(self.servers[0].port)]
                server.start()
            self.servers.append(server)
        quorum = self.sentinel_count // 2 + 1
        for i in range(self.sentinel_count):
            home = self.workdir / f"sentinel-{i}"
            home.mkdir(parents=True, exist_ok=True)
            sentinel = SentinelProcess(home, self.servers[0].port, quorum)
            self.sentinels.append(sentinel)
            sentinel.start()
        self.wait_ok(timeout)

    def stop(self) -> None:
        for s in self.sentinels:
            s.kill()
        for r in self.servers:
            r.kill()

    def server(self, port: int) -> RedisServer:
        return next(s for s in self.servers if s.port == port)

    def master(self) -> RedisServer:
        """The master as the first answering sentinel names it."""
        for s in self.sentinels:
            if s.proc is None:
                continue
            try:
                with admin(s.port) as r:
                    _, port = r.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                return self.server(int(port))
            except (redis.RedisError, OSError, TypeError):
                continue
        raise LookupError("no sentinel answers")

    def healthy(self) -> bool:
        """Every sentinel knows the others and every replica; replicas are linked."""
        try:
            master = self.master()
            if not master.alive:
                return False
            for s in self.sentinels:
                with admin(s.port) as r:
                    info = r.sentinel_master(SERVICE)
                    replicas = r.sentinel_slaves(SERVICE)
                if info["port"] != master.port or info["is_sdown"] or info["is_odown"]:
                    return False
                if info["num-other-sentinels"] < self.sentinel_count - 1:
                    return False
                if info["num-slaves"] < self.replica_count:
                    return False
                for rep in replicas:
                    if rep["is_sdown"] or rep.get("master-link-status") != "ok":
                        return False
            with admin(master.port) as r:
                repl = r.info("replication")
            return (
                repl.get("role") == "master"
                and int(repl.get("connected_slaves", 0)) >= self.replica_count
            )
        except (redis.RedisError, OSError, LookupError, KeyError, ValueError):
            return False

    def wait_ok(self, timeout: float = 20.0) -> None:
        wait_until(self.healthy, timeout, "the Sentinel setup")

    def wait_failover(self, old_master: RedisServer, timeout: float = 15.0) -> float:
        """Seconds until the sentinels name a master other than ``old_master``."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                new = self.master()
                if new.port != old_master.port:
                    return time.monotonic() - started
            except LookupError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"no failover within {timeout}s")

    def restore(self, timeout: float = 40.0) -> None:
        """Start every killed server again (the sentinels make it a replica); wait for health.

        On a loaded machine the sentinels (down after 1 s) may fail over once
        more meanwhile, and settling again takes longer than a first start:
        hence the longer wait, and never a dead server as the master to copy.
        """
        master = self.master()
        if not master.alive:
            self.wait_failover(master)
            master = self.master()
        for r in self.servers:
            if not r.alive:
                # Start it as a replica of the current master at once rather
                # than wait up to 10 s for the sentinels to reconfigure it.
                r.extra = ["--replicaof", "127.0.0.1", str(master.port)]
                r.start()
        self.wait_ok(timeout)


@pytest.fixture(scope="module")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSentinel]:
    setup = LocalSentinel(tmp_path_factory.mktemp("sentinel"))
    try:
        setup.start()
        yield setup
    finally:
        setup.stop()
