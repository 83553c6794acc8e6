"""Scale and soak checks of a private foxden daemon: ``python -m bench.scale {browsers,soak}``.

``browsers``: start N browsers (default 50), time until all are idle, total
PSS of the whole process tree, then run light jobs while comparing, several
times a second, the supervisor's derived live count with the browsers the
operating system really has (Chromium main processes or Playwright drivers carrying a browser's marker).

``soak``: run many light jobs (default 10,000) through a small pool and
record the RSS of every control-plane process (supervisor, dispatcher,
admin, gateway, Thespian's own, the daemon) at checkpoints, to show that
the control plane does not grow with the number of jobs it has handled.

``nodes``: the same batch on a cluster of 1, 2 and 3 nodes, each in its own
network namespace and CPU quota (bench/scale_nodes.py).

All print one JSON object on stdout (progress on stderr) and exit 0 only if
every job was answered exactly once and nothing was left running.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time

import psutil

from bench import measure, scale_nodes
from foxden import procs
from foxden.client import job_request
from foxden.harness import DaemonProcess, write_config
from foxden.testsite import Site


def _say(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class _Feed:
    """A thread-safe iterator of job requests, shared by every client thread."""

    def __init__(self, site: Site, n: int, timeout_s: float):
        self._lock = threading.Lock()
        self._i = 0
        self._n = n
        self._site = site
        self._timeout_s = timeout_s

    def __iter__(self):
        return self

    def __next__(self):
        with self._lock:
            if self._i >= self._n:
                raise StopIteration
            self._i += 1
            i = self._i
        # Light pages: a few hundred bytes each, so the pool, not rendering, is what is measured.
        return job_request(self._site.url(f"/page/{i % 50}"), timeout_s=self._timeout_s)


def run_jobs(daemon: DaemonProcess, site: Site, n: int, concurrency: int, timeout_s: float,
             on_answer=None) -> dict:
    """Submit n light jobs with `concurrency` in flight over several connections; count answers."""
    feed = _Feed(site, n, timeout_s)
    lock = threading.Lock()
    by_status: dict[str, int] = {}
    codes: dict[str, int] = {}
    latencies: list[float] = []
    errors: list[str] = []
    connections = max(1, min(concurrency, 8))
    per_conn = [concurrency // connections + (1 if i < concurrency % connections else 0) for i in range(connections)]

    def worker(k: int) -> None:
        try:
            with daemon.client(timeout=timeout_s * 4 + 60) as c:
                for _, _, answer in c.submit_many(feed, concurrency=per_conn[k]):
                    with lock:
                        by_status[answer.status] = by_status.get(answer.status, 0) + 1
                        latencies.append(answer.elapsed_ms)
                        if answer.error is not None:
                            codes[answer.error.code] = codes.get(answer.error.code, 0) + 1
                        done = sum(by_status.values())
                    if on_answer is not None:
                        on_answer(done)
        except Exception as exc:  # a client error is a finding, not a crash of the bench
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    answered = sum(by_status.values())
    lat = sorted(latencies)
    return {
        "jobs": n, "answered": answered, "lost": n - answered, "by_status": by_status, "error_codes": codes,
        "client_errors": errors, "wall_s": round(wall, 2), "jobs_per_s": round(answered / wall, 2) if wall else None,
        "elapsed_ms_p50": round(statistics.median(lat), 1) if lat else None,
        "elapsed_ms_p99": round(lat[int(0.99 * (len(lat) - 1))], 1) if lat else None,
    }


def os_browsers(daemon: DaemonProcess, instance: str) -> set[str]:
    """Browser ids that really run: the top process of each browser carrying `<tag>:<instance>/<bid>/`.

    The top is Chromium's main process (foxden's CDP driver starts it) or a
    Playwright driver (node); Chromium's helpers carry `--type=`, and its
    crashpad handler outlives the browser by seconds on its own."""
    prefix = f"{daemon.state_prefix}{instance}/"
    out = set()
    for p in procs.find_marked(prefix):
        try:
            argv = p.cmdline() or [""]
            kind = measure.kind_of(p.name(), argv[0])
            main = kind == "chromium" and "crashpad" not in p.name() and not any(a.startswith("--type=") for a in argv)
            if not (kind == "node" or main):
                continue
            marker = p.environ().get(procs.MARKER_ENV, "")
        except (psutil.Error, OSError):
            continue
        bid = marker[len(prefix):].split("/", 1)[0]
        if bid.startswith("b"):
            out.add(bid)
    return out


class CountWatch:
    """Samples status and the process table; a sample where the two disagree is a mismatch."""

    def __init__(self, daemon: DaemonProcess, instance: str, every: float = 0.5):
        self.daemon, self.instance, self.every = daemon, instance, every
        self.samples = 0
        self.mismatches: list[dict] = []
        self.violations: list[str] = []
        self.max_live = 0
        self.status_errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="count-watch", daemon=True)

    def start(self) -> "CountWatch":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                st = self.daemon.status()
            except Exception as exc:  # counted: samples that never came must not pass for agreement
                self.status_errors.append(f"{type(exc).__name__}: {exc}")
                continue
            seen = os_browsers(self.daemon, self.instance)
            # A child that is starting or stopping may legitimately have no driver yet / any more.
            settled = {c["id"] for c in st["children"] if c["state"] in ("idle", "busy")}
            self.samples += 1
            self.max_live = max(self.max_live, st["browsers"]["live"])
            if st["browsers"]["live"] != len(st["children"]) or not settled <= seen:
                self.mismatches.append({"live": st["browsers"]["live"], "children": len(st["children"]),
                                        "settled_without_processes": sorted(settled - seen)})
            self.violations.extend(st["invariants"]["violations"])


def tree_pss(root_pid: int) -> dict:
    """PSS of the daemon's whole tree (it is a subreaper: crashpad handlers re-parent inside it), by kind."""
    by_kind: dict[str, int] = {}
    count = 0
    for s in measure.tree_stats([root_pid]):
        if s.state == "Z":
            continue
        argv0, _ = measure._argv0(s.pid)
        kind = measure.kind_of(s.comm, argv0)
        by_kind[kind] = by_kind.get(kind, 0) + measure.pss_bytes(s.pid)
        count += 1
    return {"total_mb": round(sum(by_kind.values()) / 2**20, 1), "processes": count,
            "by_kind_mb": {k: round(v / 2**20, 1) for k, v in sorted(by_kind.items())}}


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon (heap: what a leak grows) and RssFile (code and libraries paged in) of pid, in KiB."""
    keys = {"VmRSS": "rss_kb", "RssAnon": "anon_kb", "RssFile": "file_kb"}
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in keys:
                    out[keys[key]] = int(value.split()[0])
    except OSError:
        pass
    return out


def _control_plane_pids(daemon: DaemonProcess, st: dict) -> dict[str, int]:
    """Every Python process of the daemon that is not a browser actor, keyed by role (or "pid<N>")."""
    actors = {c["pid"] for c in st["children"] if c["pid"]}
    roles = {pid: role for role, pid in st["pids"].items()}
    out = {}
    root = psutil.Process(daemon.proc.pid)
    for p in [root, *root.children(recursive=True)]:
        try:
            if p.pid in actors or measure.kind_of(p.name(), (p.cmdline() or [""])[0]) != "python":
                continue
        except psutil.Error:
            continue
        out["daemon" if p.pid == root.pid else roles.get(p.pid, f"pid{p.pid}")] = p.pid
    return out


def control_plane_memory(daemon: DaemonProcess, st: dict) -> dict[str, dict[str, int]]:
    """memory_kb() of every control-plane process that is still there, keyed by role."""
    out = {}
    for role, pid in _control_plane_pids(daemon, st).items():
        mem = memory_kb(pid)
        if "rss_kb" in mem:
            out[role] = mem
    return out


def _config(workdir: str, browsers: int, max_queue: int, extra: dict | None = None) -> str:
    cfg = {
        "daemon": {"state_dir": os.path.join(workdir, "state"), "admin_port": 0, "log_level": "warning"},
        "pool": {"engine": "chromium", "size": browsers, "launch_timeout_s": 120.0, "memory_headroom_mb": 1024},
        "jobs": {"timeout_s": 30.0, "jitter_s": 0.5, "max_queue": max_queue},
    }
    for section, values in (extra or {}).items():
        cfg.setdefault(section, {}).update(values)
    return str(write_config(os.path.join(workdir, "foxden.toml"), cfg))


def _finish(daemon: DaemonProcess, out: dict) -> int:
    t0 = time.monotonic()
    rc = daemon.stop(timeout=300)
    out["stop_s"] = round(time.monotonic() - t0, 2)
    out["daemon_exit"] = rc
    left = daemon.leftovers()
    out["processes_left"] = [measure.describe(p) for p in left]
    daemon.kill_leftovers()
    ok = (rc == 0 and not left and out["jobs"]["by_status"].get("ok", 0) == out["jobs"]["jobs"]
          and out.get("pool_state", "ok") == "ok" and not out["jobs"]["client_errors"]
          and not out.get("count_mismatches") and not out.get("invariant_violations")
          and not out.get("status_errors"))
    out["ok"] = ok
    print(json.dumps(out), flush=True)
    return 0 if ok else 1


def browsers_check(args) -> int:
    """50 browsers: start time, total PSS, light jobs, derived count vs processes."""
    out: dict = {"check": "browsers", "browsers": args.browsers, "concurrency": args.concurrency,
                 "versions": measure.versions("/usr/bin/chromium")}

    def body(daemon: DaemonProcess, site: Site) -> None:
        t0 = time.monotonic()
        daemon.start(timeout=60, wait_pool=False)
        out["socket_ready_s"] = round(time.monotonic() - t0, 2)
        st = daemon.wait_until(lambda s: s["browsers"]["by_state"]["idle"] >= args.browsers
                               or s["pool"]["state"] == "failed", timeout=600, interval=0.1)
        out["all_idle_s"] = round(time.monotonic() - t0, 2)
        out["pool_state"] = st["pool"]["state"]
        _say(f"{args.browsers} browsers idle after {out['all_idle_s']} s; measuring PSS")
        out["pss_idle"] = tree_pss(daemon.proc.pid)
        instance = st["instance"]
        out["os_browsers_idle"] = len(os_browsers(daemon, instance))
        watch = CountWatch(daemon, instance).start()
        peak = {"pss": out["pss_idle"]}

        def on_answer(done: int) -> None:
            if done == args.jobs // 2:
                peak["pss"] = tree_pss(daemon.proc.pid)  # mid-run, every browser has rendered pages
            if done % 100 == 0:
                _say(f"{done}/{args.jobs} answered")

        out["jobs"] = run_jobs(daemon, site, args.jobs, args.concurrency, 30.0, on_answer)
        watch.stop()
        st = daemon.status()
        out["pss_mid_run"] = peak["pss"]
        out["pss_after"] = tree_pss(daemon.proc.pid)
        out["count_samples"] = watch.samples
        out["count_mismatches"] = watch.mismatches[:20]
        out["invariant_violations"] = sorted(set(watch.violations))[:20]
        out["max_live"] = watch.max_live
        out["status_errors"] = len(watch.status_errors)
        out["status_error_samples"] = watch.status_errors[:3]
        out["restarts"] = st["restarts"]
        out["watchdog_kills"] = st["watchdog"]["kills"]
        out["jobs_done_per_browser"] = sorted(c["jobs_done"] for c in st["children"])

    return _run_check("fxscale", args.browsers, max(1000, args.concurrency * 4), out, body)


def soak_check(args) -> int:
    """Control-plane RSS after many jobs vs after the first checkpoint."""
    out: dict = {"check": "soak", "browsers": args.browsers, "concurrency": args.concurrency}

    def body(daemon: DaemonProcess, site: Site) -> None:
        daemon.start(timeout=120)
        checkpoints: list[dict] = []
        lock = threading.Lock()
        t0 = time.monotonic()

        def on_answer(done: int) -> None:
            if done % args.checkpoint == 0:
                with lock:
                    st = daemon.status()
                    mem = control_plane_memory(daemon, st)
                    cp = {"jobs": done, "t_s": round(time.monotonic() - t0, 1),
                          "rss_kb": {role: m["rss_kb"] for role, m in sorted(mem.items())}}
                    for key, field in (("total_kb", "rss_kb"), ("anon_kb", "anon_kb"), ("file_kb", "file_kb")):
                        cp[key] = sum(m.get(field, 0) for m in mem.values())
                    checkpoints.append(cp)
                _say(f"{done}/{args.jobs}: control plane {cp['total_kb'] / 1024:.1f} MB")

        out["jobs"] = run_jobs(daemon, site, args.jobs, args.concurrency, 30.0, on_answer)
        checkpoints.sort(key=lambda c: c["jobs"])
        out["checkpoints"] = checkpoints
        if len(checkpoints) >= 2:
            first, last = checkpoints[0], checkpoints[-1]
            grown = last["total_kb"] - first["total_kb"]
            per = (last["jobs"] - first["jobs"]) or 1
            out["growth_kb"] = grown
            out["growth_mb_per_10k_jobs"] = round(grown / 1024 * 10_000 / per, 2)
            out["growth_kb_by_role"] = {r: last["rss_kb"].get(r, 0) - first["rss_kb"].get(r, 0)
                                        for r in last["rss_kb"]}
            # Heap against pages of code and libraries touched for the first time.
            out["growth_anon_kb"] = last["anon_kb"] - first["anon_kb"]
            out["growth_file_kb"] = last["file_kb"] - first["file_kb"]
        st = daemon.status()
        out["restarts"] = st["restarts"]
        out["invariant_violations"] = st["invariants"]["violations"]

    return _run_check("fxsoak", args.browsers, 1000, out, body)


def _run_check(prefix: str, browsers: int, max_queue: int, out: dict, body) -> int:
    """A private site and daemon around body(daemon, site); stop, judge, print; keep the work dir on failure."""
    workdir = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    with Site() as site:
        daemon = DaemonProcess(_config(workdir, browsers, max_queue), log_path=os.path.join(workdir, "daemon.log"))
        try:
            body(daemon, site)
        except BaseException:
            daemon.stop()
            daemon.kill_leftovers()
            _say(f"kept {workdir} (config and daemon.log) for a look at what went wrong")
            raise
        rc = _finish(daemon, out)
    if rc == 0:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        _say(f"kept {workdir}")
    return rc


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="check", required=True)
    b = sub.add_parser("browsers", help="N browsers: start time, PSS, light jobs, derived count vs processes")
    b.add_argument("--browsers", type=int, default=50)
    b.add_argument("--jobs", type=int, default=1000)
    b.add_argument("--concurrency", type=int, default=10,
                   help="jobs in flight (default 10: what 2 cores can render; more only queues in Chromium)")
    s = sub.add_parser("soak", help="control-plane RSS growth over many light jobs")
    s.add_argument("--browsers", type=int, default=4)
    s.add_argument("--jobs", type=int, default=10_000)
    s.add_argument("--checkpoint", type=int, default=1000, help="measure RSS every this many answers")
    s.add_argument("--concurrency", type=int, default=8)
    scale_nodes.add_parser(sub)
    args = ap.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the private daemon is stopped, not orphaned.
    signal.signal(signal.SIGTERM, _interrupt)
    measure.install_network_guard()
    if args.check == "browsers":
        return browsers_check(args)
    if args.check == "nodes":
        return scale_nodes.nodes_check(args)
    return soak_check(args)


if __name__ == "__main__":
    sys.exit(main())
