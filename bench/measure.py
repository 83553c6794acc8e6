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

import ctypes
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

MARKER_ENV = "FOXDEN_BENCH_OWNER"


def kind_of(name: str) -> str:
    n = name.lower()
    if "chrom" in n or "crashpad" in n:
        return "chromium"
    if n.startswith("node"):
        return "node"
    if n.startswith("python"):
        return "python"
    return "other"


def _key(p: psutil.Process) -> tuple[int, float]:
    try:
        return p.pid, p.create_time()
    except psutil.Error:
        return p.pid, 0.0


def tree(roots: list[int]) -> list[psutil.Process]:
    """The roots and all their descendants (zombies included), children listed before their parents."""
    out: list[psutil.Process] = []
    for pid in roots:
        try:
            root = psutil.Process(pid)
            kids = root.children(recursive=True)
        except psutil.Error:
            continue
        out.extend(reversed(kids))
        out.append(root)
    return out


def cpu_of(procs: list[psutil.Process]) -> float:
    """Sum of user+system+children_user+children_system over procs, in seconds."""
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def tree_cpu(roots: list[int]) -> float:
    return cpu_of(tree(roots))


@dataclass
class Sample:
    t: float
    pss: int
    by_kind: dict
    procs: int


@dataclass
class TreeSampler:
    """Samples the trees under `roots` in a thread: PSS every `pss_every` s, membership every `every` s."""

    roots: list[int]
    every: float = 0.1
    pss_every: float = 0.2
    peak: Sample | None = None
    last: Sample | None = None
    samples: int = 0
    seen: dict = field(default_factory=dict)            # (pid, create_time) -> (name, is_browser_main)
    escaped_cpu: float = 0.0
    sampler_cpu_s: float = 0.0

    def __post_init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)
        self._last_cpu: dict = {}
        self._members: set = set()
        self.cpu_start = self.cpu_end = 0.0

    def start(self) -> "TreeSampler":
        self._sample(pss=True)
        self.cpu_start = tree_cpu(self.roots)
        self._thread.start()
        return self

    def stop(self) -> float:
        """Stop sampling; returns the trees' CPU seconds since start()."""
        self.cpu_end = tree_cpu(self.roots)
        self._stop.set()
        self._thread.join()
        return self.cpu_end - self.cpu_start + self.escaped_cpu

    def _loop(self) -> None:
        t0 = time.thread_time()
        next_pss = time.monotonic() + self.pss_every
        while not self._stop.wait(self.every):
            now = time.monotonic()
            do_pss = now >= next_pss
            if do_pss:
                next_pss = now + self.pss_every
            self._sample(pss=do_pss)
        self.sampler_cpu_s = time.thread_time() - t0

    def _sample(self, *, pss: bool) -> None:
        procs = tree(self.roots)
        members = set()
        total, by_kind = 0, {}
        for p in procs:
            key = _key(p)
            members.add(key)
            info = self.seen.get(key)
            if info is None:
                try:
                    name = p.name()
                    main = kind_of(name) == "chromium" and not any(a.startswith("--type=") for a in p.cmdline())
                except psutil.Error:
                    name, main = "?", False
                info = self.seen[key] = (name, main)
            try:
                t = p.cpu_times()
                self._last_cpu[key] = (t.user + t.system, p)
            except psutil.Error:
                pass
            if pss:
                try:
                    v = p.memory_full_info().pss
                except (psutil.Error, OSError):
                    continue
                total += v
                by_kind[kind_of(info[0])] = by_kind.get(kind_of(info[0]), 0) + v
        # A process that left the tree but still runs was re-parented outside
        # it: its reaper is not ours, so count the CPU we last saw it use.
        for key in self._members - members:
            entry = self._last_cpu.pop(key, None)
            if entry is not None:
                cpu, proc = entry
                try:
                    if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                        self.escaped_cpu += cpu
                except psutil.Error:
                    pass
        self._members = members
        self.samples += 1
        if pss:
            s = Sample(time.monotonic(), total, by_kind, len(procs))
            self.last = s
            if self.peak is None or total > self.peak.pss:
                self.peak = s

    def browsers_seen(self) -> int:
        return sum(1 for _, main in self.seen.values() if main)

    def alive_seen(self, exclude_roots: list[int] = ()) -> list[psutil.Process]:
        """Processes seen in the trees that are still alive (and not in the trees of exclude_roots)."""
        keep = {_key(p) for p in tree(list(exclude_roots))} if exclude_roots else set()
        out = []
        for (pid, ctime), (name, _) in self.seen.items():
            if (pid, ctime) in keep:
                continue
            try:
                p = psutil.Process(pid)
                if abs(p.create_time() - ctime) < 0.01 and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
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


def describe(p: psutil.Process) -> str:
    try:
        return f"{p.pid}:{p.name()}"
    except psutil.Error:
        return str(p.pid)


def kill(procs: list[psutil.Process]) -> None:
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=3)


def become_subreaper() -> bool:
    """prctl(PR_SET_CHILD_SUBREAPER): orphans of our descendants re-parent to us, inside our tree."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


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
