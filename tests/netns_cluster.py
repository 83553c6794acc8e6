"""A foxden cluster in a namespace lab: a leader and members, each `foxden run -c CONFIG` in its own namespace.

Used by tests/test_cluster_netns.py and bench/scale.py (``nodes``). Each node
has its own short state dir under /tmp (AF_UNIX paths are short), the one
cluster key file (0600) and a config naming its role, its bind address (its
namespace's own), the leader's admin port and its node name. The test site
is served inside the leader's namespace and records which node's address
fetched what (`HitSite`), so a job's node and its hit count come from the
network, not from the daemon's word.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

from foxden import procs
from foxden.harness import DaemonProcess, write_config
from foxden.testsite import Site, _Handler

import netns

__all__ = ["ADMIN_PORT", "Hit", "HitSite", "NodeDaemon", "Cluster", "cluster_available", "browser_mains", "node_of"]

ADMIN_PORT = 19000  # the same in every namespace: each has its own ports


def cluster_available() -> str | None:
    """Why a cluster cannot run in this build (None: it can)."""
    from foxden.config import Config

    if "cluster" not in {f.name for f in dataclasses.fields(Config)}:
        return "this build has no [cluster] (issue 16: roles leader/member)"
    return None


class Hit(NamedTuple):
    """One request with ?job=: who sent it, when it came, and when its TCP connection was accepted."""

    address: str
    job: str | None
    at: float  # monotonic
    opened: float  # monotonic: a request on a connection older than a fault was sent before it


class _HitHandler(_Handler):
    def setup(self):
        self.opened = time.monotonic()
        super().setup()

    def do_GET(self):  # noqa: N802 - http.server's naming
        job = parse_qs(urlsplit(self.path).query).get("job", [None])[0]
        site = self.server.site
        with site.lock:
            site.hits.append(Hit(self.client_address[0], job, time.monotonic(), self.opened))
        super().do_GET()


class HitSite(Site):
    """The test site, recording (client address, job id, when) for every request with ?job=."""

    def __init__(self, host: str, port: int = 0):
        super().__init__(host, port)
        self.hits: list[Hit] = []
        self.server.RequestHandlerClass = _HitHandler

    def job_hits(self, since: float = 0.0, opened_since: float = 0.0) -> Counter:
        """Requests per job id that came at or after `since` on connections accepted at or after `opened_since`."""
        with self.lock:
            return Counter(h.job for h in self.hits if h.job is not None and h.at >= since and h.opened >= opened_since)

    def job_nodes(self) -> dict[str, set[str]]:
        """job id -> the addresses that fetched its page."""
        out: dict[str, set[str]] = {}
        with self.lock:
            for h in self.hits:
                if h.job is not None:
                    out.setdefault(h.job, set()).add(h.address)
        return out


class NodeDaemon(DaemonProcess):
    """`foxden run -c CONFIG` started inside a lab node (its namespace and CPU cgroup)."""

    def __init__(self, lab: netns.Lab, node: str, config_path, *, log_path):
        super().__init__(config_path, log_path=log_path)
        self.lab, self.node = lab, node

    def launch(self) -> "NodeDaemon":
        self._log = open(self.log_path, "ab")
        self.proc = self.lab.popen(self.node, [sys.executable, "-m", self.module, "run", "-c", self.config_path],
                                   stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                   preexec_fn=procs.stop_with_parent)
        return self

    def wait_socket(self, timeout: float = 90.0) -> "NodeDaemon":
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.node} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with self.client(timeout=5.0) as c:
                    c.ping()
                return self
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.node} not ready after {timeout}s:\n{self.log_tail()}") from None
                time.sleep(0.1)


def browser_mains(pids) -> list[int]:
    """The browsers among pids: Chromium main processes (helpers carry --type=; crashpad outlives them)."""
    import psutil

    from bench import measure

    out = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            argv = p.cmdline() or [""]
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
            kind = measure.kind_of(p.name(), argv[0])
        except (psutil.Error, OSError):
            continue
        if kind == "node" or (kind == "chromium" and "crashpad" not in p.name()
                              and not any(a.startswith("--type=") for a in argv)):
            out.append(pid)
    return out


@dataclasses.dataclass
class Cluster:
    """A leader (first node) and members in `lab`; `base` is the config every node shares (conftest.BASE-like)."""

    lab: netns.Lab
    base: dict
    pool_sizes: dict[str, int]
    heartbeat_s: float = 0.5
    dead_after_s: float = 3.0
    root: str = ""
    key_file: str = ""
    daemons: dict[str, NodeDaemon] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.root = tempfile.mkdtemp(prefix="fxc", dir="/tmp")
        self.key_file = os.path.join(self.root, "cluster.key")
        with open(os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(os.urandom(32).hex())
        self.leader = next(iter(self.pool_sizes))

    @property
    def members(self) -> list[str]:
        return [n for n in self.pool_sizes if n != self.leader]

    def config(self, node: str) -> dict:
        cfg = {k: dict(v) for k, v in self.base.items()}
        d = os.path.join(self.root, node)
        os.makedirs(d, exist_ok=True)
        cfg["daemon"].update(state_dir=os.path.join(d, "state"), admin_port=ADMIN_PORT)
        cfg["pool"]["size"] = self.pool_sizes[node]
        cfg["cluster"] = {"role": "leader" if node == self.leader else "member",
                          "bind": self.lab[node].address, "key_file": self.key_file, "node": node,
                          "heartbeat_s": self.heartbeat_s, "dead_after_s": self.dead_after_s}
        if node != self.leader:
            cfg["cluster"]["leader"] = f"{self.lab[self.leader].address}:{ADMIN_PORT}"
        return cfg

    def start_node(self, node: str) -> NodeDaemon:
        d = os.path.join(self.root, node)
        path = write_config(os.path.join(d, "foxden.toml"), self.config(node))
        daemon = NodeDaemon(self.lab, node, path, log_path=os.path.join(d, f"daemon-{len(self.daemons)}.log"))
        self.daemons[node] = daemon.launch()
        return daemon

    def start(self, timeout: float = 120.0) -> "Cluster":
        """Leader first (members register with it once), then members; waits until every node is up and idle."""
        self.start_node(self.leader).wait_socket(timeout)
        for m in self.members:
            self.start_node(m)
        self.wait_all_up(timeout)
        return self

    @property
    def head(self) -> NodeDaemon:
        return self.daemons[self.leader]

    def status(self) -> dict:
        return self.head.status()

    def wait_all_up(self, timeout: float = 120.0) -> dict:
        want = {n: s for n, s in self.pool_sizes.items()}
        return self.head.wait_until(lambda st: all(
            (nd := node_of(st, n)) and nd["state"] == "up" and nd["browsers"]["by_state"].get("idle", 0) >= s
            for n, s in want.items() if s > 0 or n != self.leader), timeout=timeout, interval=0.2)

    def real_browsers(self, node: str) -> list[int]:
        return browser_mains(self.lab.pids(node))

    def stop(self) -> list[str]:
        """Stop every node (SIGTERM), then kill what is left in the namespaces; returns the problems seen."""
        problems = []
        for node in [*self.members, self.leader]:
            daemon = self.daemons.get(node)
            if daemon is None:
                continue
            rc = daemon.stop(60)
            if rc not in (0, None, -9):
                problems.append(f"{node} exited {rc}:\n{daemon.log_tail(20)}")
        for node in self.pool_sizes:
            left = self.lab.pids(node)
            if left:
                problems.append(f"processes left in {node}: {left}")
                self.lab.kill_all(node)
        return problems

    def close(self) -> None:
        if os.environ.get("FOXDEN_NETNS_KEEP"):  # for a look at the nodes' logs and configs
            print(f"kept {self.root}", file=sys.stderr)
            return
        shutil.rmtree(self.root, ignore_errors=True)


def node_of(status: dict, name: str) -> dict | None:
    return next((n for n in status.get("nodes", []) if n.get("name") == name), None)

