"""What every part of one chaos run shares: options, daemon, site, one lock, the clock, events and violations."""
from __future__ import annotations

import os
import random
import sys
import threading
import time
from collections import Counter

from foxden.chaos.options import Options

__all__ = ["Context", "say"]


def say(msg: str) -> None:
    """A progress line on stderr."""
    print(f"chaos: {msg}", file=sys.stderr, flush=True)


class Context:
    """The state the load, the injector, the sampler and the report all read; one lock guards it."""

    def __init__(self, opts: Options):
        if opts.seed is None:
            opts.seed = random.SystemRandom().randrange(1, 1 << 31)
        self.o = opts
        self.seed = opts.seed
        self.lock = threading.Lock()
        self.t0 = 0.0
        self.daemon = None  # a harness.DaemonProcess once started
        self.site = None  # a testsite.Site while the run lasts
        self.workdir = ""
        self.events: list[dict] = []
        self.violations: dict[str, int] = {}
        self.faults: Counter = Counter()
        self.connection_errors: list[str] = []
        self.latest: dict | None = None  # the last status sample
        # pid -> (when, fault kind, create time): pids wrap (pid_max 32768) within a long run,
        # so "still frozen" must mean the same process, not whatever holds the pid now.
        self.stopped_pids: dict[int, tuple[float, str, float | None]] = {}
        self.threads: list[threading.Thread] = []
        self.workers: list[threading.Thread] = []
        self.submitting_done = threading.Event()
        self.stop_threads = threading.Event()
        self.stop_sampler = threading.Event()
        self.daemon_stopped = threading.Event()  # SIGTERM sent under load

    def event(self, kind: str, **detail) -> None:
        with self.lock:
            self.events.append({"t": round(time.monotonic() - self.t0, 3), "kind": kind, **detail})

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations[text] = self.violations.get(text, 0) + 1

    def count(self, kind: str, n: int = 1) -> None:
        with self.lock:
            self.faults[kind] += n

    def spawn(self, fn, *args, name: str) -> threading.Thread:
        t = threading.Thread(target=fn, args=args, name=name, daemon=True)
        with self.lock:
            self.threads.append(t)
        t.start()
        return t

    def any_driver_alive(self) -> bool:
        return any(t.is_alive() for t in self.workers)

    @property
    def state_dir(self) -> str:
        """The daemon's state dir, absolute, with a trailing separator (as command lines name it)."""
        return os.path.abspath(str(self.daemon.config.daemon.state_dir)) + os.sep
