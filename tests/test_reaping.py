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


def test_sigkill_of_the_daemon_alone_ends_its_instance(make_daemon, site):
    """The top level is gone, so nothing could stop or watch what is left: the supervisor
    notices on its next watchdog tick, kills the rest of the instance and exits."""
    d = make_daemon({"pool": {"size": 2}})
    d.expect_failure = True  # SIGKILLed on purpose
    prefix = _instance_prefix(d)
    browsers = os.path.join(str(d.config.daemon.state_dir), "browsers")
    answers: list = []

    def in_flight():
        try:
            with d.client(timeout=60) as c:
                answers.append(c.submit(site.url("/"), eval="new Promise(() => {})", timeout_s=60))
        except Exception as exc:  # the connection closes with the instance
            answers.append(exc)

    worker = threading.Thread(target=in_flight, daemon=True)
    worker.start()
    d.wait_until(lambda s: s["queue"]["in_flight"] == 1, interval=0.05)
    assert len(procs.find_marked(prefix)) > 10
    d.proc.kill()
    d.proc.wait(10)
    deadline = time.monotonic() + 15
    while procs.find_marked(prefix) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = procs.find_marked(prefix)
    assert left == [], f"an orphaned instance lives on: {[(p.pid, p.name()) for p in left]}"
    assert f"daemon (pid {d.proc.pid}) is gone" in d.log_tail(10_000)
    assert not os.path.exists(browsers), "the browsers' temp dirs outlived the instance"
    worker.join(30)
    assert len(answers) == 1 and isinstance(answers[0], Exception), answers


def _instance_processes(daemon_pid: int, prefix: str, browsers: str) -> dict[int, tuple[float, str]]:
    """pid -> (create time, command line) of everything an instance started: its daemon's process
    tree (the daemon is a subreaper, so a re-parented crashpad handler is in it), and anything
    re-parented elsewhere, found by its marker or the browser profile in its command line."""
    found = {daemon_pid: psutil.Process(daemon_pid), **{p.pid: p for p in procs.descendants(daemon_pid)}}
    found.update((p.pid, p) for p in procs.find_marked(prefix))
    # The test's own wide net (never the product's): anything naming the browsers' dirs in its argv.
    for p in psutil.process_iter(["cmdline"]):
        if any(browsers + "/" in arg for arg in p.info["cmdline"] or ()):
            found.setdefault(p.pid, p)
    out = {}
    for pid, p in found.items():
        try:
            out[pid] = (procs.create_time(pid), " ".join(p.cmdline()))
        except psutil.Error:
            pass
    return out


def test_a_restart_reaps_every_process_the_killed_instance_started_before_it_serves(make_daemon, site):
    """The daemon alone is SIGKILLed, the rest of its instance frozen (a hung instance: nothing of it
    can clean up). The next daemon on the same state dir must kill all of it - zygotes and renderers,
    whose environment no longer holds the marker, included - at startup: checked while it runs, not
    after its own final sweep at stop (which would hide a miss)."""
    from wiretap import Tap

    d = make_daemon({"pool": {"size": 2}, "jobs": {"timeout_s": 120.0}})
    old = _instance_prefix(d)
    browsers = os.path.join(str(d.config.daemon.state_dir), "browsers")
    with Tap(str(d.config.daemon.socket)) as tap:
        for i in range(2):  # two busy browsers: each with a renderer
            tap.submit(job_request(site.url("/slow?ms=100000"), id=f"held-{i}"))
        d.wait_until(lambda s: s["browsers"]["by_state"]["busy"] == 2, interval=0.05)
        deadline = time.monotonic() + 60
        while True:  # the renderers start with the pages
            recorded = _instance_processes(d.proc.pid, old, browsers)
            kinds = [next((a for a in cmd.split() if a.startswith("--type=")), cmd.split()[0])
                     for _, cmd in recorded.values()]
            if kinds.count("--type=renderer") >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        for kind in ("--type=zygote", "--type=renderer", "--type=gpu-process"):
            assert kinds.count(kind) >= 2, (kind, kinds)
        # Crashpad's handler re-parents away from its browser (to the daemon, a subreaper).
        assert [k for k in kinds if k.endswith("crashpad_handler")], kinds
        for pid in recorded:  # frozen first: a healthy orphan exits by itself once its pipe closes
            if pid != d.proc.pid:
                os.kill(pid, signal.SIGSTOP)
        try:
            d.proc.kill()  # the daemon alone
            assert d.proc.wait(30) == -signal.SIGKILL
            unmarked = [pid for pid, (created, _) in recorded.items() if procs.pid_alive(pid, created)
                        and procs.marker_of(pid) is None]
            assert unmarked, "the scenario needs processes whose own marker cannot be read"
            d.start()  # same config, same state dir
            left = {pid: cmd for pid, (created, cmd) in recorded.items() if procs.pid_alive(pid, created)}
            assert not left, f"processes of the killed instance outlived the restart's reaper: {left}"
            assert "left by an earlier instance" in d.log_tail(10_000)
            with d.client() as c:
                assert c.submit(site.url("/page/1")).status == "ok"
            assert d.status()["invariants"]["ok"]
        finally:
            procs.kill_and_wait([p for p in procs.processes(recorded) if procs.pid_alive(p.pid, recorded[p.pid][0])])
    rc = d.stop()
    assert rc == 0, f"the restarted daemon exited {rc}:\n{d.log_tail()}"


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


