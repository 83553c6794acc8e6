"""Measuring a driver from outside: CPU and PSS of whole process trees, leftovers, versions, a network guard.

CPU. A process tree's CPU at an instant is the sum, over every process in the
tree (zombies included), of its own user+system time plus its reaped
children's (``cutime + cstime`` in /proc/PID/stat, psutil's
``children_user``/``children_system``: the per-process form of
``getrusage(RUSAGE_CHILDREN)``). A process that exits is either still a
zombie (its times are still readable) or reaped by its parent, whose children
times then hold them, so the sum loses nothing as long as every process is
reaped inside the tree. The benchmark makes that so: foxden's daemon and each
driver process are child subreapers, so even double-forked processes (Chromium's
crashpad handler) re-parent inside the tree. A driver's CPU over a run is the
sum at the end minus the sum at the start. The sampler (every 100 ms) also
watches for processes that leave the tree while alive (``cpu_escaped_s``: their
last seen CPU, reported, should be 0).

Memory. PSS (proportional set size, psutil ``memory_full_info().pss``, from
/proc/PID/smaps_rollup) summed over the tree every 200 ms: peak, and the last
sample before the driver closes. PSS, not RSS: Chromium's processes share
most of their pages and RSS would count them once per process.
"""
from __future__ import annotations

import ipaddress
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import psutil

# One /proc/PID/stat parser, one process description and one prctl wrapper for foxden and the benchmark.
from foxden.procs import Stat, become_subreaper, describe, read_stat  # noqa: F401 (re-exported)

MARKER_ENV = "FOXDEN_BENCH_OWNER"


def kind_of(name: str, argv0: str = "") -> str:
    """chromium | node (Playwright's driver) | python | other, from the name and argv[0]."""
    n, exe = name.lower(), os.path.basename(argv0).lower()
    if "chrom" in n or "chrom" in exe or "crashpad" in n or "headless_shell" in exe:
        return "chromium"
    if exe == "node" or n in ("node", "mainthread"):  # Playwright's driver names its main thread
        return "node"
    if n.startswith("python") or exe.startswith("python"):
        return "python"
    return "other"


def all_stats() -> dict[int, Stat]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = read_stat(int(name))
            if st is not None:
                out[st.pid] = st
    return out


def tree_stats(roots: list[int], stats: dict[int, Stat] | None = None) -> list[Stat]:
    """The roots and all their descendants (zombies included)."""
    stats = all_stats() if stats is None else stats
    kids: dict[int, list[int]] = {}
    for st in stats.values():
        kids.setdefault(st.ppid, []).append(st.pid)
    out, todo, seen = [], [r for r in roots if r in stats], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        out.append(stats[pid])
        todo.extend(kids.get(pid, ()))
    return out


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds of the trees so far: own + reaped children's, over every process (zombies too)."""
    return sum(st.cpu + st.cpu_children for st in tree_stats(roots))


def own_cpu(pid: int) -> float:
    st = read_stat(pid)
    return st.cpu if st else 0.0


def pss_bytes(pid: int) -> int:
    """PSS from /proc/PID/smaps_rollup (0 if gone, a zombie or unreadable)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _argv0(pid: int) -> tuple[str, bool]:
    """(argv[0], has a --type= switch) of a process."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return "", False
    return argv[0].decode(errors="replace"), any(a.startswith(b"--type=") for a in argv)


@dataclass
class Sample:
    t: float
    pss: int
    by_kind: dict
    procs: int


