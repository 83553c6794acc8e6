"""Run one job list through foxden and the pools people use, side by side: ``python -m bench.run``.

Prints one JSON line per driver per repeat (``"type": "run"``) and a final
summary line (``"type": "summary"``) with medians over repeats and ratios
foxden/baseline (each ratio is the median of the per-repeat ratios, every
pair measured in the same repeat, one right after the other). A table for
people goes to standard error unless --json-only. See bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import psutil

from bench import measure
from bench.site import page_paths

ROOT = Path(__file__).resolve().parent.parent
ALL_DRIVERS = ("foxden", "pwpool", "crawlee")
DESCRIPTIONS = {
    "foxden": "foxden daemon (warm, pool size = concurrency) via foxden.client.Client.submit_many",
    "pwpool": "hand-written asyncio Playwright pool: N browsers, a queue, a new context+page per job",
    "crawlee": "Crawlee for Python PlaywrightCrawler (kept alive, warm), a new context per page",
}
MIX = {"article": 0.4, "list": 0.3, "reviews": 0.3}
MB = 1024 * 1024


def crawlee_importable() -> bool:
    try:
        import crawlee.crawlers  # noqa: F401
        import playwright.async_api  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means: not available here
        return False
    return True


def job_list(base: str, n: int, seed: int) -> list[str]:
    """n URLs mixing the page kinds by MIX, deterministic for a seed."""
    rng = random.Random(seed)
    paths = page_paths()
    kinds = []
    for kind, share in MIX.items():
        kinds += [kind] * round(n * share)
    while len(kinds) < n:
        kinds.append("article")
    kinds = kinds[:n]
    rng.shuffle(kinds)
    cycles = {k: rng.sample(v, len(v)) for k, v in paths.items()}
    taken = {k: 0 for k in paths}
    out = []
    for kind in kinds:
        urls = cycles[kind]
        out.append(base + urls[taken[kind] % len(urls)])
        taken[kind] += 1
    return out


def pct(values: list[float], q: float) -> float:
    """Percentile q (0..100) by linear interpolation between closest ranks."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def machine_busy() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, steal seconds) so far."""
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)
    return busy, getattr(t, "steal", 0.0)


class Site:
    """bench.site in its own process, so its CPU is nobody's and ours stays quiet."""

    def __init__(self, log):
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.site"], cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=log, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the bench site did not start")
        self.base = json.loads(line)["base"]

    def stats(self) -> dict:
        with urllib.request.urlopen(self.base + "/__stats", timeout=10) as r:
            return json.load(r)

    def cpu(self) -> float:
        return measure.tree_cpu([self.proc.pid])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class DriverProcess:
    """A bench.drivers process and its JSON events."""

    def __init__(self, spec: dict, spec_path: Path, log_path: Path, marker: str):
        spec_path.write_text(json.dumps(spec))
        env = {**os.environ, measure.MARKER_ENV: marker}
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.drivers", str(spec_path)], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True)
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                pass
        self.events.put({"event": "eof"})

    def send(self, cmd: str) -> None:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def expect(self, event: str, timeout: float) -> dict:
        try:
            ev = self.events.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"no {event!r} from the driver in {timeout:.0f}s\n{self.log_tail()}") from None
        if ev.get("event") != event:
            raise RuntimeError(f"expected {event!r}, got {json.dumps(ev)[:3000]}\n{self.log_tail()}")
        return ev

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close_log(self) -> None:
        self._log.close()


