"""The member's node actor: placed there by the leader, it runs the node's supervisor and speaks for it.

A thin shell: it joins as a new incarnation, starts its supervisor once
welcomed, forwards the supervisor's messages to the leader tagged with the
incarnation, heartbeats the supervisor's snapshot, and fences itself (its
supervisor stops every browser through its own cleanup path) when the leader
has been silent for dead_after_s; then it joins again as a new incarnation."""
from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time
import uuid

from thespian.actors import ActorExitRequest, ChildActorExited, WakeupMessage

from foxden import procs
from foxden.actors.base import FoxdenActor
from foxden.cluster import member, table
from foxden.protocols.messages import (
    Assign, FromNode, HeartbeatAck, InitNode, InitSupervisor, NodeFence, NodeHeartbeat, NodeJoin, NodeRelease,
    NodeWelcome, PoolStopped, StateQuery, StopPool, ToNode,
)

__all__ = ["NodeActor"]

log = logging.getLogger("foxden.cluster")

SUPERVISOR = "foxden.supervisor.actor.SupervisorActor"
TICK = "node-tick"
STOP_WAIT_S = 30.0  # a fence whose pool has not stopped by then is finished by marker (the supervisor is stuck)


class NodeActor(FoxdenActor):
    """One member's node: its supervisor, its incarnation, its liveness towards the leader."""

    role = "node"

    @staticmethod
    def actorSystemCapabilityCheck(capabilities: dict, requirements: dict) -> bool:
        """Placement: only on the member whose actor system names this node."""
        wanted = requirements.get("foxden-node")
        return wanted is not None and capabilities.get("foxden-node") == wanted

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.local = member.LOCAL
        self.leader = None
        self.name = ""
        self.heartbeat_s, self.dead_after_s = 1.0, 5.0
        self.counter = itertools.count(1)
        self.boot = uuid.uuid4().hex[:8]
        self.incarnation = ""
        self.welcomed = False
        self.last_heard: float | None = None
        self.sup = None  # the supervisor of the current incarnation
        self.old: list[tuple[object, float]] = []  # supervisors being stopped (fence, release), when asked
        self.leader_stop = False  # the leader asked our pool to stop (it is shutting down)
        self.released = False

    def receiveMsg_InitNode(self, msg: InitNode, sender) -> None:
        if self.local is None:
            log.error("node actor placed on a system that is not a foxden member; exiting")
            self.send(self.myAddress, ActorExitRequest())
            return
        self.leader, self.name = sender, msg.node
        self.heartbeat_s, self.dead_after_s = msg.heartbeat_s, msg.dead_after_s
        self._new_incarnation()
        self.wakeupAfter(self.heartbeat_s, payload=TICK)

    def _new_incarnation(self) -> None:
        self.incarnation = f"{self.name}-{self.boot}-{next(self.counter)}"
        self.welcomed, self.last_heard = False, None
        self._owner("joining")
        self.report: tuple[dict, tuple[str, ...]] = ({}, ())  # the supervisor's last snapshot, its violations
        log.info("node %s: joining the leader as incarnation %s", self.name, self.incarnation)
        self._join()

    def _join(self) -> None:
        cfg = self.local.config
        self.send(self.leader, NodeJoin(self.name, self.incarnation, f"{cfg.cluster.bind}:{cfg.daemon.admin_port}"))

    # --- the leader's word --------------------------------------------------------------

    def receiveMsg_NodeWelcome(self, msg: NodeWelcome, sender) -> None:
        if msg.incarnation != self.incarnation or self.welcomed:
            return
        self.welcomed, self.last_heard = True, time.monotonic()
        self._owner("up")
        self.sup = self.createActor(SUPERVISOR)
        short = self.incarnation.rsplit("-", 2)[-1]
        instance = f"{self.local.marker}i{self.boot}.{short}"  # under the daemon's marker: its sweep finds them
        self.send(self.sup, InitSupervisor(self.local.config, self.local.engine, instance, self.myAddress,
                                           self.local.daemon_pid, browser_prefix=f"i{short}."))
        log.info("node %s: welcomed; supervisor started for incarnation %s", self.name, self.incarnation)

    def receiveMsg_HeartbeatAck(self, msg: HeartbeatAck, sender) -> None:
        if msg.incarnation == self.incarnation:
            self.last_heard = time.monotonic()

    def receiveMsg_NodeFence(self, msg: NodeFence, sender) -> None:
        if msg.incarnation == self.incarnation and not self.released:
            self._fence(f"the leader wrote incarnation {msg.incarnation} off ({msg.reason})")

    def receiveMsg_ToNode(self, msg: ToNode, sender) -> None:
        if msg.incarnation != self.incarnation or self.sup is None:
            return  # for an incarnation we fenced: its jobs were settled by the leader
        self.last_heard = time.monotonic()
        inner = msg.message
        if isinstance(inner, Assign):
            inner = Assign(inner.browser, dataclasses.replace(inner.job, answer_to=self.myAddress), inner.budget_s)
        elif isinstance(inner, StopPool):
            self.leader_stop = True
        self.send(self.sup, inner)

    def receiveMsg_NodeRelease(self, msg: NodeRelease, sender) -> None:
        if msg.incarnation == self.incarnation:
            log.info("node %s: released by the leader; stopping its browsers and leaving", self.name)
            self.released = True
            self._owner("released")
            self._stop_supervisor()

    # --- from our supervisor and its browsers --------------------------------------------

    def receiveMsg_WorkRequest(self, msg, sender) -> None:
        if self.sup is not None and not self.released:
            self.send(self.leader, FromNode(self.name, self.incarnation, msg))

    receiveMsg_JobFinished = receiveMsg_BrowserGone = receiveMsg_AssignRefused = receiveMsg_WorkRequest
    receiveMsg_JobResult = receiveMsg_PoolFailed = receiveMsg_WorkRequest

    def receiveMsg_Initialized(self, msg, sender) -> None:
        pass  # our supervisor's, after its InitSupervisor

    def receiveMsg_PoolStopped(self, msg: PoolStopped, sender) -> None:
        if sender == self.sup and self.leader_stop:
            self.send(self.leader, FromNode(self.name, self.incarnation, msg))
        elif any(addr == sender for addr, _ in self.old):
            self._retire_supervisor(sender)

    def receiveMsg_StateQuery(self, msg: StateQuery, sender) -> None:
        if msg.supervisor is None or sender != self.sup or msg.tag != self.incarnation:
            return
        from foxden.actors.admin import _live_violations  # the admin's rule 1, judged here on this machine

        pids = set(procs.ProcessTable().children(msg.supervisor["pid"]))
        self.report = (msg.supervisor, tuple(v.text for v in _live_violations(msg.supervisor, pids)))

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender) -> None:
        self.old = [(a, t) for a, t in self.old if a != msg.childAddress]
        if msg.childAddress == self.sup:
            log.error("node %s: its supervisor exited; fencing and joining anew", self.name)
            self.sup = None
            self._fence("the supervisor exited")

    # --- liveness ------------------------------------------------------------------------

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender) -> None:
        if msg.payload != TICK:
            return
        try:
            self._tick(time.monotonic())
        finally:
            self.wakeupAfter(self.heartbeat_s, payload=TICK)

    def _tick(self, now: float) -> None:
        if not procs.pid_alive(self.local.daemon_pid):
            self._orphaned()
        if not self.released and self._superseded():
            log.warning("node %s: a newer node actor was placed on this member; this one (%s) stops its "
                        "browsers and leaves", self.name, self.incarnation)
            self.released = True
            self._stop_supervisor()
            if not self.old:
                self.send(self.myAddress, ActorExitRequest())
        for addr, asked in list(self.old):
            if now - asked > STOP_WAIT_S:
                log.error("node %s: a fenced supervisor did not stop in %.0fs; killing it", self.name, STOP_WAIT_S)
                self._retire_supervisor(addr)
        if self.released:
            return
        if not self.welcomed:
            self._join()  # until the leader is back and welcomes this incarnation
        elif table.fence_due(self.last_heard, now, self.dead_after_s):
            self._fence(f"no word from the leader for {now - self.last_heard:.1f}s")
        elif self.sup is not None:
            # The heartbeat goes now, with the last report: a supervisor busy
            # launching browsers must not make its node look dead.
            report, violations = self.report
            self.send(self.leader, NodeHeartbeat(self.name, self.incarnation, report, violations))
            self.send(self.sup, StateQuery(self.incarnation, self.myAddress))

    def _fence(self, why: str) -> None:
        """Stop this incarnation's browsers (the supervisor's own cleanup path) and join as a new one."""
        log.warning("node %s: fencing incarnation %s (%s): its browsers are stopped, its jobs are the "
                    "leader's to settle", self.name, self.incarnation, why)
        self._stop_supervisor()
        self._new_incarnation()

    def _stop_supervisor(self) -> None:
        if self.sup is not None:
            self.send(self.sup, StopPool())  # busy browsers are killed, idle ones asked to exit, all swept
            self.old.append((self.sup, time.monotonic()))
            self.sup = None

    def _retire_supervisor(self, addr) -> None:
        self.old = [(a, t) for a, t in self.old if a != addr]
        self.send(addr, ActorExitRequest())
        if self.released and not self.old:
            self.send(self.myAddress, ActorExitRequest())

    def _superseded(self) -> bool:
        """The newest node actor placed on this member wins (member.OWNER_FILE names it): the convention
        may announce one registration twice, and a restarted leader places a new one while the old
        leader's is still fenced. An older one leaves, its browsers stopped first."""
        owner = member.read_owner(self.local.config.daemon.state_dir)
        return owner is not None and owner[0] != self.boot

    def _owner(self, state: str) -> None:
        member.write_owner(self.local.config.daemon.state_dir, self.boot, state)

    def _orphaned(self) -> None:
        """The member's daemon is gone: end its whole instance (this process last)."""
        try:
            procs.end_instance(self.local.marker, self.local.config.daemon.state_dir)
        finally:
            os._exit(1)
