"""The daemon's side of the HTTP process: bind its socket, start it, restart it when it dies, stop it."""
from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import time

from foxden import procs
from foxden.http.settings import HttpSettings

__all__ = ["HttpKeeper", "restart_delay", "listen"]

log = logging.getLogger("foxden.daemon")

BACKOFF_BASE_S, BACKOFF_MAX_S = 0.1, 5.0
STABLE_S = 30.0  # a process that lived this long resets the backoff
STOP_TIMEOUT_S = 8.0  # the process finishes its requests in 5 s (server.SHUTDOWN_TIMEOUT_S), then SIGKILL


def restart_delay(crashes: int) -> float:
    """Seconds before restarting after the `crashes`-th quick death in a row (1, 2, ...): doubling, capped."""
    return min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, crashes - 1))


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound by the daemon: errors surface at start, and it outlives a crashed process
    (connections wait in its backlog while the next one starts)."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


class HttpKeeper:
    """Owns the HTTP process: one at a time, restarted (with backoff) whenever it exits while the daemon runs."""

    def __init__(self, config):
        self.config = config
        self.sock: socket.socket | None = None
        self.proc: subprocess.Popen | None = None
        self.created: float | None = None
        self.started_at = 0.0
        self.crashes = 0
        self.restart_at: float | None = None
        self.restarts = 0

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1] if self.sock is not None else 0

    def start(self) -> None:
        """Bind [http] host:port and start the process; raises OSError if the address cannot be bound."""
        self.sock = listen(self.config.http.host, self.config.http.port)
        self._spawn()

    def _spawn(self) -> None:
        settings = HttpSettings.from_config(self.config, self.sock.fileno(), os.getpid())
        # The daemon's environment carries the instance marker: the sweeps and `foxden stop` find this process.
        self.proc = subprocess.Popen([sys.executable, "-m", "foxden.http"], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, pass_fds=(self.sock.fileno(),))
        self.created = procs.create_time(self.proc.pid)
        self.started_at = time.monotonic()
        try:
            self.proc.stdin.write((settings.to_json() + "\n").encode())
            self.proc.stdin.close()
        except OSError as exc:  # it died at once; tick() notices and restarts it
            log.error("http: could not hand the settings to pid %d: %s", self.proc.pid, exc)

    def alive(self) -> bool:
        return self.proc is not None and procs.pid_alive(self.proc.pid, self.created)

    def tick(self) -> None:
        """Called from the daemon's watch loop: notice a dead process, restart it when its backoff is over."""
        if self.sock is None or self.proc is None:
            return
        now = time.monotonic()
        if self.restart_at is None:
            if self.alive():
                return
            self.proc.wait()  # reaped already by the daemon's reaper, or now
            self.crashes = 1 if now - self.started_at >= STABLE_S else self.crashes + 1
            delay = restart_delay(self.crashes)
            log.error("http: the HTTP process (pid %d) exited; restarting it in %.1fs", self.proc.pid, delay)
            self.restart_at = now + delay
        if now >= self.restart_at:
            self.restart_at = None
            self.restarts += 1
            self._spawn()
            log.info("http: restarted (pid %d) on port %d", self.proc.pid, self.port)

    def stop(self) -> None:
        """SIGTERM the process (it finishes its requests), SIGKILL after STOP_TIMEOUT_S; close the socket. Idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None and procs.pid_alive(proc.pid, self.created):
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while procs.pid_alive(proc.pid, self.created) and time.monotonic() < deadline:
                time.sleep(0.05)
            if procs.pid_alive(proc.pid, self.created):
                log.error("http: pid %d did not stop in %.0fs; killing it", proc.pid, STOP_TIMEOUT_S)
                proc.kill()
        if proc is not None:
            proc.wait()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