class Bench:
    def __init__(self, args):
        self.args = args
        self.run_id = uuid.uuid4().hex[:12]
        self.tmp = Path(tempfile.mkdtemp(prefix="fxb", dir="/tmp"))  # short: AF_UNIX paths are <= 107 bytes
        self.daemon = None
        self.site = None
        self.records: list[dict] = []
        self.probes: list[dict] = []
        os.environ[measure.MARKER_ENV] = self.run_id

    # --- set-up ---------------------------------------------------------------

    def start(self) -> None:
        self._site_log = open(self.tmp / "site.log", "ab")
        self.site = Site(self._site_log)
        a = self.args
        self.jobs = job_list(self.site.base, a.jobs, a.seed)
        self.warm = [self.site.base + "/tiny"] * a.concurrency
        self.probe = [self.site.base + "/tiny"]
        from foxden.engines import CHROMIUM_ARGS

        self.chromium_args = list(CHROMIUM_ARGS)
        if "foxden" in a.drivers:
            self._start_daemon()

    def _start_daemon(self) -> None:
        from foxden.harness import DaemonProcess, write_config

        a = self.args
        cfg = write_config(self.tmp / "foxden.toml", {
            "daemon": {"state_dir": str(self.tmp / "state"), "admin_port": 0, "grace_s": 5.0},
            "pool": {"engine": "chromium", "executable_path": a.executable_path, "size": a.concurrency,
                     "launch_timeout_s": 60.0, "driver": a.foxden_driver},
            "jobs": {"timeout_s": float(a.timeout_s),
                     # The site is on 127.0.0.1: allowed by name, so every page goes through the egress proxy.
                     **({"allow_private": False, "allow_hosts": ["127.0.0.1"]} if a.foxden_egress else {})},
        })
        os.environ[measure.MARKER_ENV] = f"{self.run_id}:foxden-daemon"
        try:
            t = time.perf_counter()
            self.daemon = DaemonProcess(cfg, log_path=self.tmp / "daemon.log").start(timeout=180)
            self.daemon_startup_s = time.perf_counter() - t
        finally:
            os.environ[measure.MARKER_ENV] = self.run_id
        st = self.daemon.status()
        if st["pool"]["state"] == "failed":
            raise RuntimeError(f"foxden's pool failed: {st['pool']}")

    # --- one driver, one repeat --------------------------------------------------

    def spec(self, driver: str, repeat: int) -> dict:
        a = self.args
        s = {"driver": driver, "concurrency": a.concurrency, "jobs": self.jobs, "warm": self.warm, "probe": self.probe,
             "executable_path": a.executable_path, "args": self.chromium_args, "timeout_s": a.timeout_s,
             "tmpdir": str(self.tmp / f"{driver}-{repeat}")}
        if driver == "foxden":
            s["socket"] = str(self.daemon.config.daemon.socket)
        if driver == "crawlee" and a.crawlee_pages_per_browser:
            s["pages_per_browser"] = a.crawlee_pages_per_browser
        if a.block:
            s["block"] = list(a.block)
        os.makedirs(s["tmpdir"], exist_ok=True)
        return s

    def run_driver(self, driver: str, repeat: int, order: int) -> dict:
        a = self.args
        marker = f"{self.run_id}:{driver}:{repeat}"
        rec: dict = {"type": "run", "driver": driver, "repeat": repeat, "order": order, "jobs": len(self.jobs),
                     "concurrency": a.concurrency}
        dp = DriverProcess(self.spec(driver, repeat), self.tmp / f"{driver}-{repeat}.json",
                           self.tmp / f"{driver}-{repeat}.log", marker)
        sampler = None
        try:
            ready = dp.expect("ready", 240)
            rec["startup_s"] = round(ready["startup_s"], 3)
            rec["warm_errors"] = len(ready["warm_errors"])
            if ready.get("engine"):
                rec["engine"] = ready["engine"]
            roots = [dp.proc.pid] + ([self.daemon.proc.pid] if driver == "foxden" else [])
            st0 = self.daemon.status() if driver == "foxden" else None
            site0, site_cpu0 = self.site.stats(), self.site.cpu()
            me0 = measure.own_cpu(os.getpid())
            busy0, steal0 = machine_busy()
            load0 = os.getloadavg()[0]
            sampler = measure.TreeSampler(roots).start()
            dp.send("go")
            done = dp.expect("done", 60 + len(self.jobs) * a.timeout_s)
            cpu = sampler.stop()
            busy1, steal1 = machine_busy()
            me1 = measure.own_cpu(os.getpid())
            site1, site_cpu1 = self.site.stats(), self.site.cpu()
            rec.update(self._figures(done, cpu, sampler))
            rec["site_requests"] = site1["requests"] - site0["requests"]
            rec["site_mb"] = round((site1["bytes"] - site0["bytes"]) / MB, 2)
            site_cpu = site_cpu1 - site_cpu0
            rec["noise"] = {
                "site_cpu_s": round(site_cpu, 2),
                "bench_cpu_s": round(me1 - me0, 2),
                "other_cpu_s": round(max(0.0, (busy1 - busy0) - cpu - site_cpu - (me1 - me0)), 2),
                "steal_s": round(steal1 - steal0, 2),
                "load1_before": round(load0, 2), "load1_after": round(os.getloadavg()[0], 2),
            }
            if st0 is not None:
                st1 = self.daemon.status()
                rec["daemon"] = {
                    "restarts": _delta(st0, st1, "restarts"), "exits": _delta(st0, st1, "exits"),
                    "retried": st1["totals"]["retried"] - st0["totals"]["retried"],
                    "watchdog_kills": st1["watchdog"]["kills"] - st0["watchdog"]["kills"],
                    "invariants_ok": st1["invariants"]["ok"],
                }
                if done.get("server_ms"):
                    rec["daemon"]["server_p50_ms"] = round(pct([x for x in done["server_ms"] if x], 50), 1)
            dp.send("close")
            closed = dp.expect("closed", 120)
            rec["close_s"] = round(closed["close_s"], 3)
            rc = dp.wait(60)
            rec["exit_code"] = rc
        except Exception as exc:  # noqa: BLE001 - a broken driver is a result, not the end of the benchmark
            rec["failed"] = f"{exc}"[:4000]
            rec.setdefault("errors", len(self.jobs))
            if sampler is not None and sampler._thread.is_alive():
                sampler.stop()
        finally:
            dp.kill()
            dp.close_log()
        rec["left"], rec["left_procs"] = self._leftovers(marker, sampler, driver)
        return rec

    def _figures(self, done: dict, cpu: float, sampler: measure.TreeSampler) -> dict:
        n = len(done["lat"])
        lat = [x for x in done["lat"] if x is not None]
        wall = done["t_s"]
        out = {
            "ok": n - len(done["errors"]), "errors": len(done["errors"]), "error_samples": done["errors"][:3],
            "wall_s": round(wall, 3), "jobs_per_s": round(n / wall, 3),
            "latency_ms": {"p50": round(pct(lat, 50) * 1000, 1), "p95": round(pct(lat, 95) * 1000, 1),
                           "p99": round(pct(lat, 99) * 1000, 1), "mean": round(statistics.fmean(lat) * 1000, 1)},
            "cpu_s": round(cpu, 3), "cpu_s_per_job": round(cpu / n, 4),
            "cpu_s_per_job_by_kind": {k: round(v / n, 4) for k, v in sampler.cpu_by_kind().items()}, "cpu_escaped_s": round(sampler.escaped_cpu, 3),
            "peak_pss_mb": round(sampler.peak.pss / MB, 1), "final_pss_mb": round(sampler.last.pss / MB, 1),
            "peak_pss_by_kind_mb": {k: round(v / MB, 1) for k, v in sorted(sampler.peak.by_kind.items())},
            "procs_at_peak": sampler.peak.procs, "browsers_seen": sampler.browsers_seen(),
            "samples": sampler.samples, "pss_samples": sampler.pss_samples,
            "pss_every_s": round(wall / max(1, sampler.pss_samples), 3), "sampler_cpu_s": round(sampler.sampler_cpu_s, 2),
            "values": done["values"],
        }
        return out

    def _leftovers(self, marker: str, sampler, driver: str) -> tuple[int, list[str]]:
        """Processes of this driver run still alive after it closed (waits up to 2 s for them to go)."""
        exclude = [self.daemon.proc.pid] if (self.daemon and driver == "foxden") else []
        deadline = time.monotonic() + 2.0
        while True:
            left = {p.pid: p for p in measure.find_marked(marker)}
            if sampler is not None:
                left.update({p.pid: p for p in sampler.alive_seen(exclude)})
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        names = [measure.describe(p) for p in left.values()]
        measure.kill(list(left.values()))
        return len(names), names

    # --- the light-page latency probe ------------------------------------------------

    def run_probe(self, repeat: int) -> dict:
        """Every driver warm at once; one tiny-page job at a time, alternating drivers job by job.

        Each round runs one job per driver, in an order that rotates and
        reverses from round to round, so a driver's probe jobs are spread over
        the same seconds as the others': the added latency is the median of
        per-round differences (foxden minus the hand-written pool), with a
        bootstrap 95% interval of that median."""
        a = self.args
        drivers = list(a.drivers)
        procs: dict[str, DriverProcess] = {}
        rec: dict = {"type": "probe", "repeat": repeat, "url": self.probe[0], "rounds": a.probe_jobs}
        lat: dict[str, list] = {d: [] for d in drivers}
        errors = {d: 0 for d in drivers}
        try:
            for d in drivers:
                procs[d] = DriverProcess(self.spec(d, f"probe{repeat}"), self.tmp / f"{d}-probe{repeat}.json",
                                         self.tmp / f"{d}-probe{repeat}.log", f"{self.run_id}:{d}:probe{repeat}")
            for d in drivers:
                procs[d].expect("ready", 240)
            for i in range(a.probe_jobs):
                order = drivers[i % len(drivers):] + drivers[:i % len(drivers)]
                if (i // len(drivers)) % 2:
                    order.reverse()
                for d in order:
                    procs[d].send("probe1")
                    ev = procs[d].expect("probe1", 60 + a.timeout_s)
                    lat[d].append(ev["lat"][0])
                    errors[d] += len(ev["errors"])
            for d in drivers:
                procs[d].send("close")
            for d in drivers:
                procs[d].expect("closed", 120)
                procs[d].wait(60)
        except Exception as exc:  # noqa: BLE001 - reported, like a failed run
            rec["failed"] = f"{exc}"[:4000]
        finally:
            for dp in procs.values():
                dp.kill()
                dp.close_log()
        left = 0
        for d in drivers:
            n, names = self._leftovers(f"{self.run_id}:{d}:probe{repeat}", None, d)
            left += n
        rec["errors"] = errors
        rec["left"] = left
        rec["p50_ms"] = {d: round(pct([x for x in v if x is not None], 50) * 1000, 2) for d, v in lat.items() if v}
        rec["p95_ms"] = {d: round(pct([x for x in v if x is not None], 95) * 1000, 2) for d, v in lat.items() if v}
        rec["lat_ms"] = {d: [round(x * 1000, 2) if x is not None else None for x in v] for d, v in lat.items()}
        return rec

    # --- the whole run -------------------------------------------------------------

    def run(self, emit) -> dict:
        a = self.args
        drivers = list(a.drivers)
        t_start = time.time()
        for r in range(a.repeats):
            k = r % len(drivers)
            order = drivers[k:] + drivers[:k]  # interleaved: each repeat starts with the next driver
            for i, d in enumerate(order):
                rec = self.run_driver(d, r, i)
                self.records.append(rec)
                emit({k2: v for k2, v in rec.items() if k2 != "values"})
            if a.probe_jobs and "foxden" in drivers:
                probe = self.run_probe(r)
                self.probes.append(probe)
                emit({k2: v for k2, v in probe.items() if k2 != "lat_ms"})
        return self.summary(t_start)

    def stop(self) -> dict:
        out = {}
        if self.daemon is not None:
            t = time.perf_counter()
            rc = self.daemon.stop()
            out["daemon_stop_s"] = round(time.perf_counter() - t, 2)
            out["daemon_exit_code"] = rc
            left = self.daemon.leftovers()
            out["daemon_left"] = [measure.describe(p) for p in left]
            self.daemon.kill_leftovers()
        if self.site is not None:
            self.site.close()
            self._site_log.close()
        time.sleep(0.2)
        left = measure.find_marked(self.run_id)
        out["left_after_all"] = len(left) + len(out.get("daemon_left", []))
        out["left_after_all_procs"] = [measure.describe(p) for p in left] + out.get("daemon_left", [])
        measure.kill(left)
        return out

    def summary(self, t_start: float) -> dict:
        a = self.args
        drivers = list(a.drivers)
        by = {d: [r for r in self.records if r["driver"] == d and "failed" not in r] for d in drivers}
        med = {}
        for d, recs in by.items():
            if not recs:
                med[d] = None
                continue
            m = lambda f: round(statistics.median(f(r) for r in recs), 4)  # noqa: E731
            med[d] = {
                "runs": len(recs), "jobs_per_s": m(lambda r: r["jobs_per_s"]), "wall_s": m(lambda r: r["wall_s"]),
                "cpu_s_per_job": m(lambda r: r["cpu_s_per_job"]),
                "p50_ms": m(lambda r: r["latency_ms"]["p50"]), "p95_ms": m(lambda r: r["latency_ms"]["p95"]),
                "p99_ms": m(lambda r: r["latency_ms"]["p99"]),
                "peak_pss_mb": m(lambda r: r["peak_pss_mb"]), "final_pss_mb": m(lambda r: r["final_pss_mb"]),
                "browsers_seen": m(lambda r: r["browsers_seen"]),
            }
        ratios = {}
        for base in drivers:
            if base == "foxden" or "foxden" not in drivers:
                continue
            pairs = [(f, b) for f in by["foxden"] for b in by[base] if f["repeat"] == b["repeat"]]
            if not pairs:
                continue
            rm = lambda f: round(statistics.median(f(x, y) for x, y in pairs), 3)  # noqa: E731
            ratios[f"foxden/{base}"] = {
                "repeats": len(pairs),
                "throughput": rm(lambda x, y: x["jobs_per_s"] / y["jobs_per_s"]),
                "cpu_per_job": rm(lambda x, y: x["cpu_s_per_job"] / y["cpu_s_per_job"]),
                "p50": rm(lambda x, y: x["latency_ms"]["p50"] / y["latency_ms"]["p50"]),
                "peak_pss": rm(lambda x, y: x["peak_pss_mb"] / y["peak_pss_mb"]),
                "final_pss": rm(lambda x, y: x["final_pss_mb"] / y["final_pss_mb"]),
            }
        probe = self._probe_summary()
        for d, v in probe.get("p50_ms", {}).items():
            if med.get(d):
                med[d]["probe_p50_ms"] = v
        added = probe.get("added_ms")
        return {
            "type": "summary", "date": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(t_start)),
            "duration_s": round(time.time() - t_start, 1),
            "config": {"jobs": len(self.jobs), "concurrency": a.concurrency, "repeats": a.repeats, "drivers": drivers,
                       "mix": MIX, "probe_jobs": a.probe_jobs, "seed": a.seed, "timeout_s": a.timeout_s,
                       "crawlee_pages_per_browser": a.crawlee_pages_per_browser or "default (20)",
                       "foxden_driver": a.foxden_driver, "chromium_args": self.chromium_args,
                       "block": list(a.block or ())},
            "drivers": {d: DESCRIPTIONS[d] for d in drivers},
            "versions": measure.versions(a.executable_path),
            "foxden_daemon_startup_s": round(getattr(self, "daemon_startup_s", 0.0), 2) or None,
            "medians": med, "ratios": ratios, "added_latency_ms_p50": added,
            "added_latency_ci95_ms": probe.get("ci95_ms"), "probe": probe,
            "errors": {d: sum(r.get("errors", 0) for r in self.records if r["driver"] == d) for d in drivers},
            "failed_runs": {d: sum(1 for r in self.records if r["driver"] == d and "failed" in r)
                            + sum(1 for p in self.probes if "failed" in p) for d in drivers},
            "left": {d: sum(r["left"] for r in self.records if r["driver"] == d) for d in drivers},
            "probe_errors": sum(sum(p["errors"].values()) for p in self.probes),
            "probe_left": sum(p["left"] for p in self.probes),
            "results_agree": self._agree(),
            "noise": {"other_cpu_s_median": _median([r["noise"]["other_cpu_s"] for r in self.records if "noise" in r]),
                      "steal_s_total": round(sum(r["noise"]["steal_s"] for r in self.records if "noise" in r), 2),
                      "load1": [r["noise"]["load1_before"] for r in self.records if "noise" in r]},
            "targets": targets(ratios, added, probe.get("ci95_ms")),
        }

    def _probe_summary(self) -> dict:
        """Pooled over repeats: p50 per driver, and foxden's added latency with a bootstrap 95% interval."""
        lat: dict[str, list] = {}
        pairs: list[tuple[float, float]] = []  # (foxden, pool) of one round
        for p in self.probes:
            if "failed" in p:
                continue
            for d, v in p["lat_ms"].items():
                lat.setdefault(d, []).extend(x for x in v if x is not None)
            f, b = p["lat_ms"].get("foxden"), p["lat_ms"].get("pwpool")
            if f and b:
                pairs += [(x, y) for x, y in zip(f, b) if x is not None and y is not None]
        out: dict = {"jobs_per_driver": {d: len(v) for d, v in lat.items()},
                     "p50_ms": {d: round(pct(v, 50), 2) for d, v in lat.items() if v},
                     "p95_ms": {d: round(pct(v, 95), 2) for d, v in lat.items() if v}}
        if pairs:
            # foxden p50 minus the pool's p50; its 95% interval by resampling rounds.
            rng = random.Random(1)
            boots = []
            for _ in range(2000):
                sample = rng.choices(pairs, k=len(pairs))
                boots.append(statistics.median(x for x, _ in sample) - statistics.median(y for _, y in sample))
            boots.sort()
            out["added_ms"] = round(statistics.median(x for x, _ in pairs) - statistics.median(y for _, y in pairs), 2)
            out["paired_median_diff_ms"] = round(statistics.median(x - y for x, y in pairs), 2)
            out["ci95_ms"] = [round(boots[49], 2), round(boots[1949], 2)]
        return out

    def _agree(self) -> bool:
        """Every driver saw the same title and text length for every job (in every repeat)."""
        ref = None
        for r in self.records:
            if "values" not in r:
                continue
            if ref is None:
                ref = r["values"]
            elif r["values"] != ref:
                return False
        return ref is not None


