"""Network namespaces for multi-node tests: a bridge, one namespace per node, link cuts, CPU quotas, sure teardown.

A `Lab` makes, on this host, a bridge with no address of its own and one
network namespace per node, joined to the bridge by a veth pair; each node
has an address that exists only inside its namespace (10.231.1.N/24) and its
own loopback. The host has no address or route on the bridge, so nothing
made here can reach the host's services (its 127.0.0.1 is not theirs) and
no traffic leaves the namespaces. Every name starts with ``fxd-`` and
carries the owning process's pid; the lab holds an flock on
/run/fxd-locks/<tag> while it lives, so a lab whose owner died (a crashed or
SIGKILLed run, whatever its pid became since) is swept by the next one
(`sweep_stale`). Teardown kills every
process still inside a namespace before deleting it.
"""
from __future__ import annotations

import ctypes
import fcntl
import itertools
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PREFIX", "SUBNET", "CGROUP_CPU", "Lab", "Node", "unavailable_reason", "sweep_stale", "leftovers",
           "netns_pids", "run_in_netns"]

PREFIX = "fxd-"
SUBNET = "10.231.1"  # per bridge: two labs at once share no L2 segment, so the same subnet never meets itself
CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
NETNS_DIR = Path("/run/netns")
LOCK_DIR = Path("/run/fxd-locks")  # a lab holds an flock on LOCK_DIR/<tag> for as long as it lives
CLONE_NEWNET = 0x40000000
_seq = itertools.count()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (tests/netns.py)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if not os.path.exists("/proc/self/ns/net"):
        return "this kernel has no network namespaces"
    probe = f"{PREFIX}{os.getpid():x}xp-probe"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    _ip("netns", "delete", probe, check=False)
    return None


def _tag_of(name: str) -> str:
    """The lab tag a fxd- name starts with: fxd-<owner pid, hex>x<one character>."""
    cut = name.find("x", len(PREFIX))
    return name[:cut + 2] if cut > 0 else name


def _owner_alive(name: str) -> bool:
    """True while the lab that made `name` holds its lock (a dead owner's lock is free, whatever its pid became)."""
    path = LOCK_DIR / _tag_of(name)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _ns_inode(ns: str) -> int | None:
    try:
        return os.stat(NETNS_DIR / ns).st_ino
    except OSError:
        return None


def netns_pids(ns: str) -> list[int]:
    """Every process whose network namespace is `ns` (what `ip netns pids` reports)."""
    ino = _ns_inode(ns)
    if ino is None:
        return []
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino == ino:
                    out.append(int(entry))
            except OSError:
                continue
    return out


def _kill_pids(list_pids, what: str, timeout: float = 15.0) -> None:
    """SIGKILL until `list_pids()` is empty (a dying tree can fork between scans)."""
    deadline = time.monotonic() + timeout
    while pids := list_pids():
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes still in {what} after {timeout}s: {pids}")
        time.sleep(0.05)


def _cgroup_pids(path: Path) -> list[int]:
    try:
        return [int(x) for x in (path / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _remove_cgroup(path: Path) -> None:
    _kill_pids(lambda: _cgroup_pids(path), str(path))
    for _ in range(100):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)  # the last exits are still being accounted
    path.rmdir()


def _delete_netns(ns: str) -> None:
    _kill_pids(lambda: netns_pids(ns), f"network namespace {ns}")
    _ip("netns", "delete", ns, check=False)


def _fxd_links() -> list[str]:
    out = _ip("-o", "link", "show").stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]
    return [n for n in names if n.startswith(PREFIX)]


def _fxd_netns() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list").stdout.splitlines()
            if line.split() and line.split()[0].startswith(PREFIX)]


def _fxd_cgroups() -> list[Path]:
    return sorted(CGROUP_CPU.glob(PREFIX + "*")) if CGROUP_CPU.is_dir() else []


def sweep_stale() -> list[str]:
    """Delete every fxd- namespace, link and cgroup whose owning process is gone; returns their names."""
    swept = []
    for ns in _fxd_netns():
        if not _owner_alive(ns):
            _delete_netns(ns)
            swept.append(ns)
    for link in _fxd_links():
        if not _owner_alive(link):
            _ip("link", "delete", link, check=False)
            swept.append(link)
    for cg in _fxd_cgroups():
        if not _owner_alive(cg.name):
            _remove_cgroup(cg)
            swept.append(str(cg))
    for lock in sorted(LOCK_DIR.glob(PREFIX + "*")) if LOCK_DIR.is_dir() else []:
        if not _owner_alive(lock.name):
            lock.unlink(missing_ok=True)
    return swept


def leftovers(tag: str) -> list[str]:
    """What of lab `tag` still exists: namespaces, links, cgroups, its lock file."""
    left = [f"netns {n}" for n in _fxd_netns() if n.startswith(tag)]
    left += [f"lock {LOCK_DIR / tag}"] if (LOCK_DIR / tag).exists() else []
    left += [f"link {n}" for n in _fxd_links() if n.startswith(tag)]
    left += [f"cgroup {c}" for c in _fxd_cgroups() if c.name.startswith(tag)]
    return left


