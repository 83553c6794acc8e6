"""The cluster's pure decisions (foxden.cluster.table, .view), its config checks and its placement rule."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from foxden.actors.admin import check_invariants
from foxden.cluster import table
from foxden.cluster.node import NodeActor
from foxden.cluster.table import Admit, Node, NodeState
from foxden.cluster.view import merge_snapshot
from foxden.config import ConfigError, config_from_overrides
from foxden.protocols.errors import ErrorCode
from foxden.protocols.exits import ExitReason


def nodes(*entries: Node) -> dict[str, Node]:
    return {n.name: n for n in entries}


def child(bid: str, state: str = "idle", pid: int = 100, job_key=None, assigns=0, ends=0) -> dict:
    return {"id": bid, "pid": pid, "browser_pids": [pid + 1], "engine": "chromium", "version": "v", "state": state,
            "job": job_key, "job_key": job_key, "assigns": assigns, "ends": ends, "jobs_done": 0,
            "started_at": 0.0, "age_s": 1.0, "sessions": [], "pss_sampled": 0}


# --- admission by incarnation ------------------------------------------------------------

def test_only_the_incarnation_held_up_is_accepted():
    t = nodes(Node("m1", "a", "m1-x-1", last_seen=0.0))
    assert table.admit(t, set(), "m1", "m1-x-1", join=False) is Admit.ACCEPT
    assert table.admit(t, set(), "m1", "m1-x-2", join=False) is Admit.STALE  # only a join creates an entry
    assert table.admit(t, set(), "m1", "m1-x-2", join=True) is Admit.JOIN  # a new incarnation replaces it
    assert table.admit(t, set(), "m2", "m2-y-1", join=True) is Admit.JOIN


def test_a_written_off_incarnation_is_stale_even_as_a_join():
    t = nodes(Node("m1", "a", "m1-x-2"))
    assert table.admit(t, {"m1-x-1"}, "m1", "m1-x-1", join=True) is Admit.STALE
    assert table.admit(t, {"m1-x-1"}, "m1", "m1-x-1", join=False) is Admit.STALE


def test_a_lost_node_accepts_nothing_of_that_incarnation():
    t = nodes(Node("m1", "a", "m1-x-1", state=NodeState.LOST))
    assert table.admit(t, set(), "m1", "m1-x-1", join=False) is Admit.STALE


# --- liveness, with a fake clock ------------------------------------------------------------

def test_a_node_is_lost_after_dead_after_s_without_a_message():
    t = nodes(Node("lead", "a", "l", last_seen=0.0, local=True), Node("m1", "b", "m1-1", last_seen=10.0),
              Node("m2", "c", "m2-1", last_seen=12.0, state=NodeState.DRAINING),
              Node("m3", "d", "m3-1", last_seen=0.0, state=NodeState.LOST))
    assert table.lost_nodes(t, 15.0, 5.0) == []
    assert table.lost_nodes(t, 15.01, 5.0) == ["m1"]  # the leader's own never; a lost one not twice
    assert table.lost_nodes(t, 17.5, 5.0) == ["m1", "m2"]  # draining nodes die too


def test_a_member_fences_once_the_leader_is_silent_for_dead_after_s():
    assert not table.fence_due(None, 100.0, 5.0)  # not welcomed yet: nothing to fence
    assert not table.fence_due(95.0, 100.0, 5.0)
    assert table.fence_due(94.9, 100.0, 5.0)


def test_drain_releases_only_when_no_job_is_in_flight():
    n = Node("m1", "a", "i", state=NodeState.DRAINING, jobs={"k1": "b1"})
    assert not table.release_due(n)
    n.jobs.clear()
    assert table.release_due(n)
    assert not table.release_due(Node("m2", "a", "i"))  # an up node is not released


def test_only_up_nodes_take_work():
    assert table.takes_work(Node("m1", "a", "i"))
    assert not table.takes_work(Node("m1", "a", "i", state=NodeState.DRAINING))
    assert not table.takes_work(Node("m1", "a", "i", state=NodeState.LOST))
    assert not table.takes_work(None)


def test_browser_names_round_trip():
    assert table.node_of(table.browser_name("m1", "i2.b3")) == ("m1", "i2.b3")
    assert table.node_of("b1") == ("", "b1")


# --- the derived view -----------------------------------------------------------------------

def test_live_is_the_sum_over_nodes_that_are_not_lost():
    t = nodes(Node("lead", "a", "l", local=True, report={"live": 2}), Node("m1", "b", "1", report={"live": 3}),
              Node("m2", "c", "2", state=NodeState.LOST, report={"live": 5}),
              Node("m3", "d", "3", state=NodeState.DRAINING, report={"live": 1}))
    assert table.cluster_live(t) == 6


def test_status_row_of_a_lost_node_counts_no_browser():
    row = table.status_row(Node("m1", "h:1", "i", state=NodeState.LOST, last_seen=1.0, lost_after_s=5.2,
                                report={"live": 2, "children": [child("b1")]}), now=4.0)
    assert row["state"] == "lost" and row["browsers"] == {"live": 0, "by_state": {}}
    assert row["last_seen_s"] == 3.0 and row["lost_after_s"] == 5.2


def test_merged_snapshot_keeps_the_local_pool_for_rule_1_and_names_every_child():
    local = {"pid": 10, "live": 1, "children": [child("b1")], "kills": {"timeout": 1}, "exits": {}, "restarts": 0,
             "gones": 7}
    remote = Node("m1", "h:2", "m1-1", report={"live": 1, "children": [child("i1.b1", pid=200)],
                                               "kills": {"timeout": 2}, "exits": {"crash": 1}, "restarts": 1})
    t = nodes(Node("lead", "h:1", "l", local=True, report=local), remote,
              Node("m2", "h:3", "m2-1", state=NodeState.LOST, report={}))
    merged = merge_snapshot(local, "lead", t, gones=3, now=0.0)
    assert merged["live"] == 1 and merged["cluster_live"] == 2
    assert [c["id"] for c in merged["children"]] == ["lead/b1"]
    assert [(c["id"], c["node"]) for c in merged["remote_children"]] == [("m1/i1.b1", "m1")]
    assert merged["gones"] == 3  # the cluster actor's count, not the local supervisor's
    assert merged["kills"] == {"timeout": 3} and merged["exits"] == {"crash": 1} and merged["restarts"] == 1
    assert [n["name"] for n in merged["nodes"]] == ["lead", "m1", "m2"]
    remote.browsers = {"i1.b1", "i1.b2"}  # b2 offered, not in the report yet
    assert merge_snapshot(local, "lead", t, gones=3, now=0.0)["unreported"] == ["m1/i1.b2"]


def test_merged_snapshot_without_a_local_pool():
    merged = merge_snapshot(None, "lead", nodes(Node("lead", "h", "l", local=True)), gones=0, now=0.0)
    assert merged["pid"] is None and merged["children"] == [] and merged["cluster_live"] == 0


def test_admin_judges_remote_children_by_their_numbers_and_reports_node_violations():
    disp = {"running": {"m1/i1.b1": "k1"}, "channel": {"m1/i1.b1": [1, 0]}, "gones": 0,
            "totals": {"submitted": 1, "ok": 0, "failed": 0, "timeout": 0, "rejected": 0}, "unanswered": 1}
    sup = {"pid": None, "live": 0, "children": [], "gones": 0,
           "remote_children": [{**child("m1/i1.b1", "idle", assigns=1, ends=0), "node": "m1"}],
           "nodes": [{"name": "m1", "violations": ["live count 1 != 0 browser actor processes"]}]}
    violations, unsettled = check_invariants(disp, sup, disp, set())
    texts = [v.text for v in violations]
    assert any("busy browser m1/i1.b1" in t for t in texts)  # numbers match: the job must match too
    assert any(t.startswith("node m1: live count") for t in texts)
    assert unsettled == []
    violations, unsettled = check_invariants(disp, {**sup, "unreported": ["m1/i1.b1"]}, disp, set())
    assert unsettled == ["m1/i1.b1"] and not any("busy browser" in v.text for v in violations)


# --- placement, exits, errors -----------------------------------------------------------------

def test_a_node_actor_is_placed_only_on_the_member_that_names_its_node():
    check = NodeActor.actorSystemCapabilityCheck
    assert check({"foxden-node": "m1"}, {"foxden-node": "m1"})
    assert not check({"foxden-node": "m2"}, {"foxden-node": "m1"})
    assert not check({"foxden-role": "leader"}, {"foxden-node": "m1"})
    assert not check({"foxden-node": "m1"}, {})  # never without the requirement (the leader's own system)


def test_node_lost_retries_the_job_and_has_its_code():
    assert ExitReason.NODE_LOST.retries_job and not ExitReason.NODE_LOST.is_normal
    assert ExitReason.NODE_LOST.node_lost and not ExitReason.CRASH.node_lost
    assert ErrorCode.NODE_LOST.value == "node_lost"


# --- [cluster] config -----------------------------------------------------------------------------

@pytest.fixture
def key(tmp_path) -> Path:
    path = tmp_path / "cluster.key"
    path.write_text("x" * 64)
    os.chmod(path, 0o600)
    return path


def cfg(tmp_path, **cluster):
    return config_from_overrides({"cluster": cluster}, base_dir=tmp_path)


def test_standalone_is_the_default(tmp_path):
    c = cfg(tmp_path).cluster
    assert c.role == "standalone" and c.heartbeat_s == 1.0 and c.dead_after_s == 5.0 and c.bind == "127.0.0.1"
    assert c.node  # the host name


@pytest.mark.parametrize("cluster, key, message", [
    ({"role": "leader"}, "cluster.key_file", "a leader needs the cluster's shared key"),
    ({"role": "member", "key_file": "k"}, "cluster.leader", "a member needs the leader's admin address"),
    ({"role": "member", "key_file": "k", "leader": "host"}, "cluster.leader", "a member needs"),
    ({"leader": "h:99999"}, "cluster.leader", "must be \"HOST:PORT\""),
    ({"node": "a/b"}, "cluster.node", "is not a node name"),
    ({"bind": "0.0.0.0.1"}, "cluster.bind", "must be an IPv4 address"),
    ({"heartbeat_s": 2.0, "dead_after_s": 3.0}, "cluster.dead_after_s", "at least 2 x heartbeat_s"),
    ({"role": "boss"}, "cluster.role", "must be one of"),
    ({"hearbeat_s": 1.0}, "cluster.hearbeat_s", "did you mean heartbeat_s"),
])
def test_bad_cluster_settings_name_the_key(tmp_path, cluster, key, message):
    with pytest.raises(ConfigError) as err:
        cfg(tmp_path, **cluster)
    assert err.value.key == key and message in err.value.message


def test_only_a_leader_may_run_no_browser(tmp_path):
    c = config_from_overrides({"cluster": {"role": "leader", "key_file": "k"}, "pool": {"size": 0}},
                              base_dir=tmp_path)
    assert c.pool.size == 0
    with pytest.raises(ConfigError) as err:
        config_from_overrides({"pool": {"size": 0}}, base_dir=tmp_path)
    assert err.value.key == "pool.size"


def test_a_member_config(tmp_path, key):
    c = cfg(tmp_path, role="member", key_file=str(key), leader="10.0.0.1:1900", node="n-2", bind="10.0.0.2")
    assert c.cluster.leader == "10.0.0.1:1900" and c.cluster.key_file == key and c.cluster.node == "n-2"


def test_a_cluster_key_readable_by_others_is_refused_at_start(tmp_path, key):
    from foxden.daemon import EXIT_CONFIG, StartupError, transport_key

    c = cfg(tmp_path, role="leader", key_file=str(key))
    assert len(transport_key(c)) >= 32
    os.chmod(key, 0o644)
    with pytest.raises(StartupError) as err:
        transport_key(c)
    assert err.value.exit_code == EXIT_CONFIG and str(err.value).startswith("[cluster] key_file")


def test_a_member_registers_again_only_without_a_welcomed_node_actor(tmp_path):
    from foxden.cluster import member

    alive = {10}.__contains__
    assert member.needs_registration(None, alive)  # no node actor was ever placed here
    assert member.needs_registration(("boot", 11, "up"), alive)  # it died
    assert member.needs_registration(("boot", 10, "joining"), alive)  # fenced: the leader may have restarted
    assert not member.needs_registration(("boot", 10, "up"), alive)
    assert not member.needs_registration(("boot", 10, "released"), alive)  # drained: stays out until restarted
    member.write_owner(tmp_path, "b00t", "up")
    assert member.read_owner(tmp_path) == ("b00t", os.getpid(), "up")
    assert os.stat(tmp_path / member.OWNER_FILE).st_mode & 0o077 == 0


def test_node_drain_needs_a_leaders_config(tmp_path, capsys):
    from foxden import cli

    path = tmp_path / "c.toml"
    path.write_text("[daemon]\nstate_dir = \"s\"\n")
    assert cli.main(["node", "drain", "-c", str(path), "m1"]) == cli.EXIT_USAGE
    assert "role is 'standalone'" in capsys.readouterr().err
