"""Log lines: key=value text by default, JSON objects with --log-format json."""

from __future__ import annotations

import json
import logging

import pytest

from realtime import logs


@pytest.fixture(autouse=True)
def restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("INFO", "json")
    log = logging.getLogger("realtime.conn")
    logs.event(log, "connect", conn="ab12cd", transport="ws", room="lobby", user="ana b")
    log.info("plain %s", "text")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["event"] == "connect" and lines[0]["user"] == "ana b"
    assert lines[0]["transport"] == "ws" and lines[0]["level"] == "info"
    assert lines[1]["msg"] == "plain text"


def test_text_lines(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("INFO", "text")
    logs.event(logging.getLogger("realtime.conn"), "disconnect", conn="x", user="ana b", code=1001)
    line = capsys.readouterr().err.strip()
    assert line.endswith('disconnect conn=x user="ana b" code=1001')
