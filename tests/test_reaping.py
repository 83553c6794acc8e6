"""Nothing survives its owner: startup reaper, control-plane death, per-browser temp dirs."""
from __future__ import annotations

import os
import signal
import threading
import time

import psutil
import pytest

from foxden import procs
from foxden.client import job_request

pytestmark = pytest.mark.browser


def _instance_prefix(d) -> str:
    return f"{d.state_prefix}{d.status()['instance']}/"


def test_supervisor_death_stops_the_daemon_with_nonzero_exit(make_daemon):
    d = make_daemon()
    d.expect_failure = True
    st = d.status()
    prefix = _instance_prefix(d)
    assert len(procs.find_marked(prefix)) > 10  # daemon, actors, drivers, browsers
    os.kill(st["pids"]["supervisor"], signal.SIGKILL)
    d.proc.wait(30)
    assert d.proc.returncode == 1
    assert "supervisor process" in d.log_tail() and "died" in d.log_tail()
    assert procs.find_marked(prefix) == [], "children of a dead supervisor live on"


def test_restart_after_sigkill_of_every_foxden_process_reaps_the_old_instance(make_daemon, site):
    d = make_daemon()
    old = _instance_prefix(d)
    done = threading.Event()

    def load():
        try:
            with d.client() as c:
                list(c.submit_many([job_request(site.url("/slow?ms=3000")) for _ in range(4)], concurrency=4))
        except Exception:
            pass
        done.set()

    threading.Thread(target=load, daemon=True).start()
    d.wait_until(lambda s: s["browsers"]["by_state"]["busy"] == 2, interval=0.05)
    marked = procs.find_marked(old)
    pythons = [p for p in marked if "python" in p.name()]
    assert pythons, "expected the daemon and its actors"
    # Freeze the browsers first: a healthy orphan exits on its own once its
    # pipe closes, a hung one (the case that matters) does not.
    for p in marked:
        if p not in pythons:
            p.send_signal(signal.SIGSTOP)
    procs.kill_and_wait(pythons)  # what an OOM killer or `kill -9` of the service would do
    d.proc.wait(10)
    done.wait(10)
    orphans = procs.find_marked(old)
    assert any("chrom" in p.name() for p in orphans), "the scenario needs orphaned browsers"
    d.expect_failure = True  # the first daemon died by SIGKILL
    d.start()  # same config, same state dir
    assert procs.find_marked(old) == [], "processes of the killed instance survived the restart"
    assert "left by an earlier instance" in d.log_tail(10_000)
    with d.client() as c:
        assert c.submit(site.url("/page/1")).status == "ok"
    assert d.status()["invariants"]["ok"]


def test_browser_temp_dirs_live_under_the_state_dir_and_are_removed(make_daemon, site):
    d = make_daemon({"pool": {"size": 1}})
    browsers = os.path.join(str(d.config.daemon.state_dir), "browsers")
    before = set(os.listdir("/tmp"))
    first = d.status()["children"][0]
    assert os.listdir(browsers) == [first["id"]]
    assert os.listdir(os.path.join(browsers, first["id"])), "the browser's profile lives in its own dir"
    os.kill(first["pid"], signal.SIGKILL)
    d.wait_until(lambda s: s["children"] and s["children"][0]["id"] != first["id"]
                 and s["children"][0]["state"] == "idle")
    assert first["id"] not in os.listdir(browsers)
    new = {n for n in set(os.listdir("/tmp")) - before
           if n.startswith(("playwright", "org.chromium.Chromium"))}
    assert not new, f"browser files escaped to /tmp: {new}"