def test_exit_watch_reports_exactly_the_process_that_died():
    """The daemon's watch on its control plane: a quiet wait, then the right role."""
    import subprocess
    a = subprocess.Popen(["sleep", "60"])
    b = subprocess.Popen(["sleep", "60"])
    watch = procs.ExitWatch({"supervisor": a.pid, "dispatcher": b.pid})
    try:
        assert watch.wait(0.1) == []
        os.kill(b.pid, signal.SIGKILL)
        dead, deadline = [], time.monotonic() + 5
        while not dead and time.monotonic() < deadline:
            dead = watch.wait(0.2)  # b is a zombie until reaped: exited all the same
        assert dead == ["dispatcher"]
    finally:
        watch.close()
        watch.close()  # idempotent
        for p in (a, b):
            p.kill()
            p.wait()


def test_process_table_walks_the_same_tree_as_psutil():
    """The admin's one-scan snapshot must find what psutil's per-call scans find."""
    import subprocess
    top = subprocess.Popen(["bash", "-c", "sleep 60 & (sleep 60 & sleep 60 & wait) & wait"])
    try:
        deadline = time.monotonic() + 5
        while len(procs.descendants(top.pid)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        expected = sorted(p.pid for p in procs.descendants(top.pid))
        assert len(expected) == 4  # sleep, subshell, and the subshell's two sleeps
        table = procs.ProcessTable()
        assert sorted(table.descendants(top.pid)) == expected
        assert sorted(table.children(top.pid)) == sorted(p.pid for p in psutil.Process(top.pid).children())
        assert table.descendants(2 ** 22 + 1) == []  # no such pid: empty, no error
        assert table.tree(top.pid) == [top.pid, *table.descendants(top.pid)]
        assert table.tree(2 ** 22 + 1) == [] and table.tree(None) == []
    finally:
        for p in procs.descendants(top.pid):
            p.kill()
        top.kill()
        top.wait()


def test_pid_alive_with_create_time_tells_a_reused_pid_apart():
    """The supervisor's fallback for a dropped exit notice must not mistake a new process for its child."""
    me = os.getpid()
    created = procs.create_time(me)
    assert procs.pid_alive(me, created)
    assert not procs.pid_alive(me, created - 5.0)  # same pid, another process's birth: not ours
    assert procs.pid_alive(me)  # without a create time, any live process under that pid counts


def test_a_clock_step_does_not_make_a_live_process_look_like_a_reused_pid(monkeypatch):
    """psutil's wall-clock create_time() adds the boot time as the kernel reports it now, which
    moves when the clock is stepped (NTP, a resumed VM); the supervisor would then take its live
    daemon for a dead one and end the instance. Stepping this machine's clock in a test is not
    an option, so psutil's boot time is moved instead."""
    import psutil._pslinux as pslinux
    me = os.getpid()
    created = procs.create_time(me)
    real = pslinux.boot_time
    monkeypatch.setattr(pslinux, "boot_time", lambda: real() + 3.0)  # the clock stepped 3 s forward
    assert procs.pid_alive(me, created)
    assert procs.create_time(me) == created


def _spawner_script(count: int, interval_s: float) -> str:
    """Forks a marked child (which sleeps) `count` times, `interval_s` apart, then sleeps itself."""
    return f"""
import os, time
for _ in range({count}):
    if os.fork() == 0:
        time.sleep(120)
        os._exit(0)
    time.sleep({interval_s})
time.sleep(120)
"""


# Forks every millisecond, as a driver killed mid-launch may fork Chromium
# between the cleanup's scan and its SIGKILL.
_FAST_SPAWNER = _spawner_script(400, 0.001)
# Forks every 10 ms for a minute: still forking when a daemon started after it
# (a second later) runs its startup reaper.
_SLOW_SPAWNER = _spawner_script(6000, 0.01)


def _start_spawner(marker: str, script: str = _SLOW_SPAWNER):
    """A spawner with `marker`, once it has forked a few marked children."""
    import subprocess
    import sys
    spawner = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, procs.MARKER_ENV: marker})
    deadline = time.monotonic() + 20
    while len(procs.find_marked(marker)) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert spawner.poll() is None, "the spawner did not start"
    return spawner


