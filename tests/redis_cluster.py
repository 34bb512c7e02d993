"""A real Redis Cluster on loopback ports: 3 masters, each with a replica.

Six ``redis-server --cluster-enabled yes`` processes joined by
``redis-cli --cluster create``; a node timeout of one second, so a killed
master's replica takes over within a few seconds. One cluster serves a whole
test module (the ``redis_cluster`` fixture); tests use their own room names,
and a test that kills a node brings it back (:meth:`LocalCluster.restore`).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from realtime.workers import free_port

from .redis_server import RedisServer, wait_until

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
NODE_TIMEOUT_MS = 1000
BUS_OFFSET = 10000  # Redis Cluster's bus port is the client port + 10000


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free as well."""
    for _ in range(200):
        port = free_port()
        if port + BUS_OFFSET > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + BUS_OFFSET))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def admin(port: int) -> redis.Redis:
    """A short-lived plain client of one node (never follows redirects)."""
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        decode_responses=True,
        socket_timeout=1.0,
        socket_connect_timeout=0.5,
    )


def query(port: int, *args: str) -> object:
    with admin(port) as r:
        return r.execute_command(*args)


class LocalCluster:
    def __init__(self, workdir: Path, *, masters: int = 3, replicas: int = 1) -> None:
        self.workdir = workdir
        self.masters = masters
        self.replicas = replicas
        self.nodes: list[RedisServer] = []

    @property
    def seeds(self) -> list[int]:
        return [n.port for n in self.nodes[: self.masters]]

    @property
    def url(self) -> str:
        return "redis-cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.seeds)

    def node(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def start(self, timeout: float = 20.0) -> None:
        count = self.masters * (1 + self.replicas)
        for i in range(count):
            port = free_cluster_port()
            home = self.workdir / f"node-{i}"
            home.mkdir(parents=True, exist_ok=True)
            extra = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            extra += ["--cluster-node-timeout", str(NODE_TIMEOUT_MS)]
            # A replica may take over however long it was cut off.
            extra += ["--cluster-replica-validity-factor", "0"]
            node = RedisServer(home, extra=extra, port=port)
            self.nodes.append(node)
            node.start()
        create = [REDIS_CLI, "--cluster", "create"]
        create += [f"127.0.0.1:{n.port}" for n in self.nodes]
        create += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        out = subprocess.run(create, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{out.stdout}{out.stderr}")
        self.wait_ok(timeout)

    def stop(self) -> None:
        for n in self.nodes:
            n.kill()

    # -- topology -------------------------------------------------------
    def _any_alive(self) -> int:
        return next(n.port for n in self.nodes if n.alive)

    def slot(self, key: str) -> int:
        return int(query(self._any_alive(), "CLUSTER", "KEYSLOT", key))  # type: ignore[call-overload]

    def master_of(self, key: str) -> RedisServer:
        """The node serving ``key``'s slot, as a live node sees it."""
        slot = self.slot(key)
        with admin(self._any_alive()) as r:
            for start, end, master, *_ in r.execute_command("CLUSTER SLOTS"):
                if int(start) <= slot <= int(end):
                    return self.node(int(master[1]))
        raise LookupError(f"slot {slot} is not served")

    def master_ports(self, port: int | None = None) -> set[int]:
        """The masters serving slots, as the node on ``port`` (or any live one) sees them."""
        with admin(port or self._any_alive()) as r:
            return {int(m[1]) for _, _, m, *_ in r.execute_command("CLUSTER SLOTS")}

    def healthy(self) -> bool:
        """Every live node: cluster ok; every master has its replicas linked."""
        try:
            for n in self.nodes:
                if not n.alive:
                    return False
                info = str(query(n.port, "CLUSTER", "INFO"))
                if "cluster_state:ok" not in info:
                    return False
            views = [self.master_ports(n.port) for n in self.nodes]
            if len(views[0]) != self.masters or any(v != views[0] for v in views):
                return False
            for port in views[0]:
                with admin(port) as r:
                    repl = r.info("replication")
                if repl.get("role") != "master" or repl.get("connected_slaves", 0) < self.replicas:
                    return False
                for i in range(self.replicas):
                    if repl.get(f"slave{i}", {}).get("state") != "online":
                        return False
        except (redis.RedisError, OSError, StopIteration):
            return False
        return True

    def wait_ok(self, timeout: float = 20.0) -> None:
        wait_until(self.healthy, timeout, "the Redis Cluster")

    def wait_failover(self, old_master: RedisServer, key: str, timeout: float = 15.0) -> float:
        """Seconds until ``key``'s slot is served by a master other than ``old_master``."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if self.master_of(key).port != old_master.port:
                    return time.monotonic() - started
            except (redis.RedisError, OSError, LookupError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"no failover of {key!r} within {timeout}s")

    def restore(self, timeout: float = 20.0) -> None:
        """Start every killed node again (it rejoins as a replica) and wait for health."""
        for n in self.nodes:
            if not n.alive:
                n.start()
        self.wait_ok(timeout)

    def node_id(self, port: int) -> str:
        return str(query(port, "CLUSTER", "MYID"))

    def move_slot(self, key: str, to: RedisServer) -> None:
        """Migrate ``key``'s slot (and its keys) to the master ``to``, as resharding does."""
        slot = self.slot(key)
        source = self.master_of(key)
        src_id, dst_id = self.node_id(source.port), self.node_id(to.port)
        query(to.port, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", src_id)
        query(source.port, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", dst_id)
        while True:
            keys = query(source.port, "CLUSTER", "GETKEYSINSLOT", str(slot), "100")
            if not keys:
                break
            assert isinstance(keys, list)
            query(source.port, "MIGRATE", "127.0.0.1", str(to.port), "", "0", "5000", "KEYS", *keys)
        for port in (to.port, source.port):
            query(port, "CLUSTER", "SETSLOT", str(slot), "NODE", dst_id)
        for port in self.master_ports(to.port) - {to.port, source.port}:
            query(port, "CLUSTER", "SETSLOT", str(slot), "NODE", dst_id)

    def flush(self) -> None:
        for port in self.master_ports():
            query(port, "FLUSHALL")


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
