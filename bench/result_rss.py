"""What a large result costs the control plane: supervisor and dispatcher RSS around one big eval job.

    PYTHONPATH=<checkout> python -m bench.result_rss [--mb 32] [--jobs 3]

Starts a private daemon (one Chromium) from that checkout, reads VmRSS and
VmHWM (peak) of the supervisor and the dispatcher, runs `--jobs` jobs whose
eval returns a string of `--mb` MiB, and reads them again."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import tempfile

from foxden.config import JobsConfig
from foxden.harness import DaemonProcess, write_config
from foxden.testsite import Site


def _mem(pid: int) -> dict[str, float]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024.0  # MiB
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=32)
    ap.add_argument("--jobs", type=int, default=3)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="fxrss", dir="/tmp")
    jobs = {"timeout_s": 60.0}
    if "max_result_mb" in {f.name for f in dataclasses.fields(JobsConfig)}:
        jobs["max_result_mb"] = 48
    cfg = write_config(os.path.join(work, "foxden.toml"), {
        "daemon": {"state_dir": os.path.join(work, "state"), "admin_port": 0},
        "pool": {"size": 1}, "jobs": jobs,
    })
    try:
        with Site() as site, DaemonProcess(cfg, log_path=os.path.join(work, "daemon.log")) as d:
            pids = d.status()["pids"]
            before = {role: _mem(pids[role]) for role in ("supervisor", "dispatcher")}
            sizes = []
            with d.client(timeout=120) as c:
                for _ in range(args.jobs):
                    a = c.submit(site.url("/"), eval=f"'x'.repeat({args.mb} * 1024 * 1024)")
                    assert a.status == "ok", a
                    sizes.append(len(a.result.eval))
            after = {role: _mem(pids[role]) for role in ("supervisor", "dispatcher")}
        print(json.dumps({
            "result_bytes": sizes[0], "jobs": args.jobs,
            **{role: {"rss_before_mib": round(before[role]["VmRSS"], 1),
                      "rss_after_mib": round(after[role]["VmRSS"], 1),
                      "peak_growth_mib": round(after[role]["VmHWM"] - before[role]["VmHWM"], 1)}
               for role in before},
        }, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
