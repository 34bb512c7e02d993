"""``python -m realtime listen ROOM`` and ``python -m realtime send ROOM TEXT``:
a terminal client on :mod:`realtime.client`.

``listen`` prints one line per event as it arrives (``[17] ana: hi``, ``*``
for presence, ``!`` for gaps and errors, or the raw JSON with ``--json``) and
keeps resuming across drops; Ctrl-C stops it with exit code 0. ``send``
prints the stored message's id.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Sequence

import aiohttp

from .client import Client
from .errors import ClientError
from .events import Event, Gap, Message, Presence
from .subscription import TRANSPORTS

DEFAULT_URL = "http://127.0.0.1:8080"


def format_event(event: Event) -> str:
    if isinstance(event, Message):
        return f"[{event.id}] {event.user}: {event.text}"
    if isinstance(event, Presence):
        verb = {"join": "joined", "leave": "left"}.get(event.event, event.event)
        return f"* {event.user} {verb} ({event.transport}), {event.count} here"
    if isinstance(event, Gap):
        return f"! gap: {event.detail}"
    return f"! error {event.code}: {event.detail}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m realtime", description="A terminal client of a realtime server."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listen = commands.add_parser(
        "listen", help="print a room's events as they arrive (Ctrl-C stops)"
    )
    listen.add_argument("room")
    listen.add_argument("--transport", choices=TRANSPORTS, default="ws")
    listen.add_argument("--since", help="resume after this message id")
    listen.add_argument("--json", action="store_true", help="print each event as raw JSON")
    send = commands.add_parser("send", help="send a message and print its id")
    send.add_argument("room")
    send.add_argument("text")
    for sub in (listen, send):
        sub.add_argument(
            "--url",
            default=os.environ.get("REALTIME_URL", DEFAULT_URL),
            help=f"the server (default {DEFAULT_URL}) [REALTIME_URL]",
        )
        sub.add_argument("--user", help="user name in public rooms")
        sub.add_argument(
            "--token",
            default=os.environ.get("REALTIME_TOKEN"),
            help="token for private rooms [REALTIME_TOKEN]",
        )
    return parser


async def listen(args: argparse.Namespace) -> int:
    async with (
        Client(args.url, user=args.user, token=args.token) as client,
        client.subscribe(args.room, transport=args.transport, since=args.since) as sub,
    ):
        async for event in sub:
            line = json.dumps(event.to_dict(), ensure_ascii=False) if args.json else None
            print(line or format_event(event), flush=True)
    return 0


async def send(args: argparse.Namespace) -> int:
    async with Client(args.url, user=args.user, token=args.token) as client:
        msg = await client.send(args.room, args.text)
    print(msg.id, flush=True)
    return 0


def main(argv: Sequence[str]) -> int:
    """Run ``listen`` or ``send``; ``argv`` starts with the subcommand."""
    args = build_parser().parse_args(list(argv))
    command = listen if args.command == "listen" else send
    try:
        return asyncio.run(command(args))
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # e.g. `| head`: the reader is gone, so are we
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ClientError, aiohttp.ClientError, OSError, ValueError) as exc:
        print(f"realtime {args.command}: {exc}", file=sys.stderr)
        return 1
