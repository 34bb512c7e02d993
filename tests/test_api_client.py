"""``python -m realtime publish ROOM TEXT``: the command line's way to notify."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys

from realtime import api_client

from .api_helpers import KEY, Client, api, call, make_api

__all__ = ["api", "make_api"]


def base(client: Client) -> str:
    return f"http://{client.host}:{client.port}"


async def run_cli(argv: list[str], key: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                return api_client.cli(argv, key)
            except SystemExit as exc:
                return int(exc.code or 0)

    code = await asyncio.to_thread(run)
    return code, out.getvalue(), err.getvalue()


async def test_publish_to_one_and_several_rooms(api: Client) -> None:
    code, out, _ = await run_cli(["news", "hello", "--url", base(api), "--api-key", KEY])
    assert code == 0 and '"id": "1"' in out
    code, _, _ = await run_cli(["a,b", "both", "--url", base(api), "--user", "cron"], KEY)
    assert code == 0
    for room in ("a", "b"):
        data = await call(api, "GET", f"/api/rooms/{room}/history")
        assert [(m["user"], m["text"]) for m in data["messages"]] == [("cron", "both")]


async def test_idempotency_key_and_failures_set_the_exit_code(api: Client) -> None:
    url = ["--url", base(api), "--api-key", KEY]
    for _ in range(2):
        assert (await run_cli(["r", "once", "--idempotency-key", "k", *url]))[0] == 0
    data = await call(api, "GET", "/api/rooms/r/history")
    assert len(data["messages"]) == 1
    code, out, _ = await run_cli(["ok,bad room", "x", *url])
    assert code == 1 and "bad_room" in out
    code, out, _ = await run_cli(["r", "x", "--url", base(api), "--api-key", "wrong"])
    assert code == 2 and "bad_api_key" in out
    code, _, err = await run_cli(["r", "x", "--url", base(api)])
    assert code == 2 and "REALTIME_API_KEY" in err


async def test_the_module_command_reads_the_key_from_the_environment(api: Client) -> None:
    env = {**os.environ, "REALTIME_API_KEY": KEY}
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "realtime", "publish", "lobby", "from cron", "--url", base(api)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    data = await call(api, "GET", "/api/rooms/lobby/history")
    assert [m["text"] for m in data["messages"]] == ["from cron"]