@dataclass
class TreeSampler:
    """Samples the trees under `roots` in a thread: membership and CPU every `every` s, PSS every `pss_every` s."""

    roots: list[int]
    every: float = 0.1
    pss_every: float = 0.2
    peak: Sample | None = None
    last: Sample | None = None
    samples: int = 0
    seen: dict = field(default_factory=dict)            # (pid, start) -> (comm, kind, is a browser's main process)
    escaped_cpu: float = 0.0
    sampler_cpu_s: float = 0.0

    def __post_init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)
        self._members: dict = {}
        self._outside: set[int] = set()
        self.pss_samples = 0
        self.cpu_start = self.cpu_end = 0.0

    def start(self) -> "TreeSampler":
        self.cpu_start = self._sample(pss=True)
        self._cpu_kind_start = self._cpu_kind
        self._thread.start()
        return self

    def cpu_by_kind(self) -> dict[str, float]:
        """CPU seconds per kind of process between start() and stop() (a reaped child counts for its reaper's kind)."""
        kinds = self._cpu_kind.keys() | self._cpu_kind_start.keys()
        return {k: self._cpu_kind.get(k, 0.0) - self._cpu_kind_start.get(k, 0.0) for k in sorted(kinds)}

    def stop(self) -> float:
        """Stop sampling; returns the trees' CPU seconds since start()."""
        self._stop.set()
        self._thread.join()
        # The final PSS: at the end of the run, before the driver closes.
        self.cpu_end = self._sample(pss=True)
        return self.cpu_end - self.cpu_start + self.escaped_cpu

    def _loop(self) -> None:
        # Nice 19 for this thread only (Linux: a tid is a "process" to
        # setpriority): reading smaps costs ~2 ms of kernel time per Chromium
        # process, and the drivers we measure should not wait for it.
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:
            pass
        t0 = time.thread_time()
        next_pss = time.monotonic() + self.pss_every
        while not self._stop.wait(self.every):
            now = time.monotonic()
            do_pss = now >= next_pss
            if do_pss:
                next_pss = now + self.pss_every
            self._sample(pss=do_pss)
        self.sampler_cpu_s = time.thread_time() - t0

    def _scan(self) -> tuple[dict[int, Stat], list[Stat]]:
        """/proc/PID/stat of every process that is or may be in the trees, and the trees' members.

        A process outside the trees never joins them (only new processes
        do: children of members), so known outsiders are not read again
        while their pid stays in /proc."""
        pids = {int(n) for n in os.listdir("/proc") if n.isdigit()}
        self._outside &= pids
        stats = {}
        for pid in pids - self._outside:
            st = read_stat(pid)
            if st is not None:
                stats[pid] = st
        procs = tree_stats(self.roots, stats)
        self._outside |= stats.keys() - {st.pid for st in procs}
        return stats, procs

    def _sample(self, *, pss: bool) -> float:
        stats, procs = self._scan()
        members = {}
        total, by_kind, cpu, cpu_kind = 0, {}, 0.0, {}
        for st in procs:
            key = (st.pid, st.start)
            members[key] = st
            cpu += st.cpu + st.cpu_children
            info = self.seen.get(key)
            if info is None or info[0] != st.comm:  # new, or it exec'd since
                argv0, typed = _argv0(st.pid)
                kind = kind_of(st.comm, argv0)
                parent = stats.get(st.ppid)
                # A browser's main process: Chromium without --type= whose
                # parent is not Chromium (a child caught between fork and
                # exec still has its parent's command line).
                main = (kind == "chromium" and not typed and "crashpad" not in argv0
                        and (parent is None or kind_of(parent.comm) != "chromium"))
                info = self.seen[key] = (st.comm, kind, main)
            cpu_kind[info[1]] = cpu_kind.get(info[1], 0.0) + st.cpu + st.cpu_children
            if pss and st.state != "Z":
                v = pss_bytes(st.pid)
                total += v
                by_kind[info[1]] = by_kind.get(info[1], 0) + v
        # A process that left the trees but still runs was re-parented outside
        # them: its reaper is not ours, so count the CPU we last saw it use.
        for key in self._members.keys() - members.keys():
            now = stats.get(key[0])
            if now is not None and now.start == key[1] and now.state != "Z":
                self.escaped_cpu += self._members[key].cpu + self._members[key].cpu_children
        self._members = members
        self.samples += 1
        self._cpu_kind = cpu_kind
        if pss:
            self.pss_samples += 1
            s = Sample(time.monotonic(), total, by_kind, len(procs))
            self.last = s
            if self.peak is None or total > self.peak.pss:
                self.peak = s
        return cpu

    def browsers_seen(self) -> int:
        """Distinct browser main processes seen (a relaunched browser counts again)."""
        return sum(1 for _, _, main in self.seen.values() if main)

    def alive_seen(self, exclude_roots: list[int] = ()) -> list[psutil.Process]:
        """Processes seen in the trees that are still alive (and not in the trees of exclude_roots)."""
        stats = all_stats()
        keep = {(st.pid, st.start) for st in tree_stats(list(exclude_roots), stats)} if exclude_roots else set()
        out = []
        for (pid, start) in self.seen:
            st = stats.get(pid)
            if (pid, start) in keep or st is None or st.start != start or st.state == "Z":
                continue
            try:
                out.append(psutil.Process(pid))
            except psutil.Error:
                pass
        return out


def find_marked(prefix: str) -> list[psutil.Process]:
    """Live processes whose environment has MARKER_ENV starting with prefix."""
    out = []
    me = os.getpid()
    for p in psutil.process_iter():
        if p.pid == me:
            continue
        try:
            v = p.environ().get(MARKER_ENV)
            if v is not None and v.startswith(prefix) and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (psutil.Error, OSError):
            continue
    return out


def chromium_started_since(t0: float, exclude: set[int]) -> list[psutil.Process]:
    """Live Chromium processes created at or after t0 (epoch seconds), not in exclude."""
    out = []
    for p in psutil.process_iter(["name", "create_time"]):
        try:
            if p.pid in exclude or p.info["create_time"] < t0 or "chrom" not in (p.info["name"] or "").lower():
                continue
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            continue
    return out


def kill(procs: list[psutil.Process]) -> None:
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=3)


# --- network guard -------------------------------------------------------------

def _loopback_host(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]")
    if host in ("localhost", "", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _audit(event: str, args) -> None:
    if event == "socket.connect" or event == "socket.sendto":
        sock, address = args[0], args[-1]
        if getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            if not _loopback_host(address[0]):
                raise PermissionError(f"bench network guard: refused {event} to {address!r} (loopback only)")
    elif event == "socket.getaddrinfo":
        if not _loopback_host(args[0]):
            raise PermissionError(f"bench network guard: refused name lookup of {args[0]!r} (loopback only)")


_guarded = False


def install_network_guard() -> None:
    """Refuse, in this Python process, any socket connect/sendto/lookup that is not loopback.

    Covers Python code only (an audit hook); the browsers are kept off the
    network by foxden's Chromium switches, and native code in Python
    packages by not calling it (see bench/drivers.py for Crawlee)."""
    global _guarded
    if not _guarded:
        sys.addaudithook(_audit)
        _guarded = True


# --- versions --------------------------------------------------------------------

def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions(executable_path: str) -> dict:
    out = {
        "python": platform.python_version(),
        "foxden": _dist_version("foxden"),
        "playwright": _dist_version("playwright"),
        "crawlee": _dist_version("crawlee"),
        "thespian": _dist_version("thespian"),
        "psutil": _dist_version("psutil"),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "mem_gib": round(psutil.virtual_memory().total / 2**30, 1),
    }
    try:
        out["chromium"] = subprocess.run([executable_path, "--version"], capture_output=True, text=True,
                                         timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out["chromium"] = None
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "foxden"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
        out["foxden_git"] = head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        out["foxden_git"] = None
    return out