def _setns_current_thread(ns_path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(ns_path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns_path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def run_in_netns(ns: str, fn):
    """Call fn() on a fresh thread that has entered namespace `ns`; returns its result.

    A socket made there stays in `ns` wherever it is used afterwards, so a
    server built by fn (an HTTP site, a listener) serves inside the namespace
    from this process's ordinary threads. This thread's namespace is untouched."""
    box: dict = {}

    def body():
        try:
            _setns_current_thread(str(NETNS_DIR / ns))
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    t = threading.Thread(target=body, name=f"in-{ns}")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


@dataclass
class Node:
    """One node: its namespace, its address (only inside it), its veth ends and its CPU cgroup."""

    name: str
    ns: str
    address: str
    host_if: str
    cgroup: Path | None = None

    def argv(self, argv: list[str]) -> list[str]:
        """`argv` run inside this node's network namespace (nsenter execs it: the pid is the command's)."""
        return ["nsenter", f"--net={NETNS_DIR / self.ns}", "--", *argv]


class Lab:
    """A bridge and one namespace per node; `close()` (or leaving the `with`) removes all of it.

    nodes: names, in order; node i gets address SUBNET.(i+1). cpu_quota: CPUs
    per node (e.g. 0.6) for a cgroup v1 CPU quota each node's processes run in,
    or None."""

    def __init__(self, nodes: list[str], *, cpu_quota: float | None = None):
        seq = "0123456789abcdefghijklmnopqrstuvwxyz"[next(_seq) % 36]
        self.tag = f"{PREFIX}{os.getpid():x}x{seq}"
        self.bridge = self.tag + "br"
        self.cpu_quota = cpu_quota
        self.nodes: dict[str, Node] = {}
        for i, name in enumerate(nodes):
            cg = CGROUP_CPU / f"{self.tag}-{name}" if cpu_quota else None
            self.nodes[name] = Node(name, f"{self.tag}-{name}", f"{SUBNET}.{i + 1}", f"{self.tag}h{i}", cg)
        self._popens: list[subprocess.Popen] = []
        self._lock: int | None = None

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def start(self) -> "Lab":
        sweep_stale()
        LOCK_DIR.mkdir(exist_ok=True)
        self._lock = os.open(LOCK_DIR / self.tag, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # held until close(), or until this process dies
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("link", "set", self.bridge, "up")
            for i, node in enumerate(self.nodes.values()):
                self._make_node(i, node)
        except BaseException:
            self.close()
            raise
        return self

    def _make_node(self, i: int, node: Node) -> None:
        _ip("netns", "add", node.ns)
        _ip("link", "add", node.host_if, "type", "veth", "peer", "name", "fx0", "netns", node.ns)
        _ip("link", "set", node.host_if, "master", self.bridge, "up")
        _ip("-n", node.ns, "addr", "add", f"{node.address}/24", "dev", "fx0")
        _ip("-n", node.ns, "link", "set", "fx0", "up")
        _ip("-n", node.ns, "link", "set", "lo", "up")
        if node.cgroup is not None:
            node.cgroup.mkdir()
            period = int((node.cgroup / "cpu.cfs_period_us").read_text())
            (node.cgroup / "cpu.cfs_quota_us").write_text(str(int(period * self.cpu_quota)))

    # --- running things inside -------------------------------------------------

    def popen(self, name: str, argv: list[str], **kwargs) -> subprocess.Popen:
        """Start argv inside node `name` (and in its CPU cgroup, with every descendant)."""
        node = self.nodes[name]
        preexec = kwargs.pop("preexec_fn", None)

        def enter():
            if node.cgroup is not None:
                (node.cgroup / "cgroup.procs").write_text(str(os.getpid()))
            if preexec is not None:
                preexec()

        p = subprocess.Popen(node.argv(argv), preexec_fn=enter, **kwargs)
        self._popens.append(p)
        return p

    def run(self, name: str, argv: list[str], timeout: float = 60.0, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self.nodes[name].argv(argv), timeout=timeout, **kwargs)

    def pids(self, name: str) -> list[int]:
        """Every process inside node `name`'s namespace (a zombie has left its namespaces already)."""
        return netns_pids(self.nodes[name].ns)

    def kill_all(self, name: str) -> None:
        """SIGKILL every process of node `name` until none is left."""
        _kill_pids(lambda: self.pids(name), f"node {name}")

    def cut(self, name: str) -> None:
        """Take node `name`'s link down (its peer loses carrier: nothing in or out)."""
        _ip("link", "set", self.nodes[name].host_if, "down")

    def restore(self, name: str) -> None:
        _ip("link", "set", self.nodes[name].host_if, "up")

    def site_in(self, name: str, site_factory):
        """Build a server (site_factory(address)) whose listening socket is inside node `name`."""
        node = self.nodes[name]
        return run_in_netns(node.ns, lambda: site_factory(node.address))

    # --- teardown --------------------------------------------------------------

    def close(self) -> None:
        """Kill every process inside, delete namespaces, links, bridge and cgroups (idempotent)."""
        errors = []
        for node in self.nodes.values():
            try:
                _delete_netns(node.ns)  # its veth end goes with it, and the bridge's end with that
            except Exception as exc:  # noqa: BLE001 - tear the rest down, then report
                errors.append(exc)
        for link in _fxd_links():
            if link.startswith(self.tag):
                _ip("link", "delete", link, check=False)
        for node in self.nodes.values():
            if node.cgroup is not None and node.cgroup.exists():
                try:
                    _remove_cgroup(node.cgroup)
                except Exception as exc:  # noqa: BLE001
                    errors.append(exc)
        for p in self._popens:
            p.poll()
        if errors:
            raise errors[0]
        if self._lock is not None:
            (LOCK_DIR / self.tag).unlink(missing_ok=True)
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> "Lab":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
