"""What looks like a browser, what a browser leaves in /tmp, and the one /proc/PID/stat parser."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil

from foxden import footprint, procs


def _sleeper(argv0: str) -> subprocess.Popen:
    """A real process whose argv[0] is argv0 (its name stays "sleep")."""
    return subprocess.Popen([argv0, "60"], executable="/bin/sleep")


def test_a_crashpad_handler_looks_like_a_browser_and_a_plain_process_does_not():
    crashpad, plain = _sleeper("crashpad_handler"), _sleeper("sleep")  # "chrome_crashpad_handler" has "chrom"
    try:
        assert footprint.browserish(psutil.Process(crashpad.pid))
        assert not footprint.browserish(psutil.Process(plain.pid))
    finally:
        for p in (crashpad, plain):
            p.kill()
            p.wait()


def test_firefox_and_chromium_leftovers_in_tmp_are_recognised(tmp_path):
    for name in ("rust_mozprofileAbC", "playwright_chromiumdev_profile-x1", "playwright-artifacts-y2",
                 "org.chromium.Chromium.z3", "fx123", "pytest-of-root"):
        (tmp_path / name).mkdir()
    assert footprint.browser_temp_entries(str(tmp_path)) == {
        "rust_mozprofileAbC", "playwright_chromiumdev_profile-x1", "playwright-artifacts-y2",
        "org.chromium.Chromium.z3"}


def test_read_stat_agrees_with_psutil_on_a_stopped_child():
    child = _sleeper("sleep")
    try:
        os.kill(child.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 30
        while procs.process_state(child.pid) != "stopped" and time.monotonic() < deadline:
            time.sleep(0.01)
        st = procs.read_stat(child.pid)
        assert st is not None
        assert (st.pid, st.ppid, st.comm, st.state, st.uid) == (child.pid, os.getpid(), "sleep", "T", os.geteuid())
        assert st.start / os.sysconf("SC_CLK_TCK") == procs.create_time(child.pid)
    finally:
        child.kill()
        child.wait()
    assert procs.read_stat(child.pid) is None and procs.create_time(child.pid) is None
