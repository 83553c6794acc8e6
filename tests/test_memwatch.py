"""Background PSS readings of process trees (what status reports per browser)."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

from foxden import memwatch
from foxden.memwatch import MemWatch

# A parent that grows by 64 MiB of touched memory when told to, with a child of its own.
GROWER = """
import subprocess, sys, time
kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
sys.stdout.write("up\\n"); sys.stdout.flush()
sys.stdin.readline()
block = bytearray(64 << 20)
for i in range(0, len(block), 4096):
    block[i] = 1
sys.stdout.write("grown\\n"); sys.stdout.flush()
sys.stdin.readline()
kid.kill()
"""


def test_a_new_tree_is_read_at_once_and_refreshed_in_the_background(monkeypatch):
    # Which thread reads smaps: the caller's only for a tree never read before. How long a
    # status spends on it is a duration, not asserted here: status's sample_ms.document shows it.
    readers: list[int] = []
    real = memwatch.procs.pss_bytes

    def counted(pids):
        readers.append(threading.get_ident())
        return real(pids)

    monkeypatch.setattr(memwatch.procs, "pss_bytes", counted)
    me = threading.get_ident()
    proc = subprocess.Popen([sys.executable, "-c", GROWER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    watch = MemWatch(refresh_s=0.2)
    try:
        assert proc.stdout.readline() == "up\n"
        watch.watch([proc.pid])
        first = watch.pss(proc.pid)
        assert first > 1 << 20  # read on the spot: never 0 for a tree it has not seen
        proc.stdin.write("grow\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "grown\n"
        on_the_spot = readers.count(me)  # 1, or 0 if the thread read it first
        answer = watch.pss(proc.pid)  # from the last reading: no smaps read on this path
        assert readers.count(me) == on_the_spot, "pss() read smaps on the caller's thread for a tree it had read"
        deadline = time.monotonic() + 60
        while watch.pss(proc.pid) < first + (60 << 20) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watch.pss(proc.pid) >= first + (60 << 20) > answer or answer >= first + (60 << 20)
    finally:
        watch.close()
        proc.stdin.write("bye\n")
        proc.stdin.flush()
        proc.wait(10)


def test_unwatched_trees_are_forgotten():
    watch = MemWatch(refresh_s=60)
    try:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            watch.watch([proc.pid])
            assert watch.pss(proc.pid) > 0
            watch.watch([])
            assert proc.pid not in watch._readings
        finally:
            proc.kill()
            proc.wait()
    finally:
        watch.close()
