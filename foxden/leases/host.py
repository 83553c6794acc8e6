"""A browser actor's lease mode: launch a browser of its own for one lease and serve its endpoint."""
from __future__ import annotations

import os
import time

from foxden import procs
from foxden.leases.bridge import Bridge, PipeBackend, WsBackend
from foxden.leases.terms import new_secret

__all__ = ["LeaseHost"]

SERVER_LOG = "playwright-server.log"  # the node server's stderr, inside the browser's temp dir


class LeaseHost:
    """One leased browser (Chromium on its CDP pipe, Firefox/Camoufox behind a Playwright server), its endpoint.

    Its processes are the browser actor's children and carry its marker, as
    a pool browser's do; killing the actor and sweeping the marker ends them."""

    def __init__(self, choice, config, tmpdir: str, spec):
        self.choice, self.config, self.tmpdir, self.spec = choice, config, tmpdir, spec
        self.bridge: Bridge | None = None
        self.driver = None  # Chromium: its ChromiumDriver (launch and close)
        self.server = None  # Firefox, Camoufox: its PlaywrightServer
        self.main_pid: int | None = None
        self.version = ""
        self.playwright_version: str | None = None
        self.port = 0

    def launch(self) -> None:
        if self.choice.name == "chromium":
            backend = self._launch_chromium()
        else:
            backend = self._launch_server()
        self.bridge = Bridge(self.spec.host, self.spec.secret, backend)
        self.port = self.bridge.start()

    def _launch_chromium(self) -> PipeBackend:
        from foxden import engines
        from foxden.drivers.chromium import ChromiumDriver

        pool = self.config.pool
        command = engines.chromium_command(self.choice, headless=pool.headless, extra_args=pool.args,
                                           user_data_dir=os.path.join(self.tmpdir, "profile"))
        self.driver = ChromiumDriver(command, launch_timeout_s=pool.launch_timeout_s, log_dir=self.tmpdir,
                                     nice=pool.browser_nice)
        self.driver.launch()
        self.version = self.driver.version
        self.main_pid = self.driver.pids()[0]
        return PipeBackend(*self.driver.hand_over())

    def _launch_server(self) -> WsBackend:
        from foxden import engines
        from foxden.leases.pwserver import PlaywrightServer, server_options

        pool = self.config.pool
        _, kwargs = engines.launch_kwargs(self.choice, headless=pool.headless, extra_args=pool.args)
        # The server's own path secret: only this actor's bridge knows it.
        self.server = PlaywrightServer(server_options(kwargs, new_secret()), os.path.join(self.tmpdir, SERVER_LOG))
        self.server.start(pool.launch_timeout_s)
        self.main_pid, self.playwright_version = self.server.browser_pid, self.server.version
        self.version = _firefox_version(self.main_pid)
        if pool.browser_nice:
            procs.renice([p.pid for p in procs.descendants(os.getpid())],
                         os.getpriority(os.PRIO_PROCESS, 0) + pool.browser_nice)
        return WsBackend(self.server.ws_endpoint)

    def pids(self) -> list[int]:
        """The browser's main process, then its descendants."""
        if not procs.pid_alive(self.main_pid):
            return []
        return [self.main_pid, *(p.pid for p in procs.descendants(self.main_pid))]

    def alive(self) -> bool:
        return (self.main_pid is not None and procs.process_state(self.main_pid) != "gone"
                and not (self.bridge is not None and self.bridge.browser_gone))

    @property
    def clients(self) -> int:
        return self.bridge.clients if self.bridge is not None else 0

    @property
    def idle_for(self) -> float:
        return self.bridge.idle_for if self.bridge is not None else 0.0

    def close(self, timeout_s: float) -> None:
        """Close the endpoint and kill the browser (a lease's browser is never reused: no polite close)."""
        if self.bridge is not None:
            self.bridge.stop()
        if self.driver is not None:
            self.driver.close(timeout_s)
        if self.server is not None and self.server.proc is not None:
            procs.kill_pids([p.pid for p in procs.descendants(self.server.proc.pid)] + [self.server.proc.pid])
            deadline = time.monotonic() + timeout_s
            while self.server.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)


def _firefox_version(pid: int | None) -> str:
    """A running Firefox's version, from the application.ini beside its binary ("" if unknown)."""
    try:
        exe = os.path.realpath(f"/proc/{pid}/exe")
        with open(os.path.join(os.path.dirname(exe), "application.ini")) as f:
            for line in f:
                if line.startswith("Version="):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return ""
