"""The figures of one run, from what its publisher and its workers reported."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from benchmarks.fanout_report import latency_summary
from benchmarks.subscription import NONE_YET

if TYPE_CHECKING:
    from benchmarks.run import CpuClock


def _union(bitmaps: list[bytes], size: int) -> int:
    """How many seqs are set in any of these 0/1 byte maps."""
    acc = 0
    for bm in bitmaps:
        acc |= int.from_bytes(bm, "big")  # every byte is 0 or 1, so OR works bytewise
    return acc.to_bytes(size, "big").count(1)


def per_message(results: list[dict[str, Any]], total: int) -> tuple[list[int], list[int]]:
    """Per message: the latency of its first and of its last delivery, anywhere."""
    first = [NONE_YET] * total
    last = [-1] * total
    for r in results:
        first = list(map(min, first, memoryview(r["msg_first_ns"]).cast("q")))
        last = list(map(max, last, memoryview(r["msg_last_ns"]).cast("q")))
    return [v for v in first if v != NONE_YET], [v for v in last if v >= 0]


def _server_cpu(
    c0: CpuClock, c1: CpuClock, c2: CpuClock, delivered: int, window: float
) -> dict[str, Any]:
    """Server cores in the window and µs per delivery to the end of the drain, user and kernel."""
    if not (sum(c1.server) or sum(c2.server)):
        return {"server_cores": None, "server_us_per_delivery": None}
    out: dict[str, Any] = {}
    parts: list[tuple[str, Callable[[tuple[float, float]], float]]] = [
        ("", sum),
        ("_user", lambda t: t[0]),
        ("_kernel", lambda t: t[1]),
    ]
    for name, pick in parts:
        out[f"server{name}_cores"] = (pick(c1.server) - pick(c0.server)) / window
        spent = pick(c2.server) - pick(c0.server)
        out[f"server{name}_us_per_delivery"] = spent / delivered * 1e6 if delivered else None
    return out


def summarize(
    args: argparse.Namespace,
    transport: str,
    n: int,
    via: str,
    ready: dict[str, Any],
    pub: dict[str, Any],
    results: list[dict[str, Any]],
    clocks: tuple[CpuClock, CpuClock, CpuClock],
) -> dict[str, Any]:
    subs = [s for r in results for s in r["subs"]]
    live = [s for s in subs if s["ready"]]
    total = len(pub["accepted"])
    expected = _union([pub["accepted"]] + [bm for r in results for bm in r["seen"]], total)
    delivered = sum(s["received"] for s in live)
    latencies: list[int] = []
    for r in results:
        latencies.extend(memoryview(r["latencies_ns"]).cast("q"))
    first, last = per_message(results, total)
    start_ns, end_ns = pub["window_ns"]
    publish_s = max(1e-9, (end_ns - start_ns) / 1e9)
    last_ns = max((r["last_ns"] for r in results), default=0)
    in_window = sum(r["in_window"] for r in results)
    c0, c1, c2 = clocks
    window = c1.wall - c0.wall
    dropped = Counter(s["closed"] for s in live if s["closed"])
    return {
        "transport": transport,
        "subscribers": n,
        "publish_via": via,
        "client": args.client,
        "rate": args.rate,
        "duration": args.duration,
        "payload_bytes": args.payload_bytes,
        "procs": len(results),
        **{f"connect_{k}": v for k, v in ready.items()},
        "published": total,
        "accepted": sum(pub["accepted"]),
        "publish_errors": pub["errors"],
        "publish_rate": total / publish_s,
        "expected_per_subscriber": expected,
        "delivered": delivered,
        "lost": sum(expected - s["received"] for s in live),
        "duplicates": sum(s["duplicates"] for s in subs),
        "unknown": sum(s["unknown"] for s in subs),
        "dropped": sum(dropped.values()),
        "drop_reasons": dict(dropped.most_common(5)),
        "deliveries_per_s": delivered / max(1e-9, (last_ns - start_ns) / 1e9) if last_ns else 0.0,
        "in_window": in_window,
        "in_window_per_s": in_window / (total / args.rate),
        "in_window_fraction": in_window / (expected * len(live)) if expected and live else None,
        "window_s": window,
        **_server_cpu(c0, c1, c2, delivered, window),
        "client_cores": (sum(c1.workers) - sum(c0.workers)) / window,
        "client_cores_per_process": [
            (b - a) / window for a, b in zip(c0.workers, c1.workers, strict=True)
        ],
        "publisher_cores": (c1.publisher - c0.publisher) / window,
        "latency": latency_summary(latencies),
        "first_delivery": latency_summary(first, cdf=False),
        "last_delivery": latency_summary(last, cdf=False),
    }


def say_result(run: dict[str, Any], say: Callable[[str], None]) -> None:
    lat = run["latency"]
    p50 = f"p50 {lat['p50_ms']:.2f}ms p99 {lat['p99_ms']:.2f}ms" if lat["count"] else "nothing"
    say(
        f"{run.get('server', 'realtime')} {run['transport']} N={run['subscribers']}: {p50}, "
        f"lost {run['lost']}, dup {run['duplicates']}, dropped {run['dropped']}, "
        f"last delivery of a message p50 {run['last_delivery'].get('p50_ms', 0):.2f}ms, "
        f"client {run['client_cores']:.2f} cores"
    )
