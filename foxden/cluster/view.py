"""The leader's supervisor snapshot for the whole cluster: its own pool's, plus every node's last report (pure)."""
from __future__ import annotations

from foxden.cluster.table import Node, NodeState, browser_name, cluster_live, status_row

__all__ = ["EMPTY_POOL", "merge_snapshot", "renamed_children"]

# The leader's own pool when it runs none ([pool] size = 0): the shape the admin reads.
EMPTY_POOL = {"pid": None, "live": 0, "target": 0, "min": 0, "max": 0, "held_back": None, "state": "ok",
              "error": None, "engine": None, "children": [], "kills": {}, "exits": {}, "restarts": 0, "gones": 0,
              "hang_to_dead_ms": [], "lingering": []}


def renamed_children(node: str, report: dict) -> list[dict]:
    """A node's children as the dispatcher knows them: cluster-wide ids, and `node`."""
    return [{**c, "id": browser_name(node, c["id"]), "node": node} for c in report.get("children", [])]


def _summed(reports: list[dict], key: str) -> dict:
    out: dict = {}
    for report in reports:
        for k, v in report.get(key, {}).items():
            out[k] = out.get(k, 0) + v
    return out


def merge_snapshot(local: dict | None, local_node: str, nodes: dict[str, Node], gones: int, now: float) -> dict:
    """The snapshot the admin judges and reports.

    `children`, `live` and `pid` stay the leader's own pool's (the admin
    checks them against this machine's process table); every other node's
    children go in `remote_children` (checked by that node itself, its
    violations in `nodes`), `cluster_live` is the sum over the nodes that are
    not lost, and `gones` counts the BrowserGone the cluster actor sent the
    dispatcher (it sends some itself, for a lost node's browsers)."""
    own = dict(local or EMPTY_POOL)
    remote = [n for n in nodes.values() if not n.local and n.state is not NodeState.LOST]
    reports = [own] + [n.report for n in remote]
    own.update(
        children=renamed_children(local_node, own),
        remote_children=[c for n in remote for c in renamed_children(n.name, n.report)],
        # offered to the dispatcher but not in the node's last report yet: not judged (admin rule 2)
        unreported=sorted(browser_name(n.name, b) for n in remote
                          for b in n.browsers - {c["id"] for c in n.report.get("children", [])}),
        cluster_live=cluster_live(nodes),
        nodes=[status_row(n, now) for n in sorted(nodes.values(), key=lambda n: (not n.local, n.name))],
        gones=gones,
        kills=_summed(reports, "kills"),
        exits=_summed(reports, "exits"),
        restarts=sum(int(r.get("restarts", 0)) for r in reports),
    )
    return own
