"""Where foxden's per-job overhead goes: ``python -m bench.diagnose [--jobs 200] [--rounds 5] [--pyspy]``.

On the tiny page at concurrency 1 (warm browsers, one browser each), in
interleaved rounds, it times:

- ``pw_async``: the hand-written pool's job (async Playwright: new_context,
  new_page, goto, evaluate, context.close), step by step;
- ``driver``: the browser actor's job run by its driver (foxden's CDP driver
  for Chromium) in this process, without the actor around it;
- ``foxden``: the same job through a warm daemon of one browser: the client's
  latency and the daemon's own ``elapsed_ms`` (dispatcher in, dispatcher out).

Differences of medians then split foxden's added latency into: the browser
driver against the pool's job (its steps and round trips), the actor hops
(dispatcher -> supervisor -> browser -> supervisor -> dispatcher: daemon
elapsed minus the replayed job), and the gateway + client socket (client
latency minus daemon elapsed). With --pyspy it also samples the daemon's
whole process tree with py-spy during one extra foxden round and prints the
top functions by CPU, per actor process.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

from bench import measure
from bench.drivers import EXPR
from bench.run import Site

MS = 1000.0


def _median_steps(rows: list[dict]) -> dict:
    return {k: round(statistics.median(r[k] for r in rows) * MS, 2) for k in rows[0]}


class AsyncPool:
    """The hand-written pool's job on one warm browser, in a thread with its own loop."""

    def __init__(self, exe: str, args: list[str]):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.call(self._start(exe, args))

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def _start(self, exe, args):
        from playwright.async_api import async_playwright

        self.pw = await async_playwright().start()
        self.browser = await self.pw.chromium.launch(executable_path=exe, args=args, headless=True)

    async def _job(self, url: str) -> dict:
        t = [time.perf_counter()]
        ctx = await self.browser.new_context(); t.append(time.perf_counter())
        page = await ctx.new_page(); t.append(time.perf_counter())
        await page.goto(url, wait_until="load"); t.append(time.perf_counter())
        await page.evaluate(EXPR); t.append(time.perf_counter())
        await ctx.close(); t.append(time.perf_counter())
        names = ("new_context", "new_page", "goto", "evaluate", "context_close")
        out = {n: t[i + 1] - t[i] for i, n in enumerate(names)}
        out["total"] = t[-1] - t[0]
        return out

    def job(self, url: str) -> dict:
        return self.call(self._job(url))

    def close(self):
        async def _close():
            await self.browser.close()
            await self.pw.stop()
        self.call(_close())
        self.loop.call_soon_threadsafe(self.loop.stop)


class DriverSteps:
    """The browser actor's job, run by its own driver in this process: no actor, no hops, no socket."""

    def __init__(self, exe: str, tmpdir: Path):
        from foxden import engines
        from foxden.config import default_config
        from foxden.drivers import open_driver

        (tmpdir / "driver").mkdir()
        pool = default_config().replace(pool={"executable_path": exe}).pool
        self.driver = open_driver(engines.EngineChoice("chromium", exe, "diagnose"), pool, str(tmpdir / "driver"))
        self.driver.launch()

    def job(self, url: str) -> dict:
        from foxden.protocols.messages import JobSpec

        t = time.perf_counter()
        outcome = self.driver.run(JobSpec(key="d", id="d", url=url, eval=EXPR), 30.0)
        assert outcome.status == "ok", outcome
        return {"total": time.perf_counter() - t}

    def close(self):
        self.driver.close(5.0)


