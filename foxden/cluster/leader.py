"""The leader's cluster actor: places a node actor on each member, routes jobs by node, notices lost nodes.

It stands where the supervisor stood for the dispatcher (and where the
dispatcher stood for the leader's own supervisor): every browser is known to
the dispatcher as "<node>/<id>", and every message between the dispatcher
and a pool passes here. The decisions are foxden.cluster.table's."""
from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time

from thespian.actors import ActorExitRequest, ActorSystemConventionUpdate, WakeupMessage

from foxden.actors.base import FoxdenActor
from foxden.cluster import table
from foxden.cluster.table import Admit, Node, NodeState
from foxden.cluster.view import merge_snapshot
from foxden.protocols.exits import ExitReason
from foxden.protocols.messages import (
    Assign, AssignRefused, BrowserGone, Demand, DrainNode, DrainNodeReply, FromNode, HeartbeatAck, Initialized,
    InitCluster, InitNode, JobFinished, JobResult, LinkTo, NodeFence, NodeHeartbeat, NodeJoin, NodeRelease, NodeWelcome,
    PoolFailed, PoolStopped, StateQuery, StopPool, ToNode, WorkRequest,
)

__all__ = ["ClusterActor", "GLOBAL_NAME", "NODE_ACTOR", "NODE_CAPABILITY"]

log = logging.getLogger("foxden.cluster")

GLOBAL_NAME = "foxden-cluster"  # `foxden node drain` finds the cluster actor by it
NODE_ACTOR = "foxden.cluster.node.NodeActor"
LINK_ACTOR = "foxden.cluster.link.NodeLink"
NODE_CAPABILITY = "foxden-node"  # a member's actor system names its node with this capability
TICK = "cluster-tick"


