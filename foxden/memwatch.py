"""PSS of browser process trees, read in a background thread so that a status never waits on smaps."""
from __future__ import annotations

import os
import threading
import time

from foxden import procs

# How old a reading may get before the thread reads it again, and the pause
# between two reads (the thread must not become a load of its own).
REFRESH_S = 2.0
PAUSE_S = 0.02


class MemWatch:
    """The latest PSS of each watched tree (a browser actor and its processes), kept fresh by a thread.

    Reading /proc/PID/smaps_rollup walks a process's whole address space
    under its mmap lock: 1-2 ms per Chromium process when idle, and seconds
    in all when fifty renderers are busy allocating (measured: status spent
    0.5-2.5 s building its document under load, with the snapshot chain
    itself at 12-47 ms). So the admin asks this object, which answers from
    its last reading at once; only a tree never read before is read on the
    spot, so that a new browser does not show 0. The thread runs nice'r than
    the control plane: smaps reads are kernel time, and must not compete
    with the actors for a CPU."""

    def __init__(self, refresh_s: float = REFRESH_S, nice: int = 10):
        self.refresh_s = refresh_s
        self._nice = nice
        self._roots: set[int] = set()
        self._readings: dict[int, tuple[float, int]] = {}  # root pid -> (monotonic time, PSS bytes)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def pss(self, root: int) -> int:
        """PSS of root and its descendants: the last reading, or a reading now if there is none."""
        with self._lock:
            hit = self._readings.get(root)
        if hit is None:
            hit = self._read(root)
        return hit[1]

    def watch(self, roots) -> None:
        """The trees to keep fresh from now on (readings of the others are dropped)."""
        roots = {r for r in roots if r}
        with self._lock:
            self._roots = roots
            self._readings = {r: v for r, v in self._readings.items() if r in roots}
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="foxden-memwatch", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the thread. Idempotent."""
        self._stop.set()

    def _read(self, root: int) -> tuple[float, int]:
        value = procs.pss_bytes([root, *(p.pid for p in procs.descendants(root))])
        reading = (time.monotonic(), value)
        with self._lock:
            if root in self._roots or not self._roots:
                self._readings[root] = reading
        return reading

    def _loop(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                           os.getpriority(os.PRIO_PROCESS, 0) + self._nice)
        except OSError:
            pass
        while not self._stop.is_set():
            with self._lock:
                now = time.monotonic()
                stale = [r for r in self._roots
                         if now - self._readings.get(r, (float("-inf"), 0))[0] >= self.refresh_s]
            for root in sorted(stale, key=lambda r: self._readings.get(r, (float("-inf"), 0))[0]):
                if self._stop.is_set():
                    return
                self._read(root)
                self._stop.wait(PAUSE_S)
            self._stop.wait(PAUSE_S if stale else 0.25)
