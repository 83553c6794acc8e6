"""A base for foxden's actors: typed dispatch that never lets a handler bounce a message."""
from __future__ import annotations

import logging

from thespian.actors import ActorSystemMessage, ActorTypeDispatcher

from foxden import logs
log = logging.getLogger("foxden.actor")


class FoxdenActor(ActorTypeDispatcher):
    """receiveMsg_<Type> dispatch, with failures logged instead of retried.

    Thespian retries a message whose handler raised, then returns it to the
    sender as PoisonMessage; for our messages a retry would run a side effect
    twice (an answer sent twice), so a failing handler is logged once and
    the message is dropped."""

    role = "actor"
    _logging_ready = False

    def receiveMessage(self, msg, sender):
        if not self._logging_ready:
            logs.install_context(self.role)
            self._logging_ready = True
        try:
            return super().receiveMessage(msg, sender)
        except Exception:
            log.exception("%s: handler for %s failed", self.role, type(msg).__name__)
            return None

    def receiveUnrecognizedMessage(self, msg, sender) -> None:
        if isinstance(msg, ActorSystemMessage):
            return  # wakeups, exit requests etc. that this actor has no use for
        log.warning("%s: ignoring unknown message %s from %s", self.role, type(msg).__name__, sender)
