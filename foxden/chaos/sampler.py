"""Status sampling: the daemon's own invariant checks, this harness's checks of each sample, and leak scans."""
from __future__ import annotations

import time

from foxden.chaos.context import Context
from foxden.chaos.leaks import Leaks
from foxden.chaos.ledger import Ledger
from foxden.client import Client, ClientError

__all__ = ["Sampler", "own_checks"]


def own_checks(st: dict, prev_totals: dict | None, max_queue: int) -> list[str]:
    """Checks of one status document beyond the daemon's own (prev_totals: the last sample's totals)."""
    out = []
    live, target = st["browsers"]["live"], st["pool"]["target"]
    # Browsers on their way out ("stopping") are replaced at once, so only the others are bounded.
    active = live - st["browsers"]["by_state"].get("stopping", 0)
    most = max(target, st["pool"].get("max") or target)
    if active > most:
        out.append(f"{active} live browsers not stopping > pool max {most}")
    if sum(st["browsers"]["by_state"].values()) != live:
        out.append(f"browsers by state {st['browsers']['by_state']} do not add up to live {live}")
    if len(st["children"]) != live:
        out.append(f"{len(st['children'])} children listed but live = {live}")
    pids = [c["pid"] for c in st["children"] if c["pid"]]
    if len(pids) != len(set(pids)):
        out.append(f"two browsers share an actor pid: {pids}")
    seen: dict[int, str] = {}
    for c in st["children"]:
        if c["state"] == "busy" and not c["job"]:
            out.append(f"browser {c['id']} busy without a job")
        if c["state"] == "idle" and c["job"]:
            out.append(f"browser {c['id']} idle with job {c['job']}")
        for p in c["browser_pids"]:
            if p in seen and seen[p] != c["id"]:
                out.append(f"browser pid {p} listed for {seen[p]} and {c['id']}")
            seen[p] = c["id"]
    if st["queue"]["depth"] > max_queue + target:
        out.append(f"queue depth {st['queue']['depth']} > max_queue {max_queue} + {target} retries")
    if prev_totals is not None:
        for k, v in st["totals"].items():
            if v < prev_totals.get(k, 0):
                out.append(f"totals.{k} went down: {prev_totals[k]} -> {v}")
    return out


class Sampler:
    """Samples `status` several times a second while the load runs; each sample is checked."""

    def __init__(self, ctx: Context, ledger: Ledger, leaks: Leaks):
        self.ctx = ctx
        self.ledger = ledger
        self.leaks = leaks
        self.samples = 0
        self.unsettled_browsers = 0  # browser-samples the den left unjudged (see admin.check_invariants)
        self.status_ms: list[float] = []
        self.status_errors: list[str] = []
        self.prev_totals: dict | None = None
        self.rss_warm: dict | None = None
        self.last_scan = 0.0

    def loop(self) -> None:
        ctx, client = self.ctx, None
        while not ctx.stop_sampler.is_set() and not ctx.daemon_stopped.is_set():
            try:
                if client is None:
                    client = Client.from_config(ctx.daemon.config, timeout=30)
                asked = time.monotonic()
                st = client.status()
                self.status_ms.append((time.monotonic() - asked) * 1000.0)
            except ClientError as exc:
                if ctx.daemon_stopped.is_set():
                    break
                self.status_errors.append(f"t={time.monotonic() - ctx.t0:.1f}s {exc}")
                if client is not None:
                    client.close()
                client = None
                ctx.stop_sampler.wait(0.5)
                continue
            self.take(st)
            self.ledger.check_overdue()
            if time.monotonic() - self.last_scan > 2.0:
                self.last_scan = time.monotonic()
                self.leaks.scan(st)
            if self.rss_warm is None and self.ledger.progress() >= 0.15:
                self.rss_warm = self.leaks.control_plane_rss(st)
            ctx.stop_sampler.wait(ctx.o.sample_interval_s)
        if client is not None:
            client.close()

    def take(self, st: dict) -> None:
        """Record one status sample and every violation it shows."""
        with self.ctx.lock:
            self.samples += 1
            self.ctx.latest = st
            # Browsers the den could not judge in this sample (a job message in transit).
            self.unsettled_browsers += len(st["invariants"].get("unsettled", ()))
        for v in st["invariants"]["violations"]:
            self.ctx.violation(v)
        problems = own_checks(st, self.prev_totals, self.ctx.o.max_queue)
        self.prev_totals = dict(st["totals"])
        for v in problems:
            self.ctx.violation("chaos: " + v)
