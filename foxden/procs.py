"""Process ownership: markers, finding, killing and reaping what foxden started (and its browsers' temp dirs)."""
from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psutil

from foxden.fsafety import safe_rmtree

# Every process foxden starts inherits this variable. Its value is
# "<state-hash>:<instance>/<owner>", so a prefix match finds everything of one
# state dir (the startup reaper), of one daemon instance (stop), or of one
# browser actor (the supervisor's cleanup). A walk of descendants is not
# enough: chrome_crashpad_handler double-forks and escapes any process tree.
MARKER_ENV = "FOXDEN_OWNER"
PID_FILE = "foxden.pid"  # the daemon's pid file, in its state dir
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


BROWSERS = "browsers"


def browsers_dir(state_dir: os.PathLike | str) -> str:
    """state_dir/browsers/: each browser's temp dir (its TMPDIR, its profile) lives under it.

    Removed with safe_rmtree only: it is never followed through a symlink."""
    return os.path.join(str(state_dir), BROWSERS) + os.sep


def state_tag(state_dir: os.PathLike | str) -> str:
    """A short stable tag for a state dir, used as the first part of markers."""
    return hashlib.sha256(os.fsencode(os.path.abspath(state_dir))).hexdigest()[:12]


def alive(proc: psutil.Process) -> bool:
    """True if proc exists and is not a zombie (a zombie holds no resources but its pid)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def pid_alive(pid: int | None, created: float | None = None) -> bool:
    """alive() for a bare pid; with `created` (its create_time()), false once the pid names another process."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if created is not None and abs((create_time(pid) or 0.0) - created) > 0.005:
            return False  # the pid was reused: the process we knew is gone
        return alive(proc)
    except psutil.Error:
        return False


def create_time(pid: int) -> float | None:
    """When pid started, in seconds since boot (None if it is gone): with its pid, a process's identity.

    Not psutil's default wall-clock create_time(): that adds the boot time
    as the kernel reports it now, which moves when the clock is stepped (NTP,
    a VM resumed), and the same process would look like a reused pid; the
    supervisor would take a live daemon for a dead one. This is Stat.start
    (clock ticks since boot), which never changes."""
    st = read_stat(pid)
    return None if st is None else st.start / _CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class Stat:
    """What /proc/PID/stat says about one process."""

    pid: int
    ppid: int
    start: int      # start time in clock ticks since boot: (pid, start) names one process
    comm: str
    state: str      # "R", "S", "D", "T", "Z", ...
    cpu: float      # own user + system, seconds
    cpu_children: float  # reaped children's user + system (cutime + cstime), seconds
    uid: int        # the owner of /proc/PID (its effective uid; root for a non-dumpable process)


def read_stat(pid: int) -> Stat | None:
    """/proc/PID/stat of pid (None if it is gone or unreadable); the one parser of that file."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            uid = os.fstat(f.fileno()).st_uid
            data = f.read()
        # The command name (field 2) is in parentheses and may hold spaces or ")".
        lp, rp = data.find(b"("), data.rfind(b")")
        f = data[rp + 2:].split()
        # fields after comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14) ... starttime(19)
        return Stat(pid, int(f[1]), int(f[19]), data[lp + 1:rp].decode(errors="replace"), f[0].decode(),
                    (int(f[11]) + int(f[12])) / _CLOCK_TICKS, (int(f[13]) + int(f[14])) / _CLOCK_TICKS, uid)
    except (OSError, ValueError, IndexError):
        return None


def describe(proc: psutil.Process, width: int = 100) -> str:
    """"PID NAME COMMAND-LINE" (cut to width) of a process, for logs and reports; the pid once it is gone."""
    try:
        return f"{proc.pid} {proc.name()} {' '.join(proc.cmdline())[:width]}"
    except psutil.Error:
        return str(proc.pid)


class ExitWatch:
    """Wait for any of some processes (not necessarily our children) to exit.

    Uses pidfds where the kernel has them: the wait costs nothing until a
    process really exits, where polling psutil five times a second cost the
    daemon ~4 ms of CPU per job in the benchmarks. Falls back to polling.
    """

    def __init__(self, pids: dict[str, int]):
        self._pids = dict(pids)
        self._fds: dict[int, str] = {}
        for role, pid in self._pids.items():
            try:
                self._fds[os.pidfd_open(pid)] = role
            except (AttributeError, OSError):
                self._fds.clear()
                break

    def wait(self, timeout: float) -> list[str]:
        """Roles whose process has exited, after waiting up to timeout seconds."""
        if not self._fds or len(self._fds) != len(self._pids):
            time.sleep(timeout)
            return [role for role, pid in self._pids.items() if not pid_alive(pid)]
        import select
        try:
            ready, _, _ = select.select(list(self._fds), [], [], timeout)
        except InterruptedError:  # pragma: no cover - Python retries select
            ready = []
        return [self._fds[fd] for fd in ready]

    def close(self) -> None:
        """Release the pidfds. Idempotent."""
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()


def process_state(pid: int) -> str:
    """"running", "stopped" (SIGSTOP/traced) or "gone" (exited or a zombie)."""
    try:
        status = psutil.Process(pid).status()
    except psutil.Error:
        return "gone"
    if status == psutil.STATUS_ZOMBIE:
        return "gone"
    return "stopped" if status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP) else "running"


def marker_of(pid: int) -> str | None:
    """The FOXDEN_OWNER value in pid's initial environment, or None."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read()
    except OSError:
        return None
    key = MARKER_ENV.encode() + b"="
    for entry in env.split(b"\0"):
        if entry.startswith(key):
            return entry[len(key):].decode(errors="replace")
    return None


