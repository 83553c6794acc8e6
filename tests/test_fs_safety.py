"""Filesystem safety and cleanup by ownership: nothing followed through a symlink, no stranger killed."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import pytest

from foxden import fsafety, procs
from foxden.harness import write_config


def _foxden(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != procs.MARKER_ENV}
    return subprocess.run([sys.executable, "-m", "foxden", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="fxfs", dir="/tmp")
    yield d
    subprocess.run(["rm", "-rf", d], check=False)


def _config(workdir: str) -> str:
    # No browser can start: should a protection fail, `foxden run` still exits (2, on the engine)
    # after doing what the protection was to prevent, instead of leaving a daemon behind.
    return str(write_config(os.path.join(workdir, "foxden.toml"), {
        "daemon": {"state_dir": os.path.join(workdir, "state"), "admin_port": 0},
        "pool": {"size": 1, "engine": "chromium", "executable_path": "/nonexistent/chromium"},
    }))


@pytest.mark.parametrize("how", ["group-writable", "another user's"])
def test_a_state_dir_others_can_change_is_refused_naming_the_path_and_the_fix(workdir, how):
    state = os.path.join(workdir, "state")
    os.mkdir(state, 0o700)
    if how == "group-writable":
        os.chmod(state, 0o770)
        fix = "chmod go-w"
    else:
        os.chown(state, 65534, 65534)  # nobody
        fix = "chown"
    cfg = _config(workdir)
    for command in ("stop", "run"):
        r = _foxden(command, "-c", cfg)
        assert r.returncode == 2, (command, r.returncode, r.stderr[-2000:])
        assert state in r.stderr and fix in r.stderr, r.stderr[-2000:]
    assert not os.path.exists(os.path.join(state, "foxden.pid")), "the daemon used the state dir anyway"


def test_a_new_state_dir_is_made_0700_and_a_parent_others_can_write_is_refused(workdir):
    parent = os.path.join(workdir, "shared")
    os.mkdir(parent)
    os.chmod(parent, 0o777)  # world-writable and not sticky: anyone could swap the state dir
    state = os.path.join(parent, "state")
    with pytest.raises(fsafety.UnsafePath, match=parent):
        fsafety.ensure_state_dir(state)
    assert os.stat(state).st_mode & 0o777 == 0o700
    os.chmod(parent, 0o755)
    fsafety.ensure_state_dir(state)


def test_a_pid_file_symlinked_elsewhere_is_refused_and_its_target_untouched(workdir):
    state = os.path.join(workdir, "state")
    os.mkdir(state, 0o700)
    victim = os.path.join(workdir, "precious.txt")
    with open(victim, "w") as f:
        f.write("do not truncate me\n")
    os.symlink(victim, os.path.join(state, "foxden.pid"))
    r = _foxden("run", "-c", _config(workdir))
    assert r.returncode == 2, r.stderr[-2000:]
    assert "foxden.pid" in r.stderr and "symbolic link" in r.stderr, r.stderr[-2000:]
    with open(victim) as f:
        assert f.read() == "do not truncate me\n"


def test_a_browsers_dir_symlinked_elsewhere_is_not_emptied_by_any_cleanup(workdir):
    state = os.path.join(workdir, "state")
    os.mkdir(state, 0o700)
    victim = os.path.join(workdir, "victim")
    os.makedirs(os.path.join(victim, "b1", "profile"))
    for name in ("keep.txt", os.path.join("b1", "profile", "keep.txt")):
        with open(os.path.join(victim, name), "w") as f:
            f.write("x")
    os.symlink(victim, os.path.join(state, "browsers"))
    cfg = _config(workdir)
    r = _foxden("stop", "-c", cfg)  # no daemon: stop sweeps leftovers and the browsers' dirs
    assert r.returncode == 0, r.stderr[-2000:]
    procs.end_instance(procs.state_tag(state) + ":", state)  # the harness's and the final sweep's path
    r = _foxden("run", "-c", cfg)  # the startup reaper, then the daemon refuses the link
    assert r.returncode == 2 and "browsers" in r.stderr and "symbolic link" in r.stderr, r.stderr[-2000:]
    assert sorted(os.listdir(victim)) == ["b1", "keep.txt"]
    assert os.listdir(os.path.join(victim, "b1", "profile")) == ["keep.txt"]


def test_safe_rmtree_removes_a_real_tree_and_follows_no_link_below_the_state_dir(workdir):
    state = os.path.join(workdir, "state")
    os.makedirs(os.path.join(state, "browsers", "b1", "profile"))
    victim = os.path.join(workdir, "victim")
    os.mkdir(victim)
    open(os.path.join(victim, "keep"), "w").close()
    os.symlink(victim, os.path.join(state, "browsers", "b1", "profile", "link"))
    os.symlink(victim, os.path.join(state, "browsers", "b2"))
    assert fsafety.safe_rmtree(state, "browsers/b2") is False
    assert fsafety.safe_rmtree(state, "browsers/b1") is True
    assert os.listdir(os.path.join(state, "browsers")) == ["b2"] and os.listdir(victim) == ["keep"]


@pytest.mark.browser
def test_a_decoy_naming_a_browser_s_dir_in_its_argv_survives_every_cleanup(make_daemon, site):
    """A process is foxden's by its marker (or as a marked process's descendant), never by its
    command line: a stranger that names a browser's temp dir survives a watchdog kill of that
    browser, `foxden stop` with its final sweep, and the harness's sweep."""
    d = make_daemon({"pool": {"size": 1}, "jobs": {"retries": 0}})
    child = d.status()["children"][0]
    tmpdir = os.path.join(procs.browsers_dir(d.config.daemon.state_dir), child["id"])
    env = {k: v for k, v in os.environ.items() if k != procs.MARKER_ENV}
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", tmpdir + "/profile",
                              procs.browsers_dir(d.config.daemon.state_dir)], env=env)
    try:
        answer = d.client(timeout=60).submit(site.url("/page/1"), eval="while (true) {}", timeout_s=3.0)
        assert answer.error.code == "timeout", answer
        assert answer.status == "timeout", answer
        d.wait_until(lambda s: s["watchdog"]["kills_by_reason"].get("timeout", 0) >= 1 and s["browsers"]["by_state"]["idle"] >= 1,
                     timeout=60)
        assert decoy.poll() is None, "the watchdog's kill of a browser killed a stranger naming its dir"
        r = _foxden("stop", "-c", d.config_path)
        assert r.returncode == 0, r.stderr[-2000:]
        assert decoy.poll() is None, "foxden stop (or the daemon's final sweep) killed a stranger"
        d.kill_leftovers()
        time.sleep(0.2)
        assert decoy.poll() is None, "the harness's sweep killed a stranger"
    finally:
        decoy.kill()
        decoy.wait()


