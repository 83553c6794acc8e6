"""The command line as scripts use it: JSON output, exit codes, batch, stop, startup errors, demo."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from foxden import procs
from foxden.harness import DaemonProcess, write_config


def foxden(*args, timeout=120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "foxden", *args], capture_output=True, text=True,
                          timeout=timeout, **kw)


def test_console_script_is_installed():
    script = os.path.join(os.path.dirname(sys.executable), "foxden")
    assert os.access(script, os.X_OK), "pip install should create the `foxden` console script"
    out = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "submit" in out.stdout


@pytest.mark.browser
def test_submit_status_batch_stop(make_daemon, site, tmp_path):
    d = make_daemon({"pool": {"size": 1}})
    cfg = d.config_path
    ok = foxden("submit", site.url("/page/3"), "-c", cfg, "--json", "--eval", "1 + 1", "--id", "x1",
                "--screenshot", str(tmp_path / "shot.png"))
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert set(doc) == {"id", "status", "error", "result", "attempts", "browser", "elapsed_ms"}
    assert doc["id"] == "x1" and doc["status"] == "ok" and doc["error"] is None
    assert set(doc["result"]) >= {"final_url", "http_status", "title", "content_length", "eval"}
    assert doc["result"]["eval"] == 2 and (tmp_path / "shot.png").read_bytes()[:4] == b"\x89PNG"

    bad = foxden("submit", "file:///etc/passwd", "-c", cfg, "--json")
    assert bad.returncode == 1 and json.loads(bad.stdout)["status"] == "rejected"

    st = foxden("status", "-c", cfg, "--json")
    assert st.returncode == 0
    status = json.loads(st.stdout)
    assert status["browsers"]["live"] == 1 and status["invariants"]["ok"]
    assert set(status) >= {"browsers", "children", "queue", "totals", "watchdog", "restarts", "invariants"}
    table = foxden("status", "-c", cfg)
    assert table.returncode == 0 and "b1" in table.stdout

    src = tmp_path / "jobs.jsonl"
    src.write_text("\n".join([
        json.dumps({"url": site.url("/page/1"), "id": "a"}),
        "this is not json",
        json.dumps({"url": site.url("/page/2"), "id": "b", "eval": "document.title"}),
        json.dumps({"url": site.url("/page/3"), "bogus": 1}),
        json.dumps({"url": "javascript:1", "id": "c"}),
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    b = foxden("batch", str(src), "-c", cfg, "--out", str(out), "--concurrency", "3")
    assert b.returncode == 1  # some jobs were not ok
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 5
    by_id = {x["id"]: x for x in lines if x["id"]}
    assert by_id["a"]["status"] == "ok" and by_id["b"]["result"]["eval"] == "Page 2"
    assert by_id["c"]["status"] == "rejected"
    assert sorted(x["error"]["code"] for x in lines if x["status"] != "ok") == ["bad_input", "bad_input",
                                                                               "unsupported_scheme"]

    pid = d.proc.pid
    stop = foxden("stop", "-c", cfg)
    assert stop.returncode == 0, stop.stderr
    assert not procs.pid_alive(pid) and d.leftovers() == []
    again = foxden("stop", "-c", cfg)
    assert again.returncode == 0 and "not running" in again.stderr
    gone = foxden("submit", site.url("/"), "-c", cfg)
    assert gone.returncode == 3 and "cannot reach" in gone.stderr


def test_bad_config_is_a_clear_error(tmp_path):
    cfg = write_config(tmp_path / "c.toml", {"jobs": {"timeout_s": -1}})
    r = foxden("run", "-c", str(cfg))
    assert r.returncode == 2 and "[jobs] timeout_s" in r.stderr
    r = foxden("status", "-c", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and "missing.toml" in r.stderr


def test_missing_browser_binary_is_a_clear_startup_error(tmp_path):
    cfg = write_config(tmp_path / "c.toml", {"daemon": {"state_dir": str(tmp_path / "s"), "admin_port": 0},
                                             "pool": {"engine": "chromium", "executable_path": "/nonexistent/chrome"}})
    started = time.monotonic()
    r = foxden("run", "-c", str(cfg))
    assert r.returncode == 2, r.stderr
    assert "executable_path /nonexistent/chrome does not exist" in r.stderr
    assert time.monotonic() - started < 20  # no crash loop
    assert procs.find_marked(procs.state_tag(tmp_path / "s") + ":") == []


def test_the_cdp_driver_for_a_firefox_engine_is_refused_at_startup(tmp_path):
    cfg = write_config(tmp_path / "c.toml", {"daemon": {"state_dir": str(tmp_path / "s"), "admin_port": 0},
                                             "pool": {"engine": "firefox", "driver": "cdp"}})
    r = foxden("run", "-c", str(cfg))
    assert r.returncode == 2 and "[pool] driver: cdp drives chromium only" in r.stderr, r.stderr


def test_camoufox_without_its_binary_is_a_clear_startup_error(tmp_path):
    cfg = write_config(tmp_path / "c.toml", {"daemon": {"state_dir": str(tmp_path / "s"), "admin_port": 0},
                                             "pool": {"engine": "camoufox"}})
    r = foxden("run", "-c", str(cfg))
    assert r.returncode == 2 and "camoufox fetch" in r.stderr


@pytest.mark.browser
def test_second_daemon_on_the_same_state_dir_is_refused(make_daemon):
    d = make_daemon({"pool": {"size": 1}})
    r = foxden("run", "-c", d.config_path)
    assert r.returncode == 1 and "another foxden daemon" in r.stderr
    assert d.status()["browsers"]["live"] == 1


@pytest.mark.browser
def test_demo_runs_and_reports(tmp_path):
    r = foxden("demo", "--json", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)
    assert report["ok"] and report["lost"] == [] and report["processes_left"] == []
    assert report["by_status"]["timeout"] >= 2 and report["watchdog_kills"].get("timeout", 0) >= 2
    assert report["answers"]["killed-mid-job"]["attempts"] == 2
    assert report["invariant_samples"] > 3 and report["invariant_violations"] == []