def _delta(a: dict, b: dict, key: str):
    va, vb = a.get(key), b.get(key)
    if isinstance(va, (int, float)) and isinstance(vb, (int, float)):
        return vb - va
    if isinstance(va, dict) and isinstance(vb, dict):
        return {k: vb.get(k, 0) - va.get(k, 0) for k in vb if isinstance(vb.get(k), (int, float)) and vb.get(k, 0) != va.get(k, 0)}
    return vb


def _median(xs):
    return round(statistics.median(xs), 2) if xs else None


TARGETS = [
    ("throughput >= 1.0x hand-written pool", "foxden/pwpool", "throughput", ">=", 1.0),
    ("throughput >= 1.05x Crawlee", "foxden/crawlee", "throughput", ">=", 1.05),
    ("CPU per job <= 1.03x hand-written pool", "foxden/pwpool", "cpu_per_job", "<=", 1.03),
    ("peak PSS <= 1.1x hand-written pool", "foxden/pwpool", "peak_pss", "<=", 1.1),
    ("peak PSS <= 1.0x Crawlee", "foxden/crawlee", "peak_pss", "<=", 1.0),
]


def targets(ratios: dict, added: float | None, ci95: list | None = None) -> list[dict]:
    out = []
    for name, pair, key, op, limit in TARGETS:
        v = ratios.get(pair, {}).get(key)
        if v is None:
            continue
        out.append({"target": name, "value": v, "met": v >= limit if op == ">=" else v <= limit})
    if added is not None:
        t = {"target": "added latency <= 2 ms p50 (light page, concurrency 1)", "value": added, "ci95_ms": ci95,
             "met": added <= 2.0}
        if ci95 and ci95[0] <= 2.0 < ci95[1]:
            # The interval straddles the limit: this run cannot tell.
            t["met"], t["inconclusive"] = None, True
        out.append(t)
    return out