def pyspy_top(raw: str, roles: dict[int, str], n: int = 12) -> dict:
    """Top functions by self samples and by inclusive samples, per role, from py-spy's raw (collapsed) output."""
    self_by: dict[str, Counter] = defaultdict(Counter)
    incl_by: dict[str, Counter] = defaultdict(Counter)
    totals: Counter = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        role = "?"
        # With --subprocesses a child's stack hangs under its ancestors'
        # "process N" frames: the innermost one owns the samples.
        last = max((i for i, f in enumerate(frames) if f.startswith("process ")), default=None)
        if last is not None:
            m = re.match(r"process (\d+)", frames[last])
            pid = int(m.group(1)) if m else -1
            role = roles.get(pid, f"pid {pid}")
            frames = frames[last + 1:]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        c = int(count)
        totals[role] += c
        names = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].split("/")[-1] + ")" if " (" in f else f
                 for f in frames]
        self_by[role][names[-1]] += c
        for name in set(names):
            incl_by[role][name] += c
    out = {}
    for role, total in totals.most_common():
        out[role] = {"samples": total,
                     "self": [(k, round(v / total, 3)) for k, v in self_by[role].most_common(n)],
                     "inclusive": [(k, round(v / total, 3)) for k, v in incl_by[role].most_common(n)]}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.diagnose", description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=200, help="tiny-page jobs per driver, over all rounds (200)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    p.add_argument("--url", default="/tiny", help="page path on the bench site (/tiny)")
    p.add_argument("--pyspy", action="store_true", help="also profile the daemon tree with py-spy")
    p.add_argument("--pyspy-jobs", type=int, default=300, help="jobs in the profiled round (300)")
    p.add_argument("--executable-path", default="/usr/bin/chromium")
    a = p.parse_args(argv)
    measure.install_network_guard()

    from foxden.client import Client
    from foxden.engines import CHROMIUM_ARGS
    from foxden.harness import DaemonProcess, write_config

    tmp = Path(tempfile.mkdtemp(prefix="fxd", dir="/tmp"))
    args = list(CHROMIUM_ARGS)
    site_log = open(tmp / "site.log", "ab")
    site = Site(site_log)
    url = site.base + a.url
    daemon = pool = steps = None
    try:
        cfg = write_config(tmp / "foxden.toml", {
            "daemon": {"state_dir": str(tmp / "state"), "admin_port": 0},
            "pool": {"engine": "chromium", "executable_path": a.executable_path, "size": 1},
        })
        daemon = DaemonProcess(cfg, log_path=tmp / "daemon.log").start(timeout=180)
        client = Client(daemon.config.daemon.socket, timeout=120)
        pool, steps = AsyncPool(a.executable_path, args), DriverSteps(a.executable_path, tmp)
        rows = {"pw_async": [], "driver": [], "foxden": []}
        for _ in range(3):  # warm-up
            pool.job(url), steps.job(url), client.submit(url, eval=EXPR)
        if a.jobs <= 0:  # profile only
            out = {"type": "diagnose", "url": a.url, "load1": os.getloadavg()[0]}
            if a.pyspy:
                out["pyspy"] = profile(daemon, client, url, a.pyspy_jobs, tmp)
            print(json.dumps(out), flush=True)
            client.close()
            return 0
        per_round = max(1, a.jobs // a.rounds)
        for r in range(a.rounds):
            order = ["pw_async", "driver", "foxden"]
            order = order[r % 3:] + order[:r % 3]
            for d in order:
                for _ in range(per_round):
                    if d == "pw_async":
                        rows[d].append(pool.job(url))
                    elif d == "driver":
                        rows[d].append(steps.job(url))
                    else:
                        t = time.perf_counter()
                        ans = client.submit(url, eval=EXPR)
                        lat = time.perf_counter() - t
                        assert ans.status == "ok", ans
                        rows[d].append({"client_latency": lat, "daemon_elapsed": ans.elapsed_ms / MS,
                                        "gateway_and_client": lat - ans.elapsed_ms / MS})
        med = {d: _median_steps(v) for d, v in rows.items()}
        out = {"type": "diagnose", "url": a.url, "jobs_per_driver": per_round * a.rounds, "rounds": a.rounds,
               "load1": os.getloadavg()[0], "medians_ms": med}
        fx, drv, asy = med["foxden"], med["driver"], med["pw_async"]
        out["split_ms"] = {
            "added_latency": round(fx["client_latency"] - asy["total"], 2),
            "driver_vs_async_pool": round(drv["total"] - asy["total"], 2),
            "actor_hops_dispatcher_to_browser_and_back": round(fx["daemon_elapsed"] - drv["total"], 2),
            "gateway_and_client_socket": round(fx["gateway_and_client"], 2),
        }
        if a.pyspy:
            out["pyspy"] = profile(daemon, client, url, a.pyspy_jobs, tmp)
        print(json.dumps(out), flush=True)
        print(json.dumps(out, indent=1), file=sys.stderr)
        client.close()
    finally:
        for x in (pool, steps):
            if x is not None:
                x.close()
        if daemon is not None:
            daemon.stop()
            daemon.kill_leftovers()
        site.close()
        site_log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def profile(daemon, client, url: str, jobs: int, tmp: Path) -> dict:
    """py-spy the daemon's tree while `jobs` tiny jobs run at concurrency 1; top functions per actor."""
    st = daemon.status()
    roles = {daemon.proc.pid: "daemon main"}
    for name, pid in st.get("pids", {}).items():
        roles[pid] = name
    for c in st["children"]:
        roles[c["pid"]] = "browser actor"
    for s in measure.tree_stats([daemon.proc.pid]):
        if s.pid not in roles and s.comm.startswith("python"):
            parent = roles.get(s.ppid)
            roles[s.pid] = "gateway?" if parent and parent != "daemon main" else "thespian admin?"
    out_file = tmp / "pyspy.txt"
    spy = subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record",
                            "--pid", str(daemon.proc.pid), "--subprocesses", "--rate", "200", "--nonblocking",
                            "--format", "raw", "--output", str(out_file)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)  # py-spy attaches

    def cpu_by_role() -> dict:
        out: dict = defaultdict(float)
        for st in measure.tree_stats([daemon.proc.pid]):
            role = roles.get(st.pid) or measure.kind_of(st.comm)
            out[role] += st.cpu  # own time only: the roles' children are other roles
            if role in ("chromium", "other"):
                out[role] += st.cpu_children  # reaped renderers
        return out

    c0 = cpu_by_role()
    t = time.perf_counter()
    for _ in range(jobs):
        client.submit(url, eval=EXPR)
    wall = time.perf_counter() - t
    c1 = cpu_by_role()
    cpu_ms_per_job = {k: round((c1.get(k, 0.0) - c0.get(k, 0.0)) / jobs * MS, 2) for k in sorted(c1.keys() | c0.keys())}
    spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
    try:
        spy.wait(60)
    except subprocess.TimeoutExpired:
        spy.kill()
    raw = out_file.read_text() if out_file.exists() else ""
    if os.environ.get("BENCH_PYSPY_RAW"):
        Path(os.environ["BENCH_PYSPY_RAW"]).write_text(raw)
    return {"jobs": jobs, "wall_s": round(wall, 2), "cpu_ms_per_job_by_process": cpu_ms_per_job, "roles": {str(k): v for k, v in roles.items()},
            "top": pyspy_top(raw, roles), "stderr": (spy.stderr.read() if spy.stderr else "")[-500:]}


if __name__ == "__main__":
    sys.exit(main())
