"""``--redis-wait N``: the append script, then ``WAIT N`` on the same connection.

``WAIT`` counts the replicas that have every write made *on its
connection* so far, so it must follow the script on the connection that ran
it: a pipeline on a server or Sentinel master, and on the room's own master
in a cluster (a cluster client would send a key-less ``WAIT`` to every
master). A script Redis does not know yet (``NOSCRIPT``) or a slot that
moved (``MOVED``/``ASK``) ran nothing, so those are retried once; anything
else is not, since the message may be stored.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import PipelineCommand
from redis.exceptions import AskError, MovedError, NoScriptError

from ...core.ports import BrokerUnavailable
from .connection import RedisConnection
from .keys import PUBLISH_LUA


class NotReplicated(BrokerUnavailable):
    """Stored on the master, but fewer replicas than asked confirmed it in time."""


class ReplicatedAppend:
    def __init__(
        self,
        conn: RedisConnection,
        sha: str,
        replicas: int,
        timeout: float,
        source: str = PUBLISH_LUA,
    ) -> None:
        self.conn = conn
        self.sha = sha
        self.source = source  # the script, to load where Redis does not know it
        self.replicas = replicas
        self.timeout_ms = max(1, round(timeout * 1000))
        self._stale = False  # the cluster's slot map may be out of date

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        """Run the script, wait for replicas; what it returned (the new entry
        id), or an exception."""
        for attempt in range(2):
            stored, acks = await self._run(keys, args)
            retry = isinstance(stored, NoScriptError | MovedError | AskError) and attempt == 0
            if not retry:
                break
            if isinstance(stored, NoScriptError):
                await self._load(keys[0])
            else:
                self._stale = True
        if isinstance(stored, Exception):
            raise BrokerUnavailable(f"Redis publish failed: {stored}")
        if isinstance(acks, Exception) or int(acks) < self.replicas:
            raise NotReplicated(
                f"message {stored} stored on the Redis master but confirmed by "
                f"{acks if not isinstance(acks, Exception) else 0} of {self.replicas} "
                f"replicas within {self.timeout_ms} ms; it may still be delivered"
            )
        return stored

    async def _run(self, keys: list[str], args: list[Any]) -> tuple[Any, Any]:
        script = ("EVALSHA", self.sha, len(keys), *keys, *args)
        wait = ("WAIT", self.replicas, self.timeout_ms)
        if not self.conn.sharded:
            pipe = self.conn.redis.pipeline(transaction=False)
            pipe.execute_command(*script)
            pipe.execute_command(*wait)
            stored, acks = await pipe.execute(raise_on_error=False)
            return stored, acks
        if self._stale:
            await self.conn.refresh_topology()
            self._stale = False
        node = self.conn.owner(keys[0])
        commands = [PipelineCommand(0, *script), PipelineCommand(1, *wait)]
        try:
            await node.execute_pipeline(commands)
        except BaseException:
            self._stale = True  # the node may be gone: look again next time
            raise
        return commands[0].result, commands[1].result

    async def _load(self, key: str) -> None:
        if self.conn.sharded:
            await self.conn.owner(key).execute_command("SCRIPT", "LOAD", self.source)
        else:
            await self.conn.redis.script_load(self.source)
