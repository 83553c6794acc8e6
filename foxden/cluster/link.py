"""The leader's link to one node: every send to that node goes through it, so none queues the cluster actor's.

Thespian holds an actor's further sends once 20 are in flight
(THESPIAN_MAX_PENDING_TRANSMITS) and keeps a send to an unreachable host in
flight until its 5-minute transmit timeout: a cut node would stall the
cluster actor's sends to the dispatcher behind its own. Here only this
process's sends wait; when the node is written off, the cluster actor ends
this actor (a local send) and whatever it held dies with it."""
from __future__ import annotations

from foxden.actors.base import FoxdenActor
from foxden.protocols.messages import LinkTo

__all__ = ["NodeLink"]


class NodeLink(FoxdenActor):
    """Forwards everything it is sent to its node's actor (set once, by LinkTo)."""

    role = "link"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.node = None

    def receiveMsg_LinkTo(self, msg: LinkTo, sender) -> None:
        if self.node is None:
            self.node = msg.node

    def receiveUnrecognizedMessage(self, msg, sender) -> None:
        if self.node is not None and not _is_system(msg):
            self.send(self.node, msg)


def _is_system(msg) -> bool:
    from thespian.actors import ActorSystemMessage

    return isinstance(msg, ActorSystemMessage)
