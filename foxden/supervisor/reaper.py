"""A child's processes and files: kill by the pids it reported, sweep by marker, re-kill what lingers."""
from __future__ import annotations

import logging
import os
from typing import Iterable

import psutil

from foxden import procs
from foxden.supervisor.children import Child, Lingering

__all__ = ["RECHECK_DIRS_S", "known_processes", "recheck_dirs", "recheck_lingering", "remove_dir", "sweep",
           "unclaimed_pids"]

log = logging.getLogger("foxden.supervisor")

# How long a dead browser's temp dir is looked at again after its cleanup removed it.
RECHECK_DIRS_S = 5.0


def known_processes(child: Child) -> list[psutil.Process]:
    """The child's actor and its browser's main process, by the pids they reported.

    Killed by pid as well as by marker. The marker scan reads every
    process's environment and command line and passes over one it cannot
    read; a long chaos run on an overloaded box found a browser's main
    process alive and marked 1.3 s after the cleanup's scans had found
    nothing left, and it had recreated its profile dir. Why the scans
    missed it is not known; a kill by the pid it reported does not depend
    on them. A create time that differs means the pid now names another
    process: that one is left alone."""
    known = [(child.pid, child.pid_created)]
    if child.browser_pids and child.main_created is not None:
        known.append((child.browser_pids[0], child.main_created))
    return procs.processes(pid for pid, created in known if procs.pid_alive(pid, created))


def unclaimed_pids(children: Iterable[Child]) -> list[int]:
    """Our child processes that no child record has claimed (killed before their handshake)."""
    claimed = {c.pid for c in children if c.pid}
    try:
        kids = psutil.Process().children()
    except psutil.Error:
        return []
    return [p.pid for p in kids if p.pid not in claimed and procs.alive(p)]


def sweep(child: Child, now: float) -> list[Lingering]:
    """Confirm that nothing of a dead child survives, then remove its files; returns what outlived SIGKILL.

    Its own processes and every process carrying its marker (crashpad
    included). A SIGKILLed process in uninterruptible sleep dies when it
    leaves the kernel: the caller keeps it and every tick checks again
    (recheck_lingering), so that status says what is still alive."""
    survivors = procs.kill_marked(child.marker, also=known_processes(child))
    if survivors:
        log.error("browser %s: processes survived SIGKILL: %s", child.id, [p.pid for p in survivors])
    remove_dir(child.tmpdir)
    return [Lingering(p.pid, procs.create_time(p.pid), child.id, child.tmpdir, now) for p in survivors]


def recheck_lingering(lingering: dict[int, Lingering], now: float) -> None:
    """Kill again what outlived a cleanup's SIGKILL, and forget it (and its files) once it is gone."""
    for pid, proc in list(lingering.items()):
        if procs.pid_alive(pid, proc.created):
            procs.kill_pids([pid])
            continue
        del lingering[pid]
        remove_dir(proc.tmpdir)  # anything it wrote while it lingered
        log.warning("browser %s: process %d is gone %.1fs after the cleanup gave up waiting for it",
                    proc.browser, pid, now - proc.since)


def remove_dir(tmpdir: str) -> None:
    """Remove a browser's temp dir, following no symlink (the browsers dir itself included)."""
    procs.safe_rmtree(os.path.dirname(tmpdir), os.path.basename(tmpdir))


def recheck_dirs(removed: dict[str, float], now: float) -> None:
    """Remove again the temp dirs of browsers cleaned up in the last RECHECK_DIRS_S, if they came back.

    A chaos run found a dead browser's profile dir back ~100 ms after its
    cleanup, holding only `profile/Default/Network Persistent State`,
    written by a process that was gone by the time anyone looked (a write
    racing the removal). Whatever wrote it, the dir is ours to remove; what
    came back is logged, for the next one who looks."""
    for tmpdir, since in list(removed.items()):
        if os.path.lexists(tmpdir):
            came_back = sorted(os.path.relpath(os.path.join(root, name), tmpdir)
                               for root, dirs, files in os.walk(tmpdir) for name in dirs + files)[:10]
            remove_dir(tmpdir)
            log.warning("%s came back %.2fs after its cleanup (%s); removed it again", tmpdir, now - since,
                        ", ".join(came_back) or "empty")
        if now - since > RECHECK_DIRS_S:
            del removed[tmpdir]
