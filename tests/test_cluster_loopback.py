"""A leader and a member on 127.0.0.1 (two daemons, distinct admin ports and state dirs), real Chromium.

One leader and one member per module: jobs run on both nodes; status shows
both up with `node` on every child; SIGKILL of every process of the member
mid-batch gets it declared lost within dead_after_s + heartbeat_s, each job
answered exactly once and nothing of it left; a member restarted on the same
config rejoins as a new incarnation; a leader silent for dead_after_s gets
the member to fence itself (new incarnation, fresh browsers); drain releases
it; a member with another key is refused. The network-namespace tests
(tests/netns.py) do the same across real links."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from foxden import procs
from foxden.harness import DaemonProcess, write_config
from foxden.protocols import wire
from tests.conftest import merged
from tests.wiretap import Tap

pytestmark = pytest.mark.browser

HEARTBEAT_S, DEAD_AFTER_S = 0.5, 2.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Member(DaemonProcess):
    """A member daemon: no socket of its own; it is ready when the leader shows its node up."""

    def start(self, timeout: float = 90.0, *, wait_pool: bool = True) -> "Member":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "foxden", "run", "-c", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     preexec_fn=procs.stop_with_parent)
        return self


class Cluster:
    """The module's two daemons and their files."""

    def __init__(self, root: str):
        self.root = root
        self.key = os.path.join(root, "cluster.key")
        with open(os.open(self.key, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(secrets.token_hex(32))
        self.leader_port = free_port()
        self.members: list[Member] = []
        self.leader = DaemonProcess(self._config("leader", {"role": "leader", "node": "lead"}),
                                    log_path=os.path.join(root, "leader.log"))
        self.member = self.new_member("m1", self.key)

    def _config(self, name: str, cluster: dict, admin_port: int | None = None) -> str:
        cfg = merged({"pool": {"size": 1}, "jobs": {"retries": 1, "allow_private": True},
                      "cluster": {"key_file": self.key, "heartbeat_s": HEARTBEAT_S, "dead_after_s": DEAD_AFTER_S,
                                  **cluster}})
        cfg["daemon"]["state_dir"] = os.path.join(self.root, name)
        cfg["daemon"]["admin_port"] = admin_port or (self.leader_port if cluster["role"] == "leader"
                                                     else free_port())
        return str(write_config(os.path.join(self.root, f"{name}.toml"), cfg))

    def new_member(self, name: str, key: str) -> Member:
        path = self._config(name, {"role": "member", "node": name, "key_file": key,
                                   "leader": f"127.0.0.1:{self.leader_port}"})
        member = Member(path, log_path=os.path.join(self.root, f"{name}-{len(self.members)}.log"))
        self.members.append(member)
        return member

    def node(self, status: dict, name: str) -> dict | None:
        return next((n for n in status.get("nodes", []) if n["name"] == name), None)

    def wait_node(self, name: str, pred, timeout: float = 60.0) -> dict:
        return self.leader.wait_until(lambda s: pred(self.node(s, name)), timeout=timeout)


def _up_with_idle(node: dict | None) -> bool:
    return node is not None and node["state"] == "up" and node["browsers"]["by_state"].get("idle", 0) >= 1


@pytest.fixture(scope="module")
def cluster():
    root = tempfile.mkdtemp(prefix="fxc", dir="/tmp")
    c = Cluster(root)
    try:
        c.leader.start(wait_pool=False)  # the member starts meanwhile
        c.member.start()
        c.wait_node("m1", _up_with_idle)
        c.leader.wait_until(lambda s: s["browsers"]["by_state"]["idle"] == 2, timeout=60)
        yield c
    finally:
        daemons = [*c.members, c.leader]
        for d in daemons:
            d.stop()
        left = [(d.config_path, [p.pid for p in d.leftovers()]) for d in daemons]
        for d in daemons:
            d.kill_leftovers()
        shutil.rmtree(root, ignore_errors=True)
        assert all(not pids for _, pids in left), f"processes left: {left}"


def _batch(tap: Tap, site, n: int, prefix: str, eval_ms: int = 0) -> None:
    ev = f"new Promise(r => setTimeout(() => r(1), {eval_ms}))" if eval_ms else None
    for i in range(n):
        tap.submit(wire.JobRequest(url=site.url(f"/page/{i}"), id=f"{prefix}{i}", eval=ev))


def test_jobs_run_on_both_nodes_and_status_shows_them(cluster, site):
    st = cluster.leader.status()
    assert {n["name"]: n["state"] for n in st["nodes"]} == {"lead": "up", "m1": "up"}
    assert st["browsers"]["live"] == sum(n["browsers"]["live"] for n in st["nodes"]) == 2
    assert {c["node"] for c in st["children"]} == {"lead", "m1"}
    assert all(c["id"].startswith(c["node"] + "/") for c in st["children"])
    with Tap(str(cluster.leader.config.daemon.socket)) as tap:
        _batch(tap, site, 8, "both", eval_ms=200)
        tap.run([], concurrency=8, timeout=120)
        answers = tap.answers()
    assert {a.status for a in answers.values()} == {"ok"}
    assert {a.browser.split("/")[0] for a in answers.values()} == {"lead", "m1"}
    st = cluster.leader.status()
    assert st["invariants"]["ok"], st["invariants"]


def _session_on(cluster, site, node: str) -> tuple[str, str]:
    """A session (and the cookie value it holds) whose browser is on `node`: sessions go to whichever
    browser is idle, so open a few."""
    with cluster.leader.client(timeout=60) as c:
        for i in range(8):
            a = c.submit(site.url(f"/cookie/set?v=kept{i}"), session=f"sess{i}")
            assert a.status == "ok", a
            if a.browser.startswith(node + "/"):
                return f"sess{i}", f"kept{i}"
    pytest.fail(f"no session landed on {node}")


def test_sigkill_of_the_member_loses_it_and_answers_each_job_once(cluster, site):
    member = cluster.member
    session, value = _session_on(cluster, site, "m1")
    with Tap(str(cluster.leader.config.daemon.socket)) as tap:
        _batch(tap, site, 6, "kill", eval_ms=1000)
        cluster.wait_node("m1", lambda n: n is not None and n["jobs_in_flight"] >= 1, timeout=30)
        killed = member.kill_leftovers()  # SIGKILL every process of the member (its marker), scan until none
        assert killed
        member.proc.wait(10)
        st = cluster.wait_node("m1", lambda n: n is not None and n["state"] == "lost", timeout=30)
        tap.run([], concurrency=6, timeout=120)
        answers = tap.answers()  # raises unless every job has exactly one answer
        tap.drain(quiet_s=1.0)
        assert all(len(r) == 1 for r in tap.replies.values())
    lost = cluster.node(st, "m1")
    assert lost["lost_after_s"] <= DEAD_AFTER_S + HEARTBEAT_S, lost
    assert lost["browsers"]["live"] == 0 and lost["jobs_in_flight"] == 0
    assert {a.status for a in answers.values()} <= {"ok", "failed"}
    failed = [a for a in answers.values() if a.status == "failed"]
    assert all(a.error.code == "node_lost" for a in failed), failed
    assert member.leftovers() == []
    st = cluster.leader.status()
    assert st["browsers"]["live"] == 1 == len([c for c in st["children"] if c["node"] == "lead"])
    assert st["invariants"]["ok"], st["invariants"]
    # The session the lost node held is restored on the leader's browser from its snapshot ([sessions] persist).
    with cluster.leader.client(timeout=60) as c:
        a = c.submit(site.url("/cookie/get"), session=session)
    assert a.status == "ok" and a.result.title == f"cookie foxden={value}" and a.browser.startswith("lead/"), a


def test_a_member_restarted_rejoins_as_a_new_incarnation(cluster, site):
    old = cluster.node(cluster.leader.status(), "m1")
    cluster.member = cluster.new_member("m1", cluster.key)
    cluster.member.start()
    cluster.wait_node("m1", lambda n: _up_with_idle(n) and n["incarnation"] != old["incarnation"])
    st = cluster.leader.wait_until(lambda s: s["browsers"]["by_state"]["idle"] == 2, timeout=30)
    mine = [c for c in st["children"] if c["node"] == "m1"]
    assert len(mine) == 1 and mine[0]["id"].startswith("m1/i1."), (mine, st["nodes"])
    assert st["browsers"]["live"] == 2, st["nodes"]


def test_a_silent_leader_gets_the_member_to_fence_itself(cluster, site):
    """The cluster actor stopped (SIGSTOP) for longer than dead_after_s: the member kills its browsers and
    joins anew; the leader, back, writes the old incarnation off (its late messages are dropped)."""
    st = cluster.leader.status()
    before = cluster.node(st, "m1")
    old_pids = {c["pid"] for c in st["children"] if c["node"] == "m1"}
    cluster_pid = _cluster_actor_pid(cluster.leader)
    os.kill(cluster_pid, signal.SIGSTOP)
    try:
        cluster.member.wait_log("fencing incarnation " + before["incarnation"])
    finally:
        os.kill(cluster_pid, signal.SIGCONT)
    cluster.wait_node("m1", lambda n: _up_with_idle(n) and n["incarnation"] != before["incarnation"])
    st = cluster.leader.wait_until(lambda s: s["browsers"]["by_state"]["idle"] == 2, timeout=30)
    mine = [c for c in st["children"] if c["node"] == "m1"]
    assert len(mine) == 1 and mine[0]["pid"] not in old_pids, (mine, st["nodes"])
    assert not any(procs.pid_alive(p) for p in old_pids)


def test_drain_releases_the_member(cluster, site):
    run = [sys.executable, "-m", "foxden", "node", "drain", "-c", cluster.leader.config_path]
    with Tap(str(cluster.leader.config.daemon.socket)) as tap:
        _batch(tap, site, 4, "drain", eval_ms=800)
        cluster.wait_node("m1", lambda n: n is not None and n["jobs_in_flight"] >= 1, timeout=30)
        out = subprocess.run(run + ["m1"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert '"state": "draining"' in out.stdout
        st = cluster.leader.wait_until(lambda s: cluster.node(s, "m1") is None, timeout=60)
        tap.run([], concurrency=4, timeout=120)
        answers = tap.answers()
    assert {a.status for a in answers.values()} == {"ok"}
    assert st["browsers"]["live"] == 1
    # its browsers are stopped; the member's daemon stays up (restart it to rejoin)
    deadline = time.monotonic() + 30
    while any("chrom" in " ".join(p.cmdline()) for p in cluster.member.leftovers()):
        assert time.monotonic() < deadline, "the released member's browsers are still running"
        time.sleep(0.2)
    assert cluster.member.proc.poll() is None
    bad = subprocess.run(run + ["nosuch"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "nosuch" in bad.stderr


def test_a_member_with_another_key_is_refused(cluster):
    other = os.path.join(cluster.root, "other.key")
    with open(os.open(other, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(secrets.token_hex(32))
    before = cluster.leader.status()["transport"]["refused_by_reason"].get("mac", 0)
    intruder = cluster.new_member("m9", other)
    intruder.start()
    st = cluster.leader.wait_until(lambda s: s["transport"]["refused_by_reason"].get("mac", 0) > before, timeout=30)
    assert cluster.node(st, "m9") is None  # its registration was never unpickled: no node actor placed


def _cluster_actor_pid(leader: DaemonProcess) -> int:
    with open(leader.log_path) as f:
        for line in f:
            if "foxden.cluster[" in line and "registered from" in line:
                return int(line.split("foxden.cluster[", 1)[1].split("]", 1)[0])
    raise AssertionError("no cluster actor found in the leader's log")