def find_marked(prefix: str, *, exclude: Iterable[int] = ()) -> list[psutil.Process]:
    """Live processes of ours whose marker starts with prefix, and their descendants started after them.

    A process is foxden's by its environment marker, never by its command
    line (any process may name a browser's temp dir in its argv). Chromium's
    zygotes, GPU, utility and renderer processes write their process title
    over their environment, so their marker cannot be read; each is a
    descendant of the browser's main process, which keeps it, and was
    started after it: that is how they are found. Only processes of our own
    uid count."""
    skip = {os.getpid(), *exclude}
    table = ProcessTable()
    uid = os.geteuid()
    roots = [pid for pid in table.pids() if pid not in skip and table.uid(pid) == uid
             and (marker_of(pid) or "\0").startswith(prefix)]
    ours = dict.fromkeys(roots)
    for root in roots:
        started = table.started(root)
        for pid in table.descendants(root):
            if pid not in skip and table.uid(pid) == uid and table.started(pid) >= started:
                ours[pid] = None
    return [proc for proc in processes(ours) if alive(proc)]


def kill_and_wait(procs: Iterable[psutil.Process], timeout: float = 3.0, *, reap: bool = False
                  ) -> list[psutil.Process]:
    """SIGKILL procs and wait until all are dead (zombies count as dead).

    Returns the ones still alive after `timeout` (should be empty: SIGKILL
    cannot be caught; only an uninterruptible sleep delays it). Only the
    daemon passes reap=True: inside an actor, reaping with waitpid(-1) would
    steal the exit status Thespian waits for to send ChildActorExited."""
    procs = [p for p in procs if alive(p)]
    for proc in procs:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    deadline = time.monotonic() + timeout
    while True:
        if reap:
            reap_children()
        left = [p for p in procs if alive(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.005)


def kill_marked(prefix: str, *, also: Iterable[psutil.Process] = (),
                rounds: int = 6, timeout: float = 2.0, reap: bool = False,
                on_found: Callable[[list[psutil.Process]], None] | None = None) -> list[psutil.Process]:
    """SIGKILL every process find_marked(prefix) finds, scanning again until a scan finds none.

    Each scan's finds are stopped (SIGSTOP) before the next scan, and all
    are killed once a scan finds nothing new: a stopped process cannot fork,
    and a child it forked before it stopped is found by the next scan (the
    long chaos run: a Playwright driver killed mid-launch had just forked
    Chromium), while its parent, not yet dead, still links it to its marked
    ancestor (a killed zygote would orphan its renderers, whose own markers
    are unreadable). `also` adds processes that carry no marker (a browser
    actor); `on_found` sees each scan's finds (the daemon logs them); `reap`
    as for kill_and_wait. Returns what
    is still alive: processes that ignored SIGKILL (uninterruptible sleep)
    or, after `rounds` scans, are still being forked."""
    extra = [p for p in also if alive(p)]
    for _ in range(rounds):
        held: dict[int, psutil.Process] = {}
        for _ in range(rounds):
            new = [p for p in find_marked(prefix) + extra if p.pid not in held]
            extra = []
            if not new:
                break
            if on_found is not None:
                on_found(new)
            for proc in new:
                held[proc.pid] = proc
                _signal(proc, signal.SIGSTOP)
        if not held:
            return []
        survivors = kill_and_wait(held.values(), timeout=timeout, reap=reap)
        if survivors:
            return survivors  # a scan again would only find them again
    return find_marked(prefix)


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except psutil.Error:
        pass


def end_instance(prefix: str, state_dir: os.PathLike | str, *, also: Iterable[psutil.Process] = (),
                 timeout: float = 2.0, reap: bool = False,
                 on_found: Callable[[list[psutil.Process]], None] | None = None) -> list[psutil.Process]:
    """Kill every process of an instance (prefix: its marker; the state tag alone: every instance
    of state_dir) and remove the browsers' temp dirs; returns what survived SIGKILL.

    How an instance ends when its actors' own cleanup cannot run: the
    daemon's final sweep, the startup reaper, the supervisor once the daemon
    is gone, `foxden stop`, the test harness. One function, so that they all
    find the same processes and leave the same nothing behind."""
    survivors = kill_marked(prefix, also=also, timeout=timeout, reap=reap, on_found=on_found)
    safe_rmtree(state_dir, BROWSERS)
    return survivors


def kill_pids(pids: Iterable[int]) -> None:
    """Send SIGKILL to each pid that exists; never raises."""
    for pid in pids:
        if pid and pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def processes(pids: Iterable[int]) -> list[psutil.Process]:
    """psutil handles for the pids that still exist."""
    out = []
    for pid in pids:
        try:
            out.append(psutil.Process(pid))
        except psutil.Error:
            pass
    return out


class ProcessTable:
    """One read of /proc: parent -> children, for many tree walks at once.

    psutil's children() scans every process on each call, so the status of N
    browsers cost ~4N full scans of a table of ~10N processes (quadratic; at
    50 browsers a status took seconds). Walking this snapshot instead costs
    one scan. Zombies are left out: they hold nothing but a pid."""

    def __init__(self):
        self._kids: dict[int, list[int]] = {}
        self._live: dict[int, tuple[int, int]] = {}  # pid -> (start in clock ticks since boot, uid)
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            st = read_stat(int(name))
            if st is None or st.state in ("Z", "X"):
                continue
            self._kids.setdefault(st.ppid, []).append(st.pid)
            self._live[st.pid] = (st.start, st.uid)

    def pids(self) -> list[int]:
        """Every live pid."""
        return list(self._live)

    def started(self, pid: int) -> int:
        """When pid started, in clock ticks since boot (see create_time)."""
        return self._live[pid][0]

    def uid(self, pid: int) -> int:
        """The uid that owns pid (its /proc entry's owner)."""
        return self._live[pid][1]

    def children(self, pid: int) -> list[int]:
        """Live direct children of pid."""
        return list(self._kids.get(pid, ()))

    def descendants(self, pid: int) -> list[int]:
        """Live descendants of pid, parents before their children."""
        out, todo = [], list(self._kids.get(pid, ()))
        while todo:
            p = todo.pop(0)
            out.append(p)
            todo.extend(self._kids.get(p, ()))
        return out

    def tree(self, pid: int | None) -> list[int]:
        """pid and its live descendants, or [] if pid is not alive."""
        if not pid or pid not in self._live:
            return []
        return [pid, *self.descendants(pid)]


def descendants(pid: int) -> list[psutil.Process]:
    """Live descendants of pid (empty if pid is gone)."""
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if alive(p)]
    except psutil.Error:
        return []