def test_an_unmarked_descendant_of_a_marked_process_is_ours_and_a_stranger_is_not():
    """Chromium's helpers write over their environment: they are found as descendants of the
    marked main process. A stranger with no marker, whatever its command line, is not."""
    marker = f"fxtest-{os.getpid()}-{time.time_ns()}/b1"
    clean = {k: v for k, v in os.environ.items() if k != procs.MARKER_ENV}
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, time; c = subprocess.Popen(['sleep', '300'], env={}); "
                               "print(c.pid, flush=True); time.sleep(300)"],
        env={**clean, procs.MARKER_ENV: marker}, stdout=subprocess.PIPE, text=True)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", marker], env=clean)
    try:
        child = int(parent.stdout.readline())
        found = {p.pid for p in procs.find_marked(marker)}
        assert found == {parent.pid, child}, (found, parent.pid, child)
        assert procs.kill_marked(marker) == []
        assert parent.wait(10) == -9 and not procs.pid_alive(child)
        assert stranger.poll() is None, "a stranger naming the marker in its argv was killed"
    finally:
        for proc in (parent, stranger):
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("how", ["a symlink at the socket path", "a socket dir others can write"])
def test_a_socket_path_another_user_could_control_is_refused(workdir, how):
    sockdir = os.path.join(workdir, "sock")
    os.mkdir(sockdir, 0o700)
    path = os.path.join(sockdir, "foxden.sock")
    victim = os.path.join(workdir, "precious.txt")
    with open(victim, "w") as f:
        f.write("keep\n")
    if how.startswith("a symlink"):
        os.symlink(victim, path)
    else:
        os.chmod(sockdir, 0o777)
    cfg = str(write_config(os.path.join(workdir, "foxden.toml"), {
        "daemon": {"state_dir": os.path.join(workdir, "state"), "admin_port": 0, "socket": path},
        "pool": {"size": 1, "engine": "chromium", "executable_path": "/nonexistent/chromium"},
    }))
    r = _foxden("run", "-c", cfg)
    assert r.returncode == 2, r.stderr[-2000:]
    # The config resolves links in paths, so a link at the socket path is judged by its target.
    expected = f"{victim} is not a socket" if how.startswith("a symlink") else f"{sockdir} is writable"
    assert expected in r.stderr, r.stderr[-2000:]
    assert os.path.islink(path) or not os.path.exists(path)
    with open(victim) as f:
        assert f.read() == "keep\n"
