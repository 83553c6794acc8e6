"""One real crash per restart strategy: a group restart is one restart, and relaunches each sibling once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from foxden import procs
from foxden.supervisor.children import STRICT_ENV

pytestmark = pytest.mark.browser

SIZE = 4
VICTIM = "b2"  # second in start order: rest_for_one stops b3 and b4, and leaves b1 alone

# strategy -> (browsers that survive the crash, browsers launched for it, exits by reason)
EXPECTED = {
    "one_for_one": (["b1", "b3", "b4"], ["b5"], {"crash": 1}),
    "one_for_all": ([], ["b5", "b6", "b7", "b8"], {"crash": 1, "sibling_one_for_all": 3}),
    "rest_for_one": (["b1"], ["b5", "b6", "b7"], {"crash": 1, "sibling_rest_for_one": 2}),
}


@pytest.fixture(autouse=True)
def strict_states(monkeypatch):
    """The daemons started here raise on an illegal child state transition (and log it)."""
    monkeypatch.setenv(STRICT_ENV, "1")


def status_json(daemon) -> dict:
    """`foxden status --json`, as an operator would read it."""
    out = subprocess.run([sys.executable, "-m", "foxden", "status", "--json", "-c", daemon.config_path],
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def settled(st: dict, exits: int, size: int = SIZE) -> bool:
    """Every browser idle, the pool full, and as many exits as the crash should cause."""
    return (st["browsers"]["live"] == size and st["browsers"]["by_state"]["idle"] == size
            and sum(st["exits"].values()) >= exits)


def crash_one_browser(make_daemon, strategy: str, restart: str = "permanent") -> tuple[dict, dict]:
    d = make_daemon({"pool": {"size": SIZE, "launch_timeout_s": 90.0},
                     "restart": {"strategy": strategy, "policy": restart}})
    before = d.wait_until(lambda s: s["browsers"]["by_state"]["idle"] == SIZE, timeout=120)
    assert [c["id"] for c in before["children"]] == ["b1", "b2", "b3", "b4"]
    assert before["restarts"] == 0 and before["exits"] == {}
    victim = next(c for c in before["children"] if c["id"] == VICTIM)
    os.kill(victim["browser_pids"][0], signal.SIGKILL)  # the browser's main process, for real
    _, _, exits = EXPECTED[strategy]
    d.wait_until(lambda s: settled(s, sum(exits.values())), timeout=180, interval=0.25)
    after = status_json(d)
    assert not procs.pid_alive(victim["pid"])
    assert "illegal transition" not in d.log_tail(100_000)
    return before, after


@pytest.mark.parametrize("strategy", sorted(EXPECTED))
def test_one_crash_is_one_restart_and_relaunches_each_stopped_browser_once(make_daemon, strategy):
    _, after = crash_one_browser(make_daemon, strategy)
    survivors, launched, exits = EXPECTED[strategy]
    ids = [c["id"] for c in after["children"]]
    assert after["restarts"] == 1, after
    assert ids == survivors + launched, ids
    assert after["exits"] == exits, after["exits"]
    assert after["pool"]["state"] == "ok" and after["browsers"]["live"] == SIZE


def test_transient_siblings_stopped_by_a_group_restart_come_back(make_daemon):
    # Their exits are the group restart's, not a normal exit of their own:
    # the pool does not shrink.
    _, after = crash_one_browser(make_daemon, "one_for_all", restart="transient")
    assert after["restarts"] == 1
    assert [c["id"] for c in after["children"]] == ["b5", "b6", "b7", "b8"]
    assert after["pool"]["max"] == SIZE and after["browsers"]["live"] == SIZE


def test_a_job_on_a_sibling_stopped_by_a_group_restart_runs_again(make_daemon, site):
    # The sibling's exit is the group restart's, not the job's doing nor a
    # shutdown: its job is retried on a relaunched browser, not failed.
    d = make_daemon({"pool": {"size": 3, "launch_timeout_s": 90.0}, "restart": {"strategy": "one_for_all"},
                     "jobs": {"timeout_s": 60.0, "retries": 1}})

    def submit():
        with d.client() as c:
            return c.submit(site.url("/slow?ms=6000"))

    with ThreadPoolExecutor(1) as runner:
        answer = runner.submit(submit)
        st = d.wait_until(lambda s: any(c["state"] == "busy" for c in s["children"]), timeout=60, interval=0.05)
        victim = next(c for c in st["children"] if c["state"] == "idle")
        os.kill(victim["browser_pids"][0], signal.SIGKILL)
        a = answer.result(timeout=240)
    assert a.status == "ok" and a.attempts == 2, a
    st = d.wait_until(lambda s: settled(s, 3, size=3), timeout=180)
    assert st["restarts"] == 1 and st["exits"] == {"crash": 1, "sibling_one_for_all": 2}, st["exits"]
    assert st["watchdog"]["kills_by_reason"].get("sibling_one_for_all") == 1  # the busy one, killed
