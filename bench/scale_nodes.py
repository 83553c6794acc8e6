"""`python -m bench.scale nodes`: the same batch on a cluster of 1, 2 and 3 nodes, each in its own namespace and CPU quota.

Every node (`foxden run` with `[cluster] role` leader or member) runs in its
own network namespace (tests/netns.py) and its own cgroup v1 CPU quota
(`--cpu`, default 0.6 CPU each), so the box's cores are not what limits a
larger cluster; the first node is the leader and runs browsers of its own.
The site is served inside a namespace of its own on the lab's bridge. For
each size: warm-up jobs, then `--jobs` pages through the leader with
`--per-browser` jobs in flight per browser; jobs/s, and the CPU seconds per
job of the leader's own processes (from /proc: its Python control plane, and
everything in its namespace); per node, the share of the batch's CPU periods
in which its quota throttled it (near 1: the quota was the limit; lower: the
host was), and the host's load average. Prints one JSON object (``--json``: only that).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from foxden.client import job_request

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the namespace lab lives with the tests
import netns  # noqa: E402
import netns_cluster as nc  # noqa: E402

__all__ = ["BASE", "run_size", "nodes_check"]

BASE = {
    "daemon": {"grace_s": 5.0},
    "pool": {"launch_timeout_s": 60.0},
    "jobs": {"timeout_s": 30.0, "retries": 1},
    "watchdog": {"heartbeat_timeout_s": 10.0},
}


def _say(msg: str) -> None:
    print(f"[scale nodes {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _leader_cpu(lab: netns.Lab, node: str) -> tuple[float, float]:
    """(CPU seconds of the Python processes in the leader's namespace, of all its processes), own times only."""
    from bench import measure

    py = total = 0.0
    for pid in lab.pids(node):
        st = measure.read_stat(pid)
        if st is None:
            continue
        total += st.cpu + st.cpu_children
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if measure.kind_of(name, argv0) == "python":
            py += st.cpu + st.cpu_children
    return py, total


def _cpu_stat(lab: netns.Lab, names: list[str]) -> dict[str, dict[str, int]]:
    """Each node's cgroup cpu.stat (nr_periods, nr_throttled, throttled_time): was the quota the limit?"""
    out = {}
    for n in names:
        lines = (lab[n].cgroup / "cpu.stat").read_text().split("\n")
        out[n] = {k: int(v) for k, v in (line.split() for line in lines if line.strip())}
    return out


def _throttled(before: dict, after: dict) -> dict[str, float]:
    """Per node, the share of CPU periods of the batch in which its quota held it back."""
    out = {}
    for n, a in after.items():
        periods = a["nr_periods"] - before[n]["nr_periods"]
        out[n] = round((a["nr_throttled"] - before[n]["nr_throttled"]) / periods, 3) if periods else 0.0
    return out


def _batch(cluster: nc.Cluster, site, tag: str, n: int, concurrency: int) -> tuple[int, int, float]:
    """(ok, answered, seconds) for n page jobs with `concurrency` in flight."""
    reqs = [job_request(site.url(f"/page/{i}?job={tag}-{i}"), id=f"{tag}-{i}") for i in range(n)]
    t0 = time.monotonic()
    with cluster.head.client(timeout=300) as c:
        answers = [a for _, _, a in c.submit_many(reqs, concurrency=concurrency)]
    took = time.monotonic() - t0
    return sum(a.status == "ok" for a in answers), len(answers), took


def run_size(size: int, args) -> dict:
    """One cluster of `size` nodes: start, warm up, time the batch, stop; its figures."""
    names = [f"n{i + 1}" for i in range(size)]
    out: dict = {"nodes": size, "browsers": size * args.browsers}
    with netns.Lab([*names, "web"], cpu_quota=args.cpu) as lab:
        site = lab.site_in("web", nc.HitSite).start()
        cluster = nc.Cluster(lab, {k: dict(v) for k, v in BASE.items()}, {n: args.browsers for n in names},
                             heartbeat_s=1.0, dead_after_s=5.0)
        try:
            t0 = time.monotonic()
            cluster.start(timeout=240)
            out["start_s"] = round(time.monotonic() - t0, 1)
            flight = args.per_browser * size * args.browsers
            _batch(cluster, site, "warm", size * args.browsers * 2, flight)
            cpu0, stat0 = _leader_cpu(lab, names[0]), _cpu_stat(lab, names)
            ok, answered, took = _batch(cluster, site, "run", args.jobs, flight)
            cpu1, stat1 = _leader_cpu(lab, names[0]), _cpu_stat(lab, names)
            hits = site.job_hits()
            out.update(jobs=args.jobs, ok=ok, answered=answered, seconds=round(took, 2),
                       jobs_per_s=round(answered / took, 3), in_flight=flight,
                       leader_cpu_s_per_job=round((cpu1[0] - cpu0[0]) / max(answered, 1), 4),
                       leader_ns_cpu_s_per_job=round((cpu1[1] - cpu0[1]) / max(answered, 1), 4),
                       pages_fetched_twice=sum(1 for j, n in hits.items() if j.startswith("run") and n > 1),
                       by_node=_by_node(site, lab, names), throttled_share=_throttled(stat0, stat1),
                       load_avg_1m=round(os.getloadavg()[0], 1))
        finally:
            out["stop_problems"] = cluster.stop()
            cluster.close()
            site.close()
    out["left"] = netns.leftovers(lab.tag)
    return out


def _by_node(site, lab: netns.Lab, names: list[str]) -> dict[str, int]:
    """Jobs of the timed batch per node, by the address that fetched the page."""
    who = {lab[n].address: n for n in names}
    counts = dict.fromkeys(names, 0)
    for job, addrs in site.job_nodes().items():
        if job.startswith("run-"):
            for a in addrs:
                counts[who.get(a, a)] = counts.get(who.get(a, a), 0) + 1
    return counts


def nodes_check(args) -> int:
    """Sizes 1..3 (`--sizes`); the 3-vs-1 throughput ratio against the target; 0 if every job was answered ok."""
    reason = netns.unavailable_reason() or nc.cluster_available()
    if reason:
        _say(f"cannot run: {reason}")
        return 2
    runs = []
    for size in args.sizes:
        _say(f"{size} node(s), {args.browsers} browser(s) each, {args.cpu} CPU each")
        runs.append(run_size(size, args))
        _say(f"{size} node(s): {runs[-1].get('jobs_per_s')} jobs/s")
    by = {r["nodes"]: r for r in runs}
    out = {"check": "nodes", "cpu_per_node": args.cpu, "browsers_per_node": args.browsers, "runs": runs}
    if 1 in by and max(by) > 1 and by[1].get("jobs_per_s"):
        top = max(by)
        out[f"ratio_{top}_vs_1"] = round(by[top]["jobs_per_s"] / by[1]["jobs_per_s"], 2)
        out["target_3_vs_1"] = 2.7
    print(json.dumps(out, indent=None if args.json else 1), flush=True)
    good = all(r.get("ok") == r.get("jobs") and not r["left"] and not r["stop_problems"] for r in runs)
    return 0 if good else 1


def add_parser(sub) -> None:
    n = sub.add_parser("nodes", help="the same batch on 1, 2, 3 cluster nodes (own namespace and CPU quota each)")
    n.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 3])
    n.add_argument("--cpu", type=float, default=0.6, help="CPUs per node (cgroup v1 cpu.cfs_quota_us)")
    n.add_argument("--browsers", type=int, default=2, help="browsers per node ([pool] size)")
    n.add_argument("--jobs", type=int, default=120)
    n.add_argument("--per-browser", type=int, default=2, help="jobs in flight per browser")
    n.add_argument("--json", action="store_true", help="print only the JSON object, compactly")

