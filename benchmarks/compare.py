"""``realtime`` beside a reference peer: medians of alternated runs, and their ratios.

One table per transport, N and rate: every figure's median over the runs of
each server, then realtime / peer (below 1: realtime uses less, or waits
less; above 1 for deliveries in time: realtime delivers more). The client's
CPU stands beside the figures, since on a small machine a busy client
inflates every latency it reports.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from benchmarks.fanout_report import figure

FIGURES: list[tuple[str, str, str]] = [
    # label, key (as fanout_report.figure reads it), format
    ("server cores", "server_cores", "{:.3f}"),
    ("  user", "server_user_cores", "{:.3f}"),
    ("  kernel", "server_kernel_cores", "{:.3f}"),
    ("server µs per delivery", "server_us_per_delivery", "{:.2f}"),
    ("  user", "server_user_us_per_delivery", "{:.2f}"),
    ("  kernel", "server_kernel_us_per_delivery", "{:.2f}"),
    ("p50 ms", "p50_ms", "{:.1f}"),
    ("p99 ms", "p99_ms", "{:.1f}"),
    ("delivered in time /s", "in_window_per_s", "{:.0f}"),
    ("delivered in time", "in_window_fraction", "{:.4f}"),
    ("lost", "lost", "{:.0f}"),
    ("client cores", "client_cores", "{:.3f}"),
    ("publisher cores", "publisher_cores", "{:.3f}"),
]

Cell = tuple[str, int, float, str]  # transport, N, rate, client


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Per figure, the median over the runs that have it."""
    out: dict[str, float] = {}
    for _, key, _ in FIGURES:
        values = [v for v in (figure(r, key) for r in runs) if v is not None]
        if values:
            out[key] = statistics.median(values)
    return out


def by_cell(runs: list[dict[str, Any]]) -> dict[Cell, dict[str, list[dict[str, Any]]]]:
    """Runs grouped by cell, then by server."""
    cells: dict[Cell, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        cell = (run["transport"], run["subscribers"], run["rate"], run["client"])
        cells[cell][run.get("server", "realtime")].append(run)
    return cells


def _cell_text(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def comparison(cell: Cell, servers: dict[str, list[dict[str, Any]]], peer: str) -> str:
    """The side-by-side table of one cell."""
    transport, n, rate, client = cell
    mine, theirs = medians(servers.get("realtime", [])), medians(servers.get(peer, []))
    counts = f"{len(servers.get('realtime', []))} and {len(servers.get(peer, []))} runs"
    rows = [["", "realtime", peer, f"realtime/{peer}"]]
    for label, key, fmt in FIGURES:
        a, b = mine.get(key), theirs.get(key)
        ratio = f"{a / b:.2f}" if a is not None and b else "-"
        rows.append([label, _cell_text(a, fmt), _cell_text(b, fmt), ratio])
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f"{transport} N={n}, {rate:g} msg/s, {client} client: medians of {counts}"]
    for row in rows:
        pairs = zip(row[1:], widths[1:], strict=True)
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in pairs]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def comparisons(runs: list[dict[str, Any]], peer: str) -> str:
    """Every cell's table, for the cells measured on both servers."""
    tables = [
        comparison(cell, servers, peer)
        for cell, servers in by_cell(runs).items()
        if "realtime" in servers and peer in servers
    ]
    return "\n\n".join(tables)
