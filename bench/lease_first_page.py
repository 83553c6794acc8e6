"""Lease-to-first-page: a foxden lease (request, connect, goto a 127.0.0.1 page, title) vs Playwright's own launch.

    python -m bench.lease_first_page [--runs 10] [--engine chromium|firefox] [--json-only]

Both sides share one started Playwright client (its node driver is not
timed). foxden side: Client.lease(), connect (connect_over_cdp, or
firefox.connect), new page, goto, title; then the browser is disconnected
and the lease ended (not timed). Playwright side: launch the same binary
with the launch options foxden's Playwright driver uses, new page, goto,
title; then close (not timed). A private daemon (pool of one Chromium) and
a private site; both are stopped and their temp dir removed at the end."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

from foxden import engines
from foxden.harness import DaemonProcess, write_config
from foxden.testsite import Site

__all__ = ["main"]


def _leased(p, client, engine: str, url: str) -> float:
    started = time.perf_counter()
    info = client.lease(engine=engine, ttl_s=120, idle_s=60)
    browser = (p.chromium.connect_over_cdp(info["endpoint"]) if engine == "chromium"
               else p.firefox.connect(info["endpoint"]))
    page = browser.new_page()
    page.goto(url)
    assert page.title() == "Page 1"
    took = time.perf_counter() - started
    browser.close()
    client.end_lease(info["lease"])
    return took


def _launched(p, choice, url: str) -> float:
    started = time.perf_counter()
    browser = engines.launch(p, choice)
    page = browser.new_page()
    page.goto(url)
    assert page.title() == "Page 1"
    took = time.perf_counter() - started
    browser.close()
    return took


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.lease_first_page", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--engine", choices=["chromium", "firefox"], default="chromium")
    ap.add_argument("--json-only", action="store_true")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    d = tempfile.mkdtemp(prefix="fxl", dir="/tmp")
    cfg = {"daemon": {"admin_port": 0, "state_dir": os.path.join(d, "state")}, "pool": {"size": 1},
           "leases": {"max": 1}}
    daemon = DaemonProcess(write_config(os.path.join(d, "foxden.toml"), cfg), log_path=os.path.join(d, "daemon.log"))
    choice = engines.resolve_engine(args.engine, None)
    out: dict[str, list[float]] = {"lease": [], "playwright": []}
    try:
        with Site() as site, sync_playwright() as p:
            daemon.start()
            url = site.url("/page/1")
            with daemon.client(timeout=120) as client:
                for _ in range(args.runs):  # interleaved, so that load on the box hits both alike
                    out["lease"].append(_leased(p, client, args.engine, url))
                    out["playwright"].append(_launched(p, choice, url))
    finally:
        daemon.stop()
        left = daemon.kill_leftovers()
        shutil.rmtree(d, ignore_errors=True)
    summary = {"engine": args.engine, "runs": args.runs, "left_behind": left,
               **{f"{k}_median_s": round(statistics.median(v), 3) for k, v in out.items()},
               **{f"{k}_s": [round(x, 3) for x in v] for k, v in out.items()}}
    summary["ratio"] = round(summary["lease_median_s"] / summary["playwright_median_s"], 2)
    print(json.dumps(summary))
    if not args.json_only:
        print(f"{args.engine}: lease-to-first-page median {summary['lease_median_s']:.3f}s, Playwright launch "
              f"{summary['playwright_median_s']:.3f}s (x{summary['ratio']}), {args.runs} runs each", file=sys.stderr)
    return 0 if not left else 1


if __name__ == "__main__":
    sys.exit(main())
