"""``python -m realtime``: parse settings, set up logging, serve (one
process, or ``--workers N``); ``python -m realtime token …`` mints a token,
``python -m realtime publish ROOM TEXT`` publishes through the server API."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from . import api_client, logs
from .client import cli as client_cli
from .policy import tokens
from .server import serve
from .settings import load
from .workers import check_workers, run_workers


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["token"]:
        secret = load([]).secret  # REALTIME_SECRET, unless --secret is given
        raise SystemExit(tokens.cli(args[1:], secret))
    if args[:1] in (["listen"], ["send"]):
        raise SystemExit(client_cli.main(args))
    if args[:1] == ["publish"]:  # python -m realtime publish ROOM TEXT
        raise SystemExit(api_client.cli(args[1:], load([]).api_key))
    settings = load(args)
    logs.setup(settings.log_level, settings.log_format)
    check_workers(settings)
    if settings.workers > 1:
        raise SystemExit(run_workers(settings))
    serve(settings)


if __name__ == "__main__":
    main()
