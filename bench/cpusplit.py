"""Where Chromium's CPU goes per job, foxden's CDP driver against Playwright: ``python -m bench.cpusplit``.

One warm browser each, the benchmark's job list run one job at a time (no
contention), in this process: foxden's driver (`foxden.drivers.chromium`)
and sync Playwright doing the hand-written pool's job (new context, new
page, goto, evaluate, close), both on the same binary with the same
switches. CPU is read from /proc per Chromium process type (browser,
renderer, gpu-process, utility, zygote) plus the Playwright driver (node);
a renderer that exits is counted through its parent's reaped-children time
(`zygote (reaped)`). Prints one JSON line, and a table on stderr.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import sys
import tempfile
import time

from bench import measure
from bench.drivers import EXPR
from bench.run import Site, job_list

def _kind(argv: list[bytes]) -> str:
    exe = os.path.basename(argv[0].decode(errors="replace")) if argv else "?"
    if "crashpad" in exe:
        return "crashpad"
    for arg in argv:
        if arg.startswith(b"--type="):
            return arg.split(b"=", 1)[1].decode(errors="replace")
    return "browser" if "chrom" in exe else exe


def _argv(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read().rstrip(b"\0")
    except OSError:
        return []
    # Chromium rewrites its command line as one string with spaces.
    return raw.split(b"\0") if b"\0" in raw else raw.split(b" ")


def tree_cpu(root: int) -> collections.Counter:
    """CPU seconds of root's descendants by kind: own time, and reaped children's as '<kind> (reaped)'."""
    out: collections.Counter = collections.Counter()
    for st in measure.tree_stats([root]):  # the benchmark's own /proc walk, zombies included
        if st.pid == root:
            continue
        argv = _argv(st.pid)
        # A zombie's command line is empty: name it by what is left, its comm.
        kind = _kind(argv) if any(argv) else f"exited {st.comm}"
        out[kind] += st.cpu
        out[f"{kind} (reaped)"] += st.cpu_children
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cpusplit", description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=60)
    p.add_argument("--executable-path", default="/usr/bin/chromium")
    a = p.parse_args(argv)
    measure.install_network_guard()
    from foxden import engines
    from foxden.config import default_config
    from foxden.drivers import open_driver
    from foxden.protocols.messages import JobSpec

    tmp = tempfile.mkdtemp(prefix="fxcpu", dir="/tmp")
    os.environ["TMPDIR"] = tmp
    site_log = open(os.path.join(tmp, "site.log"), "ab")
    site = Site(site_log)
    urls = job_list(site.base, a.jobs, 7)
    choice = engines.EngineChoice("chromium", a.executable_path, "cpusplit")
    results = {}
    try:
        os.makedirs(os.path.join(tmp, "cdp"))
        pool = default_config().replace(pool={"browser_nice": 0}).pool  # same priority as Playwright's browser
        driver = open_driver(choice, pool, os.path.join(tmp, "cdp"))
        driver.launch()

        def cdp_job(url):
            assert driver.run(JobSpec(key="c", id="c", url=url, eval=EXPR), 30.0).status == "ok"

        from playwright.sync_api import sync_playwright

        pw = sync_playwright().start()
        browser = pw.chromium.launch(executable_path=a.executable_path, args=list(engines.CHROMIUM_ARGS),
                                     headless=True)

        def pw_job(url):
            ctx = browser.new_context()
            page = ctx.new_page()
            page.goto(url, wait_until="load")
            page.evaluate(EXPR)
            ctx.close()

        for name, job in (("foxden_cdp", cdp_job), ("playwright", pw_job)):
            for url in urls[:4]:  # warm
                job(url)
            c0, t0 = tree_cpu(os.getpid()), time.perf_counter()
            for url in urls:
                job(url)
            wall, cpu = time.perf_counter() - t0, tree_cpu(os.getpid()) - c0
            results[name] = {"wall_ms_per_job": round(wall / a.jobs * 1000, 1),
                             "cpu_ms_per_job": round(sum(cpu.values()) / a.jobs * 1000, 1),
                             "by_kind_ms_per_job": {k: round(v / a.jobs * 1000, 1)
                                                    for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v > 0}}
        browser.close()
        pw.stop()
        driver.close(5.0)
    finally:
        site.close()
        site_log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"type": "cpusplit", "jobs": a.jobs, "load1": os.getloadavg()[0], **results}), flush=True)
    for name, r in results.items():
        parts = ", ".join(f"{k} {v}" for k, v in r["by_kind_ms_per_job"].items())
        print(f"{name:11s} {r['wall_ms_per_job']:7.1f} ms/job wall, {r['cpu_ms_per_job']:7.1f} ms/job CPU: {parts}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
