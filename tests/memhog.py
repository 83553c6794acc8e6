"""A memory balloon for tests: holds available memory at a target, whatever else the machine does.

Run as a script (`python tests/memhog.py`); each line on its standard input is
a target in bytes of foxden.procs.available_memory() (the figure admission
reads). Every 10 ms it allocates and touches, or frees, 8 MiB blocks to keep
available memory within a block of the target, so other processes starting
or ending move it only for a moment. An empty line or EOF ends it."""
from __future__ import annotations

import select
import sys

from foxden import procs

__all__ = ["BLOCK"]

BLOCK = 8 << 20


def _block() -> bytearray:
    return bytearray(b"\x01") * BLOCK  # written, so every page is really taken


def main() -> None:
    blocks: list[bytearray] = []
    target = None
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 0.01)
        if ready:
            line = sys.stdin.readline().strip()
            if not line:
                return
            target = int(line)
        if target is None:
            continue
        excess = procs.available_memory() - target
        if excess > BLOCK:
            blocks.extend(_block() for _ in range(min(excess // BLOCK, 32)))
        elif excess < -BLOCK and blocks:
            del blocks[-min(-excess // BLOCK, len(blocks)):]


if __name__ == "__main__":
    main()
