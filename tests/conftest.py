"""Fixtures: a site on 127.0.0.1, private daemons on real actor systems, and a leak check."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager

import psutil
import pytest

from foxden import footprint, procs
from foxden.harness import DaemonProcess, write_config
from foxden.testsite import Site

# Tests run fast watchdogs so that timeouts resolve in seconds.
BASE = {
    "daemon": {"admin_port": 0, "grace_s": 5.0},
    "pool": {"size": 2, "launch_timeout_s": 30.0},
    "jobs": {"timeout_s": 10.0, "jitter_s": 0.5, "retries": 1},
    "watchdog": {"interval_s": 0.25, "heartbeat_timeout_s": 3.0, "kill_grace_s": 0.25, "close_timeout_s": 3.0},
    "restart": {"intensity": 20, "period_s": 30.0, "backoff_base_s": 0.05, "backoff_max_s": 0.5},
}


def merged(overrides: dict) -> dict:
    out = {k: dict(v) for k, v in BASE.items()}
    for section, keys in overrides.items():
        out.setdefault(section, {}).update(keys)
    return out


@pytest.fixture(autouse=True)
def no_browser_files_left_in_tmp():
    """Every test: no browser profile or artifact dir of its making is left in /tmp."""
    before = footprint.browser_temp_entries()
    yield
    new = footprint.browser_temp_entries() - before
    for n in new:
        shutil.rmtree(os.path.join(tempfile.gettempdir(), n), ignore_errors=True)
    assert not new, f"the test left browser files in {tempfile.gettempdir()}: {sorted(new)}"


@pytest.fixture(scope="session")
def site():
    with Site() as s:
        yield s


def _our_descendants() -> list[psutil.Process]:
    return [p for p in procs.descendants(os.getpid())
            if "foxden" in " ".join(_cmdline(p)) or footprint.browserish(p)]


def _cmdline(p) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


@contextmanager
def module_daemon(overrides: dict | None = None):
    """A started daemon for a module-scoped fixture; stopped afterwards, failing if it exited badly or left a process."""
    d = tempfile.mkdtemp(prefix="fx", dir="/tmp")  # short: AF_UNIX socket paths are limited to 107 bytes
    cfg = merged(overrides or {})
    cfg["daemon"].setdefault("state_dir", os.path.join(d, "state"))
    daemon = DaemonProcess(write_config(os.path.join(d, "foxden.toml"), cfg), log_path=os.path.join(d, "daemon.log"))
    try:
        yield daemon.start()
    finally:
        rc = daemon.stop()
        left = daemon.leftovers()
        daemon.kill_leftovers()
        tail = daemon.log_tail()
        shutil.rmtree(d, ignore_errors=True)
        assert rc == 0 and not left, f"daemon exited {rc}, left {[p.pid for p in left]}:\n{tail}"


@pytest.fixture
def make_daemon():
    """Factory: start a daemon with config overrides; after the test, stop it and prove nothing is left."""
    started: list[DaemonProcess] = []
    dirs: list[str] = []

    def factory(overrides: dict | None = None, *, start: bool = True) -> DaemonProcess:
        # A short path: AF_UNIX socket paths are limited to 107 bytes.
        d = tempfile.mkdtemp(prefix="fx", dir="/tmp")
        dirs.append(d)
        cfg = merged(overrides or {})
        cfg["daemon"].setdefault("state_dir", os.path.join(d, "state"))
        path = write_config(os.path.join(d, "foxden.toml"), cfg)
        daemon = DaemonProcess(path, log_path=os.path.join(d, "daemon.log"))
        started.append(daemon)
        return daemon.start() if start else daemon

    yield factory

    problems = []
    for daemon in started:
        rc = daemon.stop()
        left = daemon.leftovers()
        if left:
            problems.append(f"processes left by {daemon.config_path}: "
                            f"{[(p.pid, ' '.join(_cmdline(p))[:60]) for p in left]}")
            daemon.kill_leftovers()
        if rc not in (0, None) and not getattr(daemon, "expect_failure", False):
            problems.append(f"daemon exited {rc}:\n{daemon.log_tail()}")
    stray = _our_descendants()
    if stray:
        problems.append(f"stray processes: {[(p.pid, ' '.join(_cmdline(p))[:60]) for p in stray]}")
        procs.kill_and_wait(stray)
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    assert not problems, "\n".join(problems)
