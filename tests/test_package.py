"""The package's top level: the server loads on first use, not on import."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_client_does_not_load_the_server() -> None:
    code = (
        "import sys, realtime.client\n"
        "print(sorted(m for m in ('aiohttp.web', 'realtime.app', 'realtime.core.hub')"
        " if m in sys.modules))\n"
        "from realtime import Settings, create_app\n"
        "print(callable(create_app), Settings().port)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "True 8080"
