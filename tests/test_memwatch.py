"""Background PSS readings of process trees (what status reports per browser)."""
from __future__ import annotations

import subprocess
import sys
import time

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


def test_a_new_tree_is_read_at_once_and_refreshed_in_the_background():
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
        t = time.perf_counter()
        answer = watch.pss(proc.pid)  # from the last reading: no smaps read on this path
        assert time.perf_counter() - t < 0.01
        deadline = time.monotonic() + 5
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
