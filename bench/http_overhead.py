"""What the HTTP API adds to a job's round trip: ``python -m bench.http_overhead [--jobs 200]``.

Starts a private daemon (one Chromium, a token, ``[http] port`` on a free
port), then runs ``about:blank`` jobs one at a time, alternating between the
msgpack socket (``foxden.Client``, one connection) and ``POST /v1/jobs``
(one keep-alive HTTP connection), so drift hits both alike. Prints p50, p99
and mean of each, their differences, the median of the paired differences,
and the same for a round trip with no browser in it (``ping`` on the socket
vs ``GET /healthz``, which pings the daemon), as JSON, with the load average.
Removes its daemon and files when done."""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import tempfile
import time

from foxden.harness import DaemonProcess, write_config

TOKEN = "bench-http-overhead"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _summary(ms: list[float]) -> dict:
    return {"p50_ms": round(_pct(ms, 0.5), 2), "p99_ms": round(_pct(ms, 0.99), 2),
            "mean_ms": round(statistics.fmean(ms), 2), "n": len(ms)}


def _http_job(conn: http.client.HTTPConnection) -> None:
    conn.request("POST", "/v1/jobs", body=b'{"url": "about:blank"}',
                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    body = json.loads(resp.read())
    assert resp.status == 200 and body["status"] == "ok", body


def _http_ping(conn: http.client.HTTPConnection) -> None:
    conn.request("GET", "/healthz")
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read()) == {"ok": True}


def measure(daemon: DaemonProcess, port: int, n: int, warmup: int, socket_call, http_call) -> dict:
    """n alternating round trips of each kind; socket_call(client) and http_call(connection) do one each."""
    sock_ms, http_ms = [], []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        with daemon.client(timeout=60) as client:
            for i in range(warmup + n):
                for kind in (("socket", "http") if i % 2 else ("http", "socket")):
                    t0 = time.perf_counter()
                    socket_call(client) if kind == "socket" else http_call(conn)
                    if i >= warmup:
                        (sock_ms if kind == "socket" else http_ms).append((time.perf_counter() - t0) * 1000)
    finally:
        conn.close()
    s, h = _summary(sock_ms), _summary(http_ms)
    return {"socket": s, "http": h, "overhead_p50_ms": round(h["p50_ms"] - s["p50_ms"], 2),
            "overhead_p99_ms": round(h["p99_ms"] - s["p99_ms"], 2),
            "paired_overhead_p50_ms": round(statistics.median(a - b for a, b in zip(http_ms, sock_ms)), 2)}


def _submit_ok(client) -> None:
    assert client.submit("about:blank").status == "ok"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=200, help="jobs per transport (default 200)")
    ap.add_argument("--pings", type=int, default=500, help="no-browser round trips per transport (default 500)")
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="fxhb", dir="/tmp")
    port = _free_port()
    cfg = write_config(os.path.join(work, "foxden.toml"), {
        "daemon": {"state_dir": os.path.join(work, "state"), "admin_port": 0, "token": TOKEN},
        "pool": {"size": 1}, "http": {"port": port},
    })
    try:
        with DaemonProcess(cfg, log_path=os.path.join(work, "daemon.log")) as daemon:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            jobs = measure(daemon, port, args.jobs, args.warmup, _submit_ok, _http_job)
            pings = measure(daemon, port, args.pings, args.warmup, lambda c: c.ping(), _http_ping)
        print(json.dumps({"bench": "http_overhead", "url": "about:blank", "pool": 1, "jobs": jobs, "pings": pings,
                          "loadavg_1m": round(os.getloadavg()[0], 1), "cpus": os.cpu_count()}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