def browser_pids(actor_pid: int) -> list[int]:
    """The browser processes of a browser actor on Playwright: each main process, then its descendants.

    The actor's direct children are Playwright drivers; the browser is the
    driver's child. The driver itself is not listed."""
    out: list[int] = []
    try:
        drivers = psutil.Process(actor_pid).children()
    except psutil.Error:
        return out
    for driver in drivers:
        try:
            mains = driver.children()
        except psutil.Error:
            continue
        for main in mains:
            if alive(main):
                out.append(main.pid)
                out.extend(p.pid for p in descendants(main.pid))
    return out


def reap_children() -> list[int]:
    """Reap every exited child of this process without blocking; returns their pids."""
    reaped = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        except OSError as exc:  # pragma: no cover - EINTR is retried by Python
            if exc.errno == errno.EINTR:
                continue
            return reaped
        if pid == 0:
            return reaped
        reaped.append(pid)


def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process instead of PID 1.

    With this, Thespian's double-forked admin, the actors it forks and every
    browser process stay our descendants, so we can reap and account for them
    even after their own parent died."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def stop_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Have the kernel send sig to this process when the thread that forked it exits.

    Survives exec (not setuid). The kernel watches the forking *thread*, not
    its process: fork from a thread that lives as long as the parent does."""
    return _prctl(_PR_SET_PDEATHSIG, sig)


_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
# Looked up once, here: stop_with_parent runs in a forked child before exec,
# where a dlopen/dlsym could wait forever on a loader lock that another
# thread of the parent held at the fork.
try:
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _PRCTL = None


def _prctl(option: int, value: int) -> bool:
    return _PRCTL is not None and _PRCTL(option, value, 0, 0, 0) == 0


def set_nice(value: int) -> int:
    """Set this process's nice value where the kernel allows it; returns the value it has now.

    Raising priority (a lower value) needs root, CAP_SYS_NICE or a start at
    that value (systemd's Nice=); without, this process keeps its own."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, value)
    except OSError:
        pass
    return os.getpriority(os.PRIO_PROCESS, 0)


def renice(pids: Iterable[int], value: int) -> None:
    """Set the nice value of every thread of the given processes (best effort: gone ones are skipped).

    Linux keeps a nice value per thread, and setpriority() on a pid reaches
    only its main thread, so each thread is set."""
    for pid in pids:
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                os.setpriority(os.PRIO_PROCESS, tid, value)
            except OSError:
                pass


def available_memory() -> int:
    """Bytes that can be used without swapping: the machine's, or the cgroup's if lower."""
    available = psutil.virtual_memory().available
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                available = min(available, int(limit) - int(f.read().strip()))
    except (OSError, ValueError):
        pass
    return available


def pss_bytes(pids: Iterable[int]) -> int:
    """Proportional set size of the given processes, summed (0 for ones we cannot read).

    PSS, not RSS: browser processes share most of their pages, and RSS would
    count those once per process."""
    total = 0
    for proc in processes(pids):
        try:
            total += proc.memory_full_info().pss
        except (psutil.Error, AttributeError, OSError):
            pass
    return total
