"""Run a private foxden daemon in a subprocess (for the demo, the tests and the benchmarks)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from foxden import procs
from foxden.client import Client, ClientError


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_config(path: str | os.PathLike, sections: dict[str, dict]) -> Path:
    """Write a config file from {"section": {"key": value}}."""
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in keys.items())
        lines.append("")
    path = Path(path)
    path.write_text("\n".join(lines))
    return path


class DaemonProcess:
    """`foxden run -c CONFIG` as a child process, with readiness and cleanup checks."""

    module = "foxden"  # run as `python -m <module> run -c CONFIG` (a benchmark's variant: bench/nomac.py)

    def __init__(self, config_path: str | os.PathLike, *, log_path: str | os.PathLike | None = None):
        from foxden.config import load_config

        self.config_path = str(config_path)
        self.config = load_config(self.config_path)
        self.log_path = str(log_path or Path(self.config.daemon.state_dir).parent / "daemon.log")
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def state_prefix(self) -> str:
        return procs.state_tag(self.config.daemon.state_dir) + ":"

    def start(self, timeout: float = 90.0, *, wait_pool: bool = True) -> "DaemonProcess":
        """Start and wait until the socket answers and (if wait_pool) every browser is idle."""
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", self.module, "run", "-c", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     # A chaos run, a benchmark or a test killed outright
                                     # (SIGKILL, a CI timeout) runs no cleanup: its daemon
                                     # gets SIGTERM (a graceful stop) instead of serving
                                     # nobody forever. Start it from the main thread.
                                     preexec_fn=procs.stop_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                # A timeout: a socket path still served by a frozen process of an
                # earlier instance accepts a connection and never answers.
                with self.client(timeout=5.0) as c:
                    c.ping()
                break
            except ClientError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"daemon not ready after {timeout}s:\n{self.log_tail()}")
        if wait_pool:
            size = self.config.pool.size
            self.wait_until(lambda s: s["browsers"]["by_state"]["idle"] >= size or s["pool"]["state"] == "failed",
                            timeout=max(1.0, deadline - time.monotonic()))
        return self

    def client(self, timeout: float | None = None) -> Client:
        return Client.from_config(self.config, timeout=timeout)

    def status(self) -> dict:
        with self.client(timeout=30) as c:
            return c.status()

    def wait_until(self, predicate, timeout: float = 30.0, interval: float = 0.1) -> dict:
        """Poll status until predicate(status) is true; returns that status."""
        deadline = time.monotonic() + timeout
        st = self.status()
        while not predicate(st):
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met in {timeout}s; last status: {json.dumps(st)[:2000]}")
            time.sleep(interval)
            st = self.status()
        return st

    def stop(self, timeout: float = 120.0) -> int:
        """SIGTERM and wait; returns the exit code (kills it if it does not exit in time)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def leftovers(self) -> list:
        """Processes of this state dir still alive (should be none after stop)."""
        return procs.find_marked(self.state_prefix)

    def kill_leftovers(self) -> list[int]:
        """SIGKILL every process of this state dir (procs.end_instance); returns their pids.

        What is left of a SIGKILLed daemon is still running (a supervisor
        restarting a browser, a browser forking a zygote), so a single scan
        can miss what is forked between the scan and the kill."""
        killed: list[int] = []
        procs.end_instance(self.state_prefix, self.config.daemon.state_dir,
                           on_found=lambda found: killed.extend(p.pid for p in found))
        return killed

    def wait_log(self, text: str, timeout: float = 30.0) -> None:
        """Wait until the daemon's log holds `text` (actors log through Thespian's logger: it lands a moment later)."""
        deadline = time.monotonic() + timeout
        while text not in self.log_tail(100000):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not in {self.log_path} within {timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, n: int = 60) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> "DaemonProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self.kill_leftovers()
