"""The leader's node table and its pure decisions: states, heartbeats, loss, drain, fencing, routing names."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, StrEnum

__all__ = ["Admit", "Node", "NodeState", "SEP", "admit", "browser_name", "cluster_live", "fence_due",
           "lost_nodes", "node_of", "release_due", "status_row", "takes_work"]

SEP = "/"  # a browser's cluster-wide name is "<node>/<its id on that node>" (node names hold no "/")


class NodeState(StrEnum):
    """Where a node is in the leader's table (status reports the value)."""

    UP = "up"  # heartbeating; its browsers are offered jobs
    DRAINING = "draining"  # heartbeating; offered nothing new, released once its jobs are done
    LOST = "lost"  # no heartbeat for dead_after_s: its jobs were settled, nothing is sent to it any more


class Admit(Enum):
    """What the leader does with a message from a node, by its incarnation."""

    ACCEPT = "accept"  # the incarnation the table holds as up or draining
    JOIN = "join"  # a new incarnation: (re)joins as up; an older one of the same name is written off first
    STALE = "stale"  # an incarnation written off (lost, replaced, released): dropped, the node told to fence


@dataclass
class Node:
    """The leader's record of one node (mutable, private to the cluster actor)."""

    name: str
    address: str  # its Thespian admin, "host:port", for people
    incarnation: str
    state: NodeState = NodeState.UP
    last_seen: float = 0.0  # monotonic, the last message of this incarnation
    local: bool = False  # the leader's own browsers: never lost (it is this process tree)
    report: dict = field(default_factory=dict)  # its supervisor's last snapshot (heartbeat)
    jobs: dict[str, str] = field(default_factory=dict)  # job key -> browser id on the node, in flight
    browsers: set[str] = field(default_factory=set)  # its browsers the dispatcher was offered and not told gone
    violations: tuple[str, ...] = ()  # its own invariant check, as it reported it
    lost_after_s: float | None = None  # how long it had been silent when it was declared lost


def admit(nodes: dict[str, Node], written_off: set[str], name: str, incarnation: str, join: bool) -> Admit:
    """How to treat a message of `incarnation` from node `name`.

    Only a join (the node's Join or heartbeat) may create an entry; any
    other message of an incarnation the table does not hold is stale: a
    result of a node already written off must never answer a job twice."""
    node = nodes.get(name)
    if incarnation in written_off:
        return Admit.STALE
    if node is not None and node.incarnation == incarnation and node.state is not NodeState.LOST:
        return Admit.ACCEPT
    return Admit.JOIN if join else Admit.STALE


def lost_nodes(nodes: dict[str, Node], now: float, dead_after_s: float) -> list[str]:
    """Nodes (up or draining, not the leader's own) unheard for dead_after_s: to be declared lost now."""
    return [n.name for n in nodes.values()
            if not n.local and n.state is not NodeState.LOST and now - n.last_seen > dead_after_s]


def fence_due(last_heard: float | None, now: float, dead_after_s: float) -> bool:
    """A member fences itself (kills its browsers) once the leader has been silent for dead_after_s."""
    return last_heard is not None and now - last_heard > dead_after_s


def release_due(node: Node) -> bool:
    """A draining node is released once no job of it is in flight."""
    return node.state is NodeState.DRAINING and not node.jobs


def takes_work(node: Node | None) -> bool:
    """Whether a browser of this node may be offered a job (placement: up nodes only)."""
    return node is not None and node.state is NodeState.UP


def browser_name(node: str, browser: str) -> str:
    """The cluster-wide name of browser `browser` of `node`."""
    return f"{node}{SEP}{browser}"


def node_of(name: str) -> tuple[str, str]:
    """(node, browser id on it) from a cluster-wide browser name; ("", name) for one without a node."""
    node, sep, browser = name.partition(SEP)
    return (node, browser) if sep else ("", name)


def cluster_live(nodes: dict[str, Node]) -> int:
    """browsers.live of the cluster: the sum of what each node that is not lost reports (never a counter)."""
    return sum(int(n.report.get("live", 0)) for n in nodes.values() if n.state is not NodeState.LOST)


def status_row(node: Node, now: float) -> dict:
    """Its entry in status `nodes` (plain data)."""
    by_state: dict[str, int] = {}
    if node.state is not NodeState.LOST:
        for child in node.report.get("children", []):
            by_state[child["state"]] = by_state.get(child["state"], 0) + 1
    return {
        "name": node.name,
        "address": node.address,
        "state": node.state.value,
        "incarnation": node.incarnation,
        "browsers": {"live": 0 if node.state is NodeState.LOST else int(node.report.get("live", 0)),
                     "by_state": by_state},
        "last_seen_s": round(max(0.0, now - node.last_seen), 3),
        "jobs_in_flight": len(node.jobs),
        "local": node.local,
        "lost_after_s": node.lost_after_s,
        "violations": list(node.violations),
    }
