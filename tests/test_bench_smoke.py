"""The benchmark harness still runs: `bench.run --smoke`, `bench.cpusplit` and `bench.scale soak`, briefly, end to end."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.browser  # drives real browsers; in `make test` like every other test


def test_bench_smoke():
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--smoke", "--json-only"], cwd=ROOT,
                          capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    runs = [x for x in lines if x.get("type") == "run"]
    summaries = [x for x in lines if x.get("type") == "summary"]
    detail = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert len(summaries) == 1, detail
    summary = summaries[0]
    drivers = summary["config"]["drivers"]
    assert {"foxden", "pwpool"} <= set(drivers), detail
    assert {r["driver"] for r in runs} == set(drivers), detail
    for r in runs:
        where = f"{r['driver']}: {json.dumps(r)[:2000]}"
        assert "failed" not in r, where
        assert r["ok"] == r["jobs"] == summary["config"]["jobs"], where
        assert r["errors"] == 0 and r["warm_errors"] == 0, where
        assert r["left"] == 0, where
        assert r["cpu_s"] > 0 and r["peak_pss_mb"] > 0 and r["final_pss_mb"] > 0, where
        assert r["latency_ms"]["p50"] > 0 and r["jobs_per_s"] > 0, where
    for base in drivers:
        if base != "foxden":
            ratios = summary["ratios"][f"foxden/{base}"]
            for key in ("throughput", "cpu_per_job", "p50", "peak_pss", "final_pss"):
                assert ratios[key] > 0, (base, key, ratios)
    assert summary["added_latency_ms_p50"] is not None, detail
    assert summary["probe_errors"] == 0 and summary["probe_left"] == 0, detail
    assert set(summary["probe"]["p50_ms"]) == set(drivers), detail
    assert summary["results_agree"], detail
    assert summary["left_after_all"] == 0, summary["left_after_all_procs"]
    assert all(v == 0 for v in summary["errors"].values()), detail
    assert all(v == 0 for v in summary["left"].values()), detail
    assert proc.returncode == 0, detail


def test_cpusplit_smoke():
    """`python -m bench.cpusplit` splits both drivers' Chromium CPU by process type."""
    proc = subprocess.run([sys.executable, "-m", "bench.cpusplit", "--jobs", "4"], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    for name in ("foxden_cdp", "playwright"):
        kinds = out[name]["by_kind_ms_per_job"]
        assert out[name]["cpu_ms_per_job"] > 0 and "browser" in kinds, out
    assert "node" in out["playwright"]["by_kind_ms_per_job"] and "node" not in out["foxden_cdp"]["by_kind_ms_per_job"]


def test_soak_smoke():
    """`python -m bench.scale soak` measures the control plane at each checkpoint, heap and files apart."""
    proc = subprocess.run([sys.executable, "-m", "bench.scale", "soak", "--browsers", "2", "--jobs", "40",
                           "--checkpoint", "20", "--concurrency", "4"], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["ok"] and out["jobs"]["answered"] == 40 and out["processes_left"] == [], out
    assert [c["jobs"] for c in out["checkpoints"]] == [20, 40], out
    for c in out["checkpoints"]:
        assert {"supervisor", "dispatcher", "admin", "daemon"} <= set(c["rss_kb"]), c
        assert c["total_kb"] == sum(c["rss_kb"].values()) and 0 < c["anon_kb"] < c["total_kb"], c
    first, last = out["checkpoints"]
    assert out["growth_kb"] == last["total_kb"] - first["total_kb"], out
    assert out["growth_anon_kb"] == last["anon_kb"] - first["anon_kb"], out