class ClusterActor(FoxdenActor):
    """The leader's view of the cluster: the node table (table.Node), derived, never counted."""

    role = "cluster"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config = self.dispatcher = self.local = None
        self.local_name = ""
        self.nodes: dict[str, Node] = {}
        self.addrs: dict[str, object] = {}  # node -> its node actor (never used once the node is lost)
        self.placed: dict[str, object] = {}  # node -> the node actor we created on it
        self.written_off: set[str] = set()  # incarnations lost, replaced or released
        self.gones = 0
        self.queries = itertools.count(1)
        self.pending: dict[int, StateQuery] = {}
        self.stopping = False
        self.stop_reply = None
        self.stop_waiting: set[str] = set()

    # --- wiring ----------------------------------------------------------------------

    def receiveMsg_InitCluster(self, msg: InitCluster, sender) -> None:
        self.config, self.dispatcher, self.local = msg.config, msg.dispatcher, msg.supervisor
        self.local_name = msg.config.cluster.node
        self.nodes[self.local_name] = Node(self.local_name, msg.address, f"{self.local_name}-leader-{os.getpid()}",
                                           last_seen=time.monotonic(), local=True)
        self.notifyOnSystemRegistrationChanges(True)  # each member's actor system, as it registers
        self.wakeupAfter(self.config.cluster.heartbeat_s / 2, payload=TICK)
        self.send(sender, Initialized("cluster", os.getpid()))

    def receiveMsg_ActorSystemConventionUpdate(self, msg: ActorSystemConventionUpdate, sender) -> None:
        name = (msg.remoteCapabilities or {}).get(NODE_CAPABILITY)
        if not msg.remoteAdded or not isinstance(name, str):
            return  # a removal is not trusted for a node's death (heartbeats are); nor is a system without a node
        if name == self.local_name:
            log.error("a member registered with the leader's own node name %r; ignored (give it another "
                      "[cluster] node)", name)
            return
        log.info("member %s registered from %s: placing its node actor", name, msg.remoteAdminAddress)
        addr = self.createActor(NODE_ACTOR, targetActorRequirements={NODE_CAPABILITY: name})
        self.placed[name] = addr
        c = self.config.cluster
        self.send(addr, InitNode(name, c.heartbeat_s, c.dead_after_s))

    # --- from the nodes ----------------------------------------------------------------

    def receiveMsg_NodeJoin(self, msg: NodeJoin, sender) -> None:
        verdict = table.admit(self.nodes, self.written_off, msg.node, msg.incarnation, join=True)
        if verdict is Admit.STALE:
            self._reply(msg.node, msg.incarnation, sender, NodeFence(msg.incarnation, "written off"))
            return
        if verdict is Admit.JOIN:
            old = self.nodes.get(msg.node)
            if old is not None and old.local:
                log.error("node %s: a member may not join under the leader's name", msg.node)
                self.send(sender, NodeFence(msg.incarnation, "the leader's own name"))
                return
            if old is not None and old.state is not NodeState.LOST:
                self._lose(old, "it joined again as a new incarnation")
            if old is not None:
                self.written_off.add(old.incarnation)
            self.nodes[msg.node] = Node(msg.node, msg.address, msg.incarnation, last_seen=time.monotonic())
            self.addrs[msg.node] = self._link(sender)
            log.info("node %s up (incarnation %s, %s)", msg.node, msg.incarnation, msg.address)
        self._reply(msg.node, msg.incarnation, sender, NodeWelcome(msg.incarnation))

    def receiveMsg_NodeHeartbeat(self, msg: NodeHeartbeat, sender) -> None:
        node = self._accepted(msg.node, msg.incarnation, sender)
        if node is not None:
            node.report, node.violations = msg.report, tuple(msg.violations)
            self._reply(msg.node, msg.incarnation, sender, HeartbeatAck(msg.incarnation))

    def receiveMsg_FromNode(self, msg: FromNode, sender) -> None:
        node = self._accepted(msg.node, msg.incarnation, sender)
        if node is not None:
            self._from_pool(node, msg.message)

    def _link(self, node_actor):
        """A new link (foxden.cluster.link) to a node actor: our sends to it go through that process only."""
        link = self.createActor(LINK_ACTOR)
        self.send(link, LinkTo(node_actor))
        return link

    def _reply(self, name: str, incarnation: str, sender, msg) -> None:
        """Answer a node's message: through its link while that incarnation is up, else through a
        short-lived one (a stale node gets its NodeFence without the cluster actor sending to it)."""
        node = self.nodes.get(name)
        if node is not None and node.incarnation == incarnation and name in self.addrs:
            self.send(self.addrs[name], msg)
            return
        link = self._link(sender)
        self.send(link, msg)
        self.send(link, ActorExitRequest())

    def _accepted(self, name: str, incarnation: str, sender) -> Node | None:
        """The node's entry if `incarnation` is the one up (its last_seen renewed); else fence the sender."""
        if table.admit(self.nodes, self.written_off, name, incarnation, join=False) is not Admit.ACCEPT:
            log.info("node %s: dropped a message of incarnation %s, which is not up", name, incarnation)
            self._reply(name, incarnation, sender, NodeFence(incarnation, "not up"))
            return None
        node = self.nodes[name]
        node.last_seen = time.monotonic()
        return node

    # The leader's own supervisor (and its browsers' JobResults) speak to us
    # as they would to the dispatcher.
    def receiveMsg_WorkRequest(self, msg, sender) -> None:
        self._from_pool(self.nodes[self.local_name], msg)

    receiveMsg_JobFinished = receiveMsg_BrowserGone = receiveMsg_AssignRefused = receiveMsg_WorkRequest
    receiveMsg_JobResult = receiveMsg_PoolFailed = receiveMsg_PoolStopped = receiveMsg_WorkRequest

    def _from_pool(self, node: Node, msg) -> None:
        """A pool's message for the dispatcher, with the browser's cluster-wide name."""
        if isinstance(msg, PoolStopped):
            self._pool_stopped(node.name)
            return
        if isinstance(msg, PoolFailed):
            log.error("node %s: its supervisor gave up (%s); the other nodes go on", node.name, msg.error)
            return
        name = table.browser_name(node.name, msg.browser)
        if isinstance(msg, WorkRequest):
            if not table.takes_work(node) or self.stopping:
                return  # a draining node's browser is not offered
            node.browsers.add(msg.browser)
            self.send(self.dispatcher, dataclasses.replace(msg, browser=name))
            return
        if isinstance(msg, JobResult):
            self.send(self.dispatcher, dataclasses.replace(msg, browser=name))
            return
        if isinstance(msg, BrowserGone):
            node.browsers.discard(msg.browser)
            self.gones += 1
        if isinstance(msg, (JobFinished, AssignRefused, BrowserGone)) and msg.job_key is not None:
            node.jobs.pop(msg.job_key, None)
        if isinstance(msg, AssignRefused) and msg.gone:
            node.browsers.discard(msg.browser)
        if isinstance(msg, JobFinished) and not table.takes_work(node):
            msg = dataclasses.replace(msg, available=False)  # kept in node.browsers: its release says it is gone
        self.send(self.dispatcher, dataclasses.replace(msg, browser=name))
        self._maybe_release(node)

    # --- from the dispatcher ---------------------------------------------------------------

    def receiveMsg_Assign(self, msg: Assign, sender) -> None:
        name, browser = table.node_of(msg.browser)
        node = self.nodes.get(name)
        if node is None or node.state is not NodeState.UP or browser not in node.browsers:
            # A lost or draining node, or a browser it no longer has: nothing is sent there.
            if node is not None:
                node.browsers.discard(browser)
            self.send(self.dispatcher, AssignRefused(msg.browser, msg.job.key, gone=True))
            return
        node.jobs[msg.job.key] = browser
        job = dataclasses.replace(msg.job, answer_to=self.myAddress if node.local else None)
        self._to_node(node, Assign(browser, job, msg.budget_s))

    def receiveMsg_Demand(self, msg: Demand, sender) -> None:
        for node in self.nodes.values():
            if node.state is NodeState.UP:
                self._to_node(node, msg)

    def receiveMsg_StopPool(self, msg: StopPool, sender) -> None:
        self.stopping, self.stop_reply = True, sender
        self.stop_waiting = {n.name for n in self.nodes.values() if n.state is not NodeState.LOST
                             and (not n.local or self.local is not None)}
        for name in list(self.stop_waiting):
            self._to_node(self.nodes[name], StopPool())
        self._pool_stopped(None)

    def _pool_stopped(self, name: str | None) -> None:
        self.stop_waiting.discard(name)
        if self.stopping and not self.stop_waiting and self.stop_reply is not None:
            self.send(self.stop_reply, PoolStopped())
            self.stop_reply = None

    def _to_node(self, node: Node, msg) -> None:
        if node.local:
            if self.local is not None:
                self.send(self.local, msg)
        elif node.state is not NodeState.LOST and node.name in self.addrs:
            self.send(self.addrs[node.name], ToNode(node.incarnation, msg))

    # --- status ------------------------------------------------------------------------------

    def receiveMsg_StateQuery(self, msg: StateQuery, sender) -> None:
        if msg.supervisor is None:  # the dispatcher's, on its way to the admin
            if self.local is None:
                self._answer_state(msg, None)
            else:
                qid = next(self.queries)
                self.pending[qid] = msg
                self.send(self.local, StateQuery(qid, self.myAddress))
        else:  # our own supervisor's answer
            asked = self.pending.pop(msg.tag, None)
            if asked is not None:
                self._answer_state(asked, msg.supervisor)

    def _answer_state(self, asked: StateQuery, local: dict | None) -> None:
        own = self.nodes[self.local_name]
        own.report, own.last_seen = local or {}, time.monotonic()  # it is this process tree: heard now
        merged = merge_snapshot(local, self.local_name, self.nodes, self.gones, time.monotonic())
        self.send(self.dispatcher, StateQuery(asked.tag, asked.reply_to, asked.dispatcher_before, merged))

    # --- liveness and drain ----------------------------------------------------------------------

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender) -> None:
        if msg.payload != TICK:
            return
        try:
            now = time.monotonic()
            for name in table.lost_nodes(self.nodes, now, self.config.cluster.dead_after_s):
                node = self.nodes[name]
                self._lose(node, f"no heartbeat for {now - node.last_seen:.1f}s")
        finally:
            self.wakeupAfter(self.config.cluster.heartbeat_s / 2, payload=TICK)

    def _lose(self, node: Node, why: str) -> None:
        """Write a node off: its jobs are settled (retried elsewhere or answered node_lost), nothing goes to it."""
        log.warning("node %s lost (%s): settling %d jobs in flight, forgetting %d browsers", node.name, why,
                    len(node.jobs), len(node.browsers))
        node.state = NodeState.LOST
        node.lost_after_s = round(time.monotonic() - node.last_seen, 3)
        self.written_off.add(node.incarnation)
        self._unlink(node.name)
        running = {browser: key for key, browser in node.jobs.items()}
        for browser in sorted(set(node.browsers) | set(running)):
            self.gones += 1
            self.send(self.dispatcher, BrowserGone(table.browser_name(node.name, browser), running.get(browser),
                                                   ExitReason.NODE_LOST.value, f"node {node.name}: {why}"))
        node.jobs.clear()
        node.browsers.clear()
        node.report = {}
        self._pool_stopped(node.name)

    def _unlink(self, name: str) -> None:
        """End a node's link: what it still holds for the node (a cut one's sends in flight) ends with it."""
        link = self.addrs.pop(name, None)
        if link is not None:
            self.send(link, ActorExitRequest())

    def receiveMsg_DrainNode(self, msg: DrainNode, sender) -> None:
        node = self.nodes.get(msg.node)
        if node is None or node.state is NodeState.LOST:
            state = node.state.value if node else "unknown"
            self.send(sender, DrainNodeReply(msg.node, state, error=f"node {msg.node!r} is {state}: "
                                             f"known nodes are {sorted(self.nodes)}"))
            return
        if node.local:
            self.send(sender, DrainNodeReply(msg.node, node.state.value,
                                             error="the leader's own node cannot be drained (stop the leader)"))
            return
        if node.state is NodeState.UP:
            log.info("node %s draining: %d jobs in flight", node.name, len(node.jobs))
            node.state = NodeState.DRAINING
        self.send(sender, DrainNodeReply(msg.node, node.state.value, len(node.jobs)))
        self._maybe_release(node)

    def _maybe_release(self, node: Node) -> None:
        if not table.release_due(node):
            return
        log.info("node %s drained: releasing it (its browsers stop; it leaves the table)", node.name)
        if node.name in self.addrs:
            self.send(self.addrs[node.name], NodeRelease(node.incarnation))
        for browser in sorted(node.browsers):
            self.gones += 1
            self.send(self.dispatcher, BrowserGone(table.browser_name(node.name, browser), None,
                                                   ExitReason.SHUTDOWN.value, f"node {node.name} released"))
        self.written_off.add(node.incarnation)
        self._unlink(node.name)
        del self.nodes[node.name]
