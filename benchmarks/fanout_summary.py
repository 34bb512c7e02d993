"""Medians of several fan-out runs, as one table per transport and rate.

    python -m benchmarks.fanout_summary /tmp/bench-before-*.json
    python -m benchmarks.fanout_summary --compare before-*.json -- after-*.json

Every figure of the table is the median of that figure over the files given
(one value per file for each transport, N, rate, client kind and server).
Runs of ``--peer`` also get realtime/peer tables (``benchmarks/compare.py``).
With ``--compare``, a second table gives after/before ratios of the medians
(below 1 is better for latency and CPU, above 1 for deliveries/s).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from typing import Any

from benchmarks.compare import comparisons
from benchmarks.fanout_report import COLUMNS, figure, format_table

Key = tuple[str, float, int, str, str, str]  # transport, rate, N, publish_via, client, server


def read_runs(paths: list[str]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for path in paths:
        with open(path) as f:
            runs += json.load(f)["runs"]
    for run in runs:
        run.setdefault("client", "aiohttp")  # files from before --client: aiohttp
        run.setdefault("server", "realtime")  # files from before --peer
    return runs


def load_runs(paths: list[str]) -> dict[Key, list[dict[str, Any]]]:
    grouped: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for run in read_runs(paths):
        key = (
            run["transport"], run["rate"], run["subscribers"], run["publish_via"],
            run["client"], run["server"],
        )  # fmt: skip
        grouped[key].append(run)
    return grouped


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One run whose every table figure is the median over ``runs``."""
    out: dict[str, Any] = {"runs": len(runs)}
    for _, key, fmt in COLUMNS:
        values = [v for v in (figure(r, key) for r in runs) if v is not None]
        if values:
            med = statistics.median(values)
            out[key] = round(med) if fmt == "{:d}" else med
    return out


def ratio_run(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"subscribers": after.get("subscribers")}
    for _, key, fmt in COLUMNS[1:]:
        b, a = before.get(key), after.get(key)
        if fmt != "{:d}" and b and a is not None:
            out[key] = a / b
    return out


def tables(grouped: dict[Key, list[dict[str, Any]]]) -> dict[Key, dict[str, Any]]:
    return {key: median_run(runs) for key, runs in sorted(grouped.items())}


def print_tables(medians: dict[Key, dict[str, Any]], title: str, ratios: bool = False) -> None:
    by_table: dict[tuple[str, float, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for (transport, rate, _, via, client, server), run in medians.items():
        by_table[(transport, rate, via, client, server)].append(run)
    for (transport, rate, via, client, server), runs in by_table.items():
        counts = ",".join(str(r.get("runs", "-")) for r in runs)
        print(f"{title}: {server}, {rate:g} msg/s, {client} client, runs per row {counts}")
        print(format_table(transport, runs, via, ratios))
        print()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="+", help="JSON files written by fanout.py --json")
    p.add_argument("--compare", action="store_true", help="files before '--', then after")
    args = p.parse_args(argv)
    if not args.compare:
        print_tables(tables(load_runs(args.files)), "median")
        runs = read_runs(args.files)
        for peer in dict.fromkeys(r["server"] for r in runs if r["server"] != "realtime"):
            print(comparisons(runs, peer))
            print()
        return 0
    raw = sys.argv[1:] if argv is None else argv
    if "--" not in raw:
        raise SystemExit("--compare needs: before files -- after files")
    cut = raw.index("--")
    before = tables(load_runs([f for f in raw[:cut] if f != "--compare"]))
    after = tables(load_runs(raw[cut + 1 :]))
    print_tables(before, "before (median)")
    print_tables(after, "after (median)")
    # The same client kind first; else any, so that raw can be compared with aiohttp.
    loose = {(*k[:4], k[5]): v for k, v in before.items()}
    ratios = {
        k: ratio_run(before.get(k) or loose[(*k[:4], k[5])], after[k])
        for k in after
        if (*k[:4], k[5]) in loose
    }
    print_tables(ratios, "after / before", ratios=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