def test_kill_marked_scans_again_until_nothing_marked_is_left():
    """The one cleanup path kills what a dying process forked after the scan (long chaos run:
    a driver killed mid-launch forked Chromium, whose profile dir outlived the child)."""
    marker = f"fxtest-{os.getpid()}-{time.time_ns()}/b1/"
    spawner = _start_spawner(marker, _FAST_SPAWNER)
    try:
        survivors = procs.kill_marked(marker)  # with rounds=1 this test fails
        assert survivors == []
        assert procs.find_marked(marker) == [], "a child forked after the first scan survived"
    finally:
        procs.kill_marked(marker)
        spawner.wait(10)


@pytest.mark.parametrize("who", ["foxden stop", "harness", "startup reaper"])
def test_whatever_kills_an_instance_s_leftovers_scans_until_none_is_left(make_daemon, who):
    """Every path that kills a dead instance's leftovers scans again: what is left of a
    SIGKILLed daemon still forks (CI: a Chromium zygote outlived a test's kill of a
    SIGKILLed daemon's tree, forked between its one scan and its SIGKILL)."""
    import subprocess
    import sys
    d = make_daemon({"pool": {"size": 1}}, start=False)
    marker = f"{d.state_prefix}earlier-instance/b1/"
    spawner = _start_spawner(marker)
    try:
        if who == "foxden stop":  # no daemon is running: stop kills what it finds
            r = subprocess.run([sys.executable, "-m", "foxden", "stop", "-c", d.config_path],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            assert "killed" in r.stderr and "leftover processes" in r.stderr
        elif who == "harness":
            assert spawner.pid in d.kill_leftovers()
        else:
            d.start()
            assert "reaped" in d.log_tail(10_000)
        assert procs.find_marked(marker) == [], "a child forked after the first scan survived"
    finally:
        procs.kill_marked(marker)
        spawner.wait(10)


def test_a_process_that_outlives_the_cleanup_s_wait_is_killed_again_until_gone(tmp_path):
    """A SIGKILLed process in uninterruptible sleep dies only when it leaves the kernel, maybe
    after the cleanup's wait. That state cannot be caused here on demand, so the record the
    cleanup leaves (a Lingering entry) is made by hand for a real process; the rest is real:
    status shows it, the next tick SIGKILLs it again, a later one forgets it and its files."""
    import subprocess
    from foxden.supervisor.actor import Lingering, SupervisorActor

    sup = SupervisorActor()  # its watchdog's bookkeeping, outside an actor system
    proc = subprocess.Popen(["sleep", "60"])
    files = tmp_path / "b7"
    files.mkdir()
    (files / "written-while-lingering").write_text("x")
    try:
        sup.lingering[proc.pid] = Lingering(proc.pid, procs.create_time(proc.pid), "b7", str(files),
                                            time.monotonic())
        assert [(p["pid"], p["browser"]) for p in sup.snapshot()["lingering"]] == [(proc.pid, "b7")]
        sup._recheck_lingering(time.monotonic())  # still alive: killed again, still listed
        assert proc.wait(5) == -signal.SIGKILL
        assert list(sup.lingering) == [proc.pid]
        sup._recheck_lingering(time.monotonic())  # gone now (reaped): forgotten, with its files
        assert sup.lingering == {} and not files.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_browser_dir_that_comes_back_after_its_cleanup_is_removed_again(make_daemon):
    """A chaos run found a dead browser's profile dir back ~100 ms after the one cleanup path removed it
    (profile/Default/Network Persistent State, written by a process gone by the time anyone looked). Such
    a late write cannot be caused on demand, so the test writes it, right after the cleanup; the
    supervisor must remove it again and say so."""
    d = make_daemon({"pool": {"size": 1}})
    child = d.wait_until(lambda s: [x["state"] for x in s["children"]] == ["idle"])["children"][0]
    os.kill(child["browser_pids"][0], signal.SIGKILL)
    d.wait_until(lambda s: child["id"] not in [x["id"] for x in s["children"]], interval=0.02)
    late = os.path.join(procs.browsers_dir(d.config.daemon.state_dir), child["id"], "profile", "Default")
    os.makedirs(late)
    with open(os.path.join(late, "Network Persistent State"), "w") as f:
        f.write("{}")
    top = os.path.dirname(os.path.dirname(late))
    deadline = time.monotonic() + 30
    while os.path.lexists(top) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.lexists(top), "a dead browser's dir came back and stayed"
    said = lambda: "came back" in d.log_tail(100_000) and "Network Persistent State" in d.log_tail(100_000)  # noqa: E731
    while not said() and time.monotonic() < deadline:  # the log line travels through Thespian's logger
        time.sleep(0.1)
    assert said(), d.log_tail(2_000)