def table(summary: dict) -> str:
    lines = [f"foxden bench {summary['date']}: {summary['config']['jobs']} jobs, concurrency "
             f"{summary['config']['concurrency']}, {summary['config']['repeats']} repeats (medians)"]
    hdr = f"{'driver':9} {'jobs/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'CPU s/job':>9} {'peak PSS':>9} {'final PSS':>9} {'probe p50':>9}"
    lines.append(hdr)
    for d, m in summary["medians"].items():
        if m is None:
            lines.append(f"{d:9} failed")
            continue
        lines.append(f"{d:9} {m['jobs_per_s']:7.2f} {m['p50_ms']:7.0f} {m['p95_ms']:7.0f} {m['p99_ms']:7.0f} "
                     f"{m['cpu_s_per_job']:9.3f} {m['peak_pss_mb']:8.0f}M {m['final_pss_mb']:8.0f}M "
                     f"{m.get('probe_p50_ms', float('nan')):8.1f}m")
    for pair, r in summary["ratios"].items():
        lines.append(f"{pair}: throughput {r['throughput']}x, CPU/job {r['cpu_per_job']}x, p50 {r['p50']}x, "
                     f"peak PSS {r['peak_pss']}x, final PSS {r['final_pss']}x")
    if summary["added_latency_ms_p50"] is not None:
        lines.append(f"foxden added latency (light page, c=1, p50): {summary['added_latency_ms_p50']} ms")
    for t in summary["targets"]:
        verdict = "inconclusive" if t.get("inconclusive") else ("met" if t["met"] else "MISSED")
        extra = f" (95% interval {t['ci95_ms']})" if t.get("ci95_ms") else ""
        lines.append(f"  [{verdict}] {t['target']}: {t['value']}{extra}")
    lines.append(f"errors {summary['errors']} (probe {summary['probe_errors']}), left {summary['left']} "
                 f"(probe {summary['probe_left']}), left after all {summary['left_after_all']}, "
                 f"results agree: {summary['results_agree']}")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=130, help="jobs per run (default 130)")
    p.add_argument("--foxden-egress", action="store_true",
                   help="foxden with [jobs] allow_private = false and allow_hosts = [\"127.0.0.1\"] (the site):"
                        " every connection through the egress proxy")
    p.add_argument("--concurrency", type=int, default=4, help="jobs in flight = browsers of foxden and the pool (4)")
    p.add_argument("--repeats", type=int, default=3, help="repeats, driver order rotated each time (3)")
    p.add_argument("--drivers", default=None,
                   help=f"comma-separated subset of {','.join(ALL_DRIVERS)} (default: all; crawlee only if importable)")
    p.add_argument("--probe-jobs", type=int, default=40,
                   help="light-page probe rounds per repeat: one tiny-page job per driver each, alternating (40; 0 = off)")
    p.add_argument("--timeout-s", type=float, default=30.0, help="per-job timeout (30)")
    p.add_argument("--seed", type=int, default=7, help="job-list seed (7)")
    p.add_argument("--executable-path", default="/usr/bin/chromium", help="the Chromium binary for every driver")
    p.add_argument("--crawlee-pages-per-browser", type=int, default=0,
                   help="Crawlee's max_open_pages_per_browser (0 = its default, 20); 1 = one browser per slot")
    p.add_argument("--foxden-driver", default="auto", choices=("auto", "cdp", "playwright"),
                   help="foxden's [pool] driver (auto = its own CDP connection; playwright = a Playwright driver "
                        "per browser, the design before the CDP driver)")
    p.add_argument("--block", action="append", metavar="TYPE",
                   choices=("image", "media", "font", "stylesheet", "script", "xhr", "fetch", "websocket", "other"),
                   help="every driver blocks requests of this resource type (repeatable): foxden by the job's "
                        "`block` option, the baselines by routing, as a scraper would (default: block nothing)")
    p.add_argument("--json-only", action="store_true", help="only the JSON lines, no table on stderr")
    p.add_argument("--smoke", action="store_true",
                   help="about a minute: 8 jobs, concurrency 2, 1 repeat, 5 probe rounds")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, specs, daemon state)")
    args = p.parse_args(argv)
    if args.smoke:
        args.jobs, args.concurrency, args.repeats, args.probe_jobs = 8, 2, 1, 5
    if args.drivers:
        args.drivers = [d.strip() for d in args.drivers.split(",") if d.strip()]
        bad = set(args.drivers) - set(ALL_DRIVERS)
        if bad:
            p.error(f"unknown driver(s): {', '.join(sorted(bad))}")
    else:
        args.drivers = [d for d in ALL_DRIVERS if d != "crawlee" or crawlee_importable()]
    if args.jobs < 1 or args.concurrency < 1 or args.repeats < 1:
        p.error("--jobs, --concurrency and --repeats must be >= 1")
    return args


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through the clean-up below


def main(argv=None) -> int:
    args = parse_args(argv)
    measure.install_network_guard()
    signal.signal(signal.SIGTERM, _terminate)

    def emit(obj: dict) -> None:
        print(json.dumps(obj), flush=True)

    bench = Bench(args)
    summary = None
    try:
        bench.start()
        summary = bench.run(emit)
    finally:
        end = bench.stop()
        if summary is not None:
            summary.update(end)
            emit(summary)
            if not args.json_only:
                print(table(summary), file=sys.stderr)
        if args.keep:
            print(f"kept {bench.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(bench.tmp, ignore_errors=True)
    ok = (summary is not None and not any(summary["errors"].values()) and not any(summary["failed_runs"].values())
          and summary["left_after_all"] == 0 and not any(summary["left"].values())
          and summary["probe_errors"] == 0 and summary["probe_left"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
