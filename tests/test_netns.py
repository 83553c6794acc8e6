"""The namespace harness (tests/netns.py): isolation, link cuts, CPU quotas, certain teardown, a sealed Thespian convention."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

import netns
from foxden import transport

TESTS = str(Path(__file__).parent)
REASON = netns.unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


@pytest.fixture(scope="module")
def lab():
    with netns.Lab(["a", "b", "c"], cpu_quota=0.5) as lab:
        yield lab
    assert not netns.leftovers(lab.tag)


def _listener(address: str) -> socket.socket:
    s = socket.socket()
    s.bind((address, 0))
    s.listen(8)
    return s


def _connect_error(host: str, port: int) -> str | None:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def test_nodes_reach_each_other_and_only_each_other(lab):
    server = lab.site_in("a", _listener)
    port = server.getsockname()[1]
    host_only = _listener("127.0.0.1")  # a service of the host's own loopback
    try:
        reach = lab.run("b", [sys.executable, "-c", textwrap.dedent(f"""
            import socket, sys
            socket.create_connection(("{lab['a'].address}", {port}), timeout=5).close()
            try:
                socket.create_connection(("127.0.0.1", {host_only.getsockname()[1]}), timeout=2).close()
                sys.exit("the host's 127.0.0.1 service answered inside a namespace")
            except OSError as exc:
                print("refused:", exc)
            """)])
        assert reach.returncode == 0, reach.stdout + reach.stderr
        assert "refused" in reach.stdout
        addrs = lab.run("b", ["ip", "-o", "-4", "addr"]).stdout
        assert lab["b"].address in addrs and lab["a"].address not in addrs
        # And the other way: the host cannot reach a node's address (the bridge has none).
        assert _connect_error(lab["a"].address, port) is not None
        host_addrs = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
        assert netns.SUBNET not in host_addrs
    finally:
        server.close()
        host_only.close()


def test_a_cut_link_carries_nothing_until_restored(lab):
    server = lab.site_in("a", _listener)
    port = server.getsockname()[1]
    probe = [sys.executable, "-c", f"import socket; socket.create_connection(('{lab['a'].address}', {port}), timeout=2)"]
    try:
        lab.cut("c")
        assert lab.run("c", probe).returncode != 0
        assert lab.run("b", probe).returncode == 0  # only c's link is down
        lab.restore("c")
        deadline = time.monotonic() + 10
        while lab.run("c", probe).returncode != 0:
            assert time.monotonic() < deadline, "node c did not come back after its link was restored"
            time.sleep(0.2)
    finally:
        lab.restore("c")
        server.close()


def test_a_node_runs_in_its_cpu_cgroup_with_its_quota(lab):
    p = lab.popen("b", ["sleep", "600"])
    try:
        cg = lab["b"].cgroup
        assert int((cg / "cpu.cfs_quota_us").read_text()) == int((cg / "cpu.cfs_period_us").read_text()) // 2
        deadline = time.monotonic() + 10
        while p.pid not in lab.pids("b"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert str(p.pid) in (cg / "cgroup.procs").read_text().split()
        lab.kill_all("b")
        assert p.wait(10) == -9 and lab.pids("b") == []
    finally:
        p.kill()
        p.wait()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE  # a zombie waits for an init that reaps
    except psutil.NoSuchProcess:
        return False


def test_teardown_leaves_nothing_even_after_a_crashed_run(tmp_path):
    """A run SIGKILLed with its lab up (a process inside, a cgroup) is swept by the next lab; that one closes clean."""
    script = textwrap.dedent(f"""
        import sys, time; sys.path.insert(0, {TESTS!r})
        import subprocess, netns
        lab = netns.Lab(["x", "y"], cpu_quota=0.3).start()
        lab.popen("x", ["sleep", "600"])  # in x's namespace and CPU cgroup
        subprocess.Popen(lab["y"].argv(["sleep", "600"]))  # in y's namespace only
        while not (lab.pids("x") and lab.pids("y")):  # nsenter has entered both
            time.sleep(0.01)
        print(lab.tag, flush=True)
        time.sleep(600)
        """)
    crashed = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    tag = crashed.stdout.readline().strip()
    assert tag.startswith(netns.PREFIX), tag
    sleepers = netns.netns_pids(f"{tag}-x") + netns.netns_pids(f"{tag}-y")
    assert len(sleepers) == 2 and netns.leftovers(tag)
    crashed.kill()
    crashed.wait()
    assert netns.leftovers(tag), "a SIGKILLed run left nothing (so this test proves nothing)"
    with netns.Lab(["z"]) as fresh:
        assert not netns.leftovers(tag), f"not swept: {netns.leftovers(tag)}"
        assert not [pid for pid in sleepers if _alive(pid)]
    assert not netns.leftovers(fresh.tag)


def _key(path: Path) -> str:
    path.write_bytes(transport.new_key().hex().encode())
    path.chmod(0o600)
    return str(path)


def _convention(lab, keys: dict[str, str], wait_s: float = 30) -> dict:
    """Leader in a, members b and c, each with its key file: what the leader's placed actors answered."""
    leader_addr, port = lab["a"].address, "19000"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]),
               FOXDEN_PROBE_NODES="b,c,a", FOXDEN_PROBE_WAIT_S=str(wait_s))
    run = [sys.executable, "-c", "import netns_probe; netns_probe.main()"]
    leader = lab.popen("a", run + ["leader", "a", leader_addr, leader_addr, port, keys["a"]], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    members = []
    try:
        assert json.loads(leader.stdout.readline())["ready"] == "a", leader.stderr.read()[-3000:]
        members = [lab.popen(n, run + ["member", n, lab[n].address, leader_addr, port, keys[n]], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for n in ("b", "c")]
        out, err = leader.communicate(timeout=wait_s + 60)
        assert leader.returncode == 0, err[-3000:]
        placed = json.loads(out.strip().splitlines()[-1])
        print("convention across namespaces:", placed)
        placed["leader_log"] = err
        return placed
    finally:
        for m in members:
            m.stdin.close()
        for m in members:
            try:
                m.wait(30)
            except subprocess.TimeoutExpired:
                m.kill()
        for n in ("a", "b", "c"):
            lab.kill_all(n)  # what is left of Thespian's forked admins and actors


def test_a_thespian_convention_spans_namespaces_with_the_sealed_transport(lab, tmp_path):
    """A leader in a, members in b and c (one key file, 0600): a trivial actor is placed on each by capability."""
    key = _key(tmp_path / "cluster.key")
    placed = _convention(lab, {"a": key, "b": key, "c": key})
    inodes = {}
    for node in ("a", "b", "c"):
        assert "answer" in placed[node], placed
        name, pid, ino, echo = placed[node]["answer"]
        assert (name, echo) == (node, "where?")
        inodes[node] = ino
    assert inodes["b"] == os.stat(f"/run/netns/{lab['b'].ns}").st_ino
    assert len(set(inodes.values())) == 3


def test_a_member_without_the_cluster_key_never_joins(lab, tmp_path):
    """c seals with another key: the leader refuses its frames (MAC), nothing is placed on it; b still joins."""
    key, other = _key(tmp_path / "cluster.key"), _key(tmp_path / "other.key")
    placed = _convention(lab, {"a": key, "b": key, "c": other}, wait_s=6)
    assert "answer" in placed["b"], placed
    assert "NoCompatibleSystemForActor" in placed["c"].get("error", ""), placed
    assert "refused on an actor port (mac)" in placed["leader_log"], placed["leader_log"][-2000:]
