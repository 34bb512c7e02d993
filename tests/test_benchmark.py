"""A short run of benchmarks/fanout.py: every message reaches every subscriber once.

No timing thresholds: speed is what the benchmark reports, not what a test asserts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "fanout.py"


def test_fanout_smoke_run_delivers_everything(tmp_path: Path) -> None:
    out = tmp_path / "fanout.json"
    args = ["--subscribers", "5", "--duration", "1", "--rate", "20", "--drain", "3"]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = json.loads(out.read_text())["runs"]
    assert {r["transport"] for r in runs} == {"ws", "sse"}
    for run in runs:
        label = f"{run['transport']}: {run}"
        assert run["publish_via"] == ("ws" if run["transport"] == "ws" else "post")
        assert run["accepted"] == run["published"] == 20, label
        assert run["connect_ready"] == run["live_at_start"] == 5, label
        assert run["delivered"] == 5 * 20, label
        assert run["lost"] == 0 and run["duplicates"] == 0 and run["dropped"] == 0, label
        assert run["deliveries_per_s"] > 0, label
        lat = run["latency"]
        assert lat["count"] == 100, label
        assert 0 < lat["min_ms"] <= lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"], label
        assert lat["max_ms"] < 60_000, label  # a stamp from this run, not garbage
        first, last = run["first_delivery"], run["last_delivery"]
        assert first["count"] == last["count"] == 20, label
        assert first["p50_ms"] <= last["p50_ms"] <= lat["max_ms"], label
    assert "p99.9" in proc.stdout  # the table was printed


def test_fanout_refuses_a_remote_url() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--url", "http://192.0.2.1:8080"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    assert "--allow-remote" in proc.stderr
