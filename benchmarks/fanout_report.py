"""Figures of the fan-out benchmark: CPU accounting, percentiles, table, plot."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


# -- CPU from /proc -----------------------------------------------------------
def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from 3 (state) on


def cpu_split(pid: int) -> tuple[float, float]:
    """``(user, kernel)`` CPU seconds of one live process (utime, stime; 0 if it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0, 0.0
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def with_descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it (a server's ``--workers``)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                parents[int(entry)] = int(fields[1])
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found.extend(frontier)
    return found


def rss_mib(pids: Iterable[int]) -> float | None:
    """Resident memory of these processes together (``VmRSS``), in MiB."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024 if total else None


def total_cpu(pids: Iterable[int]) -> float:
    return sum(sum(cpu_split(p)) for p in pids)


def total_cpu_split(pids: Iterable[int]) -> tuple[float, float]:
    """``(user, kernel)`` CPU seconds of these processes together."""
    splits = [cpu_split(p) for p in pids]
    return sum(u for u, _ in splits), sum(k for _, k in splits)


# -- latency figures ------------------------------------------------------------
def percentile(sorted_values: Sequence[int], p: float) -> int:
    """Nearest-rank percentile of an ascending sequence."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[min(len(sorted_values), int(rank)) - 1]


def cdf_points(sorted_ms: Sequence[float], points: int = 400) -> list[tuple[float, float]]:
    """``(latency_ms, fraction)`` pairs, denser in the tail, for plots."""
    n = len(sorted_ms)
    if n == 0:
        return []
    fractions = {i / points for i in range(1, points)}
    fractions |= {1 - 10**-k for k in (3, 3.5, 4, 4.5, 5)}
    fractions.add(1.0)
    return [(sorted_ms[min(n - 1, int(f * n))], f) for f in sorted(fractions)]


def latency_summary(latencies_ns: list[int], cdf: bool = True) -> dict[str, Any]:
    latencies_ns.sort()
    if not latencies_ns:
        return {"count": 0, "cdf": []} if cdf else {"count": 0}
    ms = [v / 1e6 for v in latencies_ns]
    out: dict[str, Any] = {"count": len(ms), "min_ms": ms[0], "max_ms": ms[-1]}
    for p in PERCENTILES:
        out[f"p{p:g}_ms"] = percentile(latencies_ns, p) / 1e6
    out["mean_ms"] = sum(ms) / len(ms)
    if cdf:
        out["cdf"] = cdf_points(ms)
    return out


# -- table ------------------------------------------------------------------------
COLUMNS: list[tuple[str, str, str]] = [
    # header, key, format
    ("N", "subscribers", "{:d}"),
    ("live", "live_at_start", "{:d}"),
    ("msgs", "accepted", "{:d}"),
    ("p50", "p50_ms", "{:.2f}"),
    ("p90", "p90_ms", "{:.2f}"),
    ("p99", "p99_ms", "{:.2f}"),
    ("p99.9", "p99.9_ms", "{:.2f}"),
    ("max", "max_ms", "{:.2f}"),
    ("last p50", "last_delivery.p50_ms", "{:.2f}"),
    ("last p99", "last_delivery.p99_ms", "{:.2f}"),
    ("loss", "lost", "{:d}"),
    ("dup", "duplicates", "{:d}"),
    ("drop", "dropped", "{:d}"),
    ("deliv/s", "deliveries_per_s", "{:.0f}"),
    ("in time", "in_window_fraction", "{:.4f}"),
    ("srv cores", "server_cores", "{:.2f}"),
    ("srv us/dlv", "server_us_per_delivery", "{:.1f}"),
    ("srv MiB", "server_rss_mib", "{:.0f}"),
    ("cli cores", "client_cores", "{:.2f}"),
]


def figure(run: dict[str, Any], key: str) -> Any:
    """``run[key]``, else ``run["latency"][key]``; ``a.b`` means ``run[a][b]``."""
    head, dot, tail = key.partition(".")
    if dot and isinstance(run.get(head), dict):
        return run[head].get(tail)
    value = run.get(key)
    return run.get("latency", {}).get(key) if value is None else value


def _cell(run: dict[str, Any], key: str, fmt: str, ratios: bool) -> str:
    value = figure(run, key)
    if value is None:
        return "-"
    return f"{value:.2f}" if ratios and key != "subscribers" else fmt.format(value)


def format_table(
    transport: str, runs: list[dict[str, Any]], publish_via: str, ratios: bool = False
) -> str:
    """One row per run; ``ratios`` prints every figure but N with two decimals."""
    rows = [[h for h, _, _ in COLUMNS]]
    rows += [[_cell(r, key, fmt, ratios) for _, key, fmt in COLUMNS] for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [f"{transport} (published via {publish_via}; latencies in ms)"]
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- plot ---------------------------------------------------------------------------
def plot_cdfs(runs: list[dict[str, Any]], path: str) -> bool:
    """Latency CDFs, one panel per transport; False (with a message) without matplotlib."""
    try:
        import matplotlib  # type: ignore[import-not-found,unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        print(
            "--plot needs matplotlib: pip install 'realtime[plot]' (or matplotlib); "
            "no plot written",
            file=sys.stderr,
        )
        return False
    transports = sorted({r["transport"] for r in runs})
    fig, axes = plt.subplots(1, len(transports), figsize=(6 * len(transports), 4.5), sharey=True)
    axes = [axes] if len(transports) == 1 else list(axes)
    for ax, transport in zip(axes, transports, strict=True):
        for run in (r for r in runs if r["transport"] == transport):
            cdf = run["latency"].get("cdf", [])
            if cdf:
                ax.plot([x for x, _ in cdf], [y for _, y in cdf], label=f"N={run['subscribers']}")
        ax.set_xscale("log")
        ax.set_xlabel("fan-out latency (ms, log)")
        ax.set_title(f"{transport}, {runs[0]['rate']:g} msg/s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("fraction of deliveries")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
