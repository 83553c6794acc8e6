"""What a persistent session's snapshot costs per job: ``python -m bench.snapshot [--engine E] [--jobs N]``.

Two private daemons of one browser each, `[sessions] persist` true and false,
run the same session job (a page on 127.0.0.1 whose eval writes localStorage,
in one session) N times, alternating between them so that load on the box
falls on both alike; prints the median and quartiles of the client-side
elapsed time per job, and the median difference. Whatever the browser does
identically in both is the same; what differs is the snapshot: reading the
session's cookies and its page's localStorage, and carrying them to the
dispatcher with the result.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time

from foxden.harness import DaemonProcess, write_config
from foxden.testsite import Site

EVAL = "localStorage.setItem('n', String(Date.now())); localStorage.length"


def _daemon(where: str, persist: bool, engine: str) -> DaemonProcess:
    cfg = {"daemon": {"state_dir": os.path.join(where, "state"), "admin_port": 0}, "pool": {"size": 1, "engine": engine},
           "jobs": {"timeout_s": 30.0}, "sessions": {"persist": persist}}
    return DaemonProcess(write_config(os.path.join(where, "foxden.toml"), cfg), log_path=os.path.join(where, "log"))


def _quartiles(xs: list[float]) -> dict:
    q = statistics.quantiles(xs, n=4)
    return {"median_ms": round(statistics.median(xs), 2), "q1_ms": round(q[0], 2), "q3_ms": round(q[2], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="chromium")
    parser.add_argument("--jobs", type=int, default=30)
    args = parser.parse_args()
    dirs = {mode: tempfile.mkdtemp(prefix="fxb", dir="/tmp") for mode in ("persist", "plain")}
    daemons = {mode: _daemon(dirs[mode], mode == "persist", args.engine) for mode in dirs}
    times: dict[str, list[float]] = {mode: [] for mode in dirs}
    try:
        with Site() as site:
            for d in daemons.values():
                d.start()
            clients = {mode: d.client(timeout=60) for mode, d in daemons.items()}
            for mode, c in clients.items():  # warm up: the session's context exists in both
                c.submit(site.url("/cookie/set?v=1"), session="B", eval=EVAL)
            for _ in range(args.jobs):
                for mode, c in clients.items():
                    t = time.perf_counter()
                    a = c.submit(site.url("/page/1"), session="B", eval=EVAL)
                    times[mode].append((time.perf_counter() - t) * 1000.0)
                    assert a.status == "ok", a
            state = clients["persist"].export_session("B")
            for c in clients.values():
                c.close()
    finally:
        for d in daemons.values():
            d.stop()
            d.kill_leftovers()
        for where in dirs.values():
            shutil.rmtree(where, ignore_errors=True)
    diffs = [p - q for p, q in zip(times["persist"], times["plain"])]
    print(json.dumps({"engine": args.engine, "jobs": args.jobs, "persist": _quartiles(times["persist"]),
                      "no_persist": _quartiles(times["plain"]), "median_diff_ms": round(statistics.median(diffs), 2),
                      "snapshot_bytes": len(json.dumps(state))}, indent=2))


if __name__ == "__main__":
    main()
