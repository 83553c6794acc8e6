"""Logs: JSON lines with the daemon instance, actor, browser, job and session on the records."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.browser


def test_json_logs_carry_context(make_daemon, site):
    d = make_daemon({"daemon": {"log_format": "json"}, "pool": {"size": 1},
                     "jobs": {"timeout_s": 1.0, "jitter_s": 0.0}})
    with d.client() as c:
        hung = c.submit(site.url("/"), eval="new Promise(() => {})", session="s1", id="hung-1")
    assert hung.status == "timeout"
    d.wait_until(lambda s: s["browsers"]["by_state"]["idle"] == 1)
    d.stop()
    records = [json.loads(line) for line in open(d.log_path) if line.strip()]
    assert records, "no log lines"
    assert all({"ts", "level", "logger", "pid", "message"} <= set(r) for r in records)
    instance = records[0]["instance"]
    assert instance and all(r.get("instance") == instance for r in records if r["logger"].startswith("foxden"))
    kill = next(r for r in records if "watchdog: killing" in r["message"])
    assert (kill["actor"], kill["browser"], kill["job"], kill["session"]) == ("supervisor", hung.browser,
                                                                              "hung-1", "s1")
    assert {r.get("actor") for r in records} >= {"daemon", "supervisor"}
