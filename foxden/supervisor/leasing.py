"""The supervisor's leased browsers: granting, ending and cleaning up after them (a mixin of SupervisorActor).

A leased child is a Child in `self.leased`, never in `self.children`: the
job pool, its live count, its target and its restart policy never see it.
It is watched by the same watchdog (ttl, idle, crash, heartbeat) and ends
through the same cleanup path (ChildActorExited -> _child_exited -> here),
with no restart, no retry and nothing charged to the restart intensity."""
from __future__ import annotations

import logging
import os
import time

from foxden import leases, logs, procs
from foxden.protocols.errors import ErrorCode
from foxden.protocols.exits import ExitReason
from foxden.protocols.messages import (
    EndLeaseRequest,
    LeaseAnswer,
    LeaseEndAnswer,
    LeaseReady,
    LeaseRequest,
    LeaseSpec,
    StartBrowser,
)
from foxden.protocols.wire import ErrorInfo
from foxden.supervisor import pool
from foxden.supervisor.children import Child, ChildState, LeaseRecord

__all__ = ["Leasing", "lease_host"]

log = logging.getLogger("foxden.supervisor")


def lease_host(config) -> str:
    """Where lease endpoints listen: `[http] host` (loopback by default; any other address needs [daemon] token)."""
    return config.http.host


class Leasing:
    """Lease handlers of the supervisor (state: `leased`, `generation`, `config`, ... on the actor)."""

    def receiveMsg_LeaseRequest(self, msg: LeaseRequest, sender) -> None:
        try:
            child = self._grant(msg)
        except leases.LeaseRefused as refused:
            self.send(sender, LeaseAnswer(msg.tag, error=ErrorInfo(refused.code.value, refused.message)))
            return
        child.lease.reply_to, child.lease.tag = sender, msg.tag

    def _grant(self, msg: LeaseRequest) -> Child:
        """Start a leased browser for `msg`, or raise LeaseRefused."""
        if self.stopping:
            raise leases.LeaseRefused(ErrorCode.LEASE_FAILED, "the daemon is stopping")
        terms = leases.decide_terms(self.config.leases, msg.ttl_s, msg.idle_s)
        everyone = [*self.children.values(), *self.leased.values()]
        held = pool.memory_hold([c.pss for c in everyone if c.pss], pool.starting(everyone),
                                procs.available_memory(), self.config.pool.memory_headroom_mb)
        live = sum(1 for c in self.leased.values() if c.state is not ChildState.STOPPING)
        leases.admit(live, self.config.leases.max, held)
        choice = self._lease_engine(msg.engine)
        self.generation += 1
        bid = f"b{self.generation}"
        child = Child(id=bid, addr=self.createActor("foxden.actors.browser.BrowserActor"),
                      marker=f"{self.instance}/{bid}/", tmpdir=os.path.join(self.tmp_root, bid),
                      created=time.monotonic(), started_at=time.time(), engine=choice.name,
                      lease=LeaseRecord(leases.new_id(), leases.new_secret(), terms.ttl_s, terms.idle_s))
        self.leased[bid] = child
        spec = LeaseSpec(child.lease.id, child.lease.secret, lease_host(self.config))
        self.send(child.addr, StartBrowser(bid, self.config, choice, child.marker, child.tmpdir, spec))
        with logs.context(browser=bid):
            log.info("lease %s: starting browser %s (%s, ttl %gs, idle %gs)", child.lease.id, bid, choice.name,
                     terms.ttl_s, terms.idle_s)
        return child

    def _lease_engine(self, name: str | None):
        """The pool's engine choice, or another engine's (found on this box) for a lease that asks for it."""
        if name is None or name == self.engine.name:
            return self.engine
        from foxden import engines

        try:
            return engines.resolve_engine(name, None)
        except (engines.EngineUnavailable, ValueError) as exc:
            raise leases.LeaseRefused(ErrorCode.LEASE_FAILED, f"engine: {exc}") from None

    def receiveMsg_LeaseReady(self, msg: LeaseReady, sender) -> None:
        child = self.leased.get(msg.browser)
        if child is None or child.state is not ChildState.STARTING:
            return
        if child.pid != msg.pid:
            child.pid_created = procs.create_time(msg.pid)
        child.pid, child.browser_pids = msg.pid, msg.browser_pids
        child.main_created = procs.create_time(msg.browser_pids[0]) if msg.browser_pids else None
        child.engine, child.version = msg.engine, msg.version
        child.move(ChildState.LEASED)
        now, lease = time.monotonic(), child.lease
        child.last_pong = lease.idle_seen = now
        lease.expires, lease.expires_at = now + lease.ttl_s, time.time() + lease.ttl_s
        endpoint = leases.endpoint_url(lease_host(self.config), msg.port, lease.secret)
        lease.secret = ""  # it lives on in the endpoint the client gets, and nowhere here
        with logs.context(browser=child.id):
            log.info("lease %s: browser %s ready (%s) pid=%s browser_pids=%s", lease.id, child.id, msg.version,
                     msg.pid, list(msg.browser_pids))
        info = {"lease": lease.id, "engine": msg.engine, "endpoint": endpoint, "expires_at": lease.expires_at,
                "playwright_version": msg.playwright_version}
        if lease.reply_to is not None:
            self.send(lease.reply_to, LeaseAnswer(lease.tag, info=info))
            lease.reply_to = None
        if self.stopping:
            self._request_stop(child, ExitReason.SHUTDOWN)

    def receiveMsg_EndLeaseRequest(self, msg: EndLeaseRequest, sender) -> None:
        child = next((c for c in self.leased.values() if c.lease.id == msg.lease), None)
        if child is None:
            self.send(sender, LeaseEndAnswer(msg.tag, msg.lease, existed=False))
            return
        child.lease.end_waiters.append((sender, msg.tag))  # answered by _lease_exited, once it is gone
        self._kill(child, ExitReason.LEASE_ENDED, f"lease {msg.lease}: ended by its holder")

    def _lease_exited(self, child: Child) -> None:
        """The one cleanup path's part for a leased child: sweep, answer its waiters; no restart, no retry."""
        # First: should the sweep fail, the child is still in `leased`, and
        # _missed_exits runs this again on a later tick (its actor is dead).
        self._sweep(child)
        del self.leased[child.id]
        reason, lease = child.exit_reason or ExitReason.CRASH, child.lease
        self.exits[reason.value] += 1
        with logs.context(browser=child.id):
            log.info("lease %s: browser %s exited (%s)", lease.id, child.id, reason.value)
        if lease.reply_to is not None:  # it never became ready
            detail = child.exit_detail or reason.value
            self.send(lease.reply_to, LeaseAnswer(lease.tag, error=ErrorInfo(
                ErrorCode.LEASE_FAILED.value, f"the leased browser did not start: {detail}")))
            lease.reply_to = None
        for gateway, tag in lease.end_waiters:
            self.send(gateway, LeaseEndAnswer(tag, lease.id, existed=True))
        lease.end_waiters.clear()
        if self.stopping:
            self._maybe_stopped()
        else:
            self._fill()  # memory it held may let a held-back pool browser start
