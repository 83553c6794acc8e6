"""A base for foxden's actors: typed dispatch that never lets a handler bounce a message."""
from __future__ import annotations

import functools
import logging

from thespian.actors import ActorSystemMessage, ActorTypeDispatcher

from foxden import logs
log = logging.getLogger("foxden.actor")

# The message that sets an actor up; each actor accepts its own once.
INIT_MESSAGES = ("InitSupervisor", "InitDispatcher", "InitAdmin", "InitGateway", "StartBrowser")


class FoxdenActor(ActorTypeDispatcher):
    """receiveMsg_<Type> dispatch, with failures logged instead of retried.

    Thespian retries a message whose handler raised, then returns it to the
    sender as PoisonMessage; for our messages a retry would run a side effect
    twice (an answer sent twice), so a failing handler is logged once and
    the message is dropped."""

    role = "actor"
    _logging_ready = False
    _init_from = None  # who sent the init message this actor accepted

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in INIT_MESSAGES:
            handler = cls.__dict__.get("receiveMsg_" + name)
            if handler is not None:
                setattr(cls, "receiveMsg_" + name, _init_once(handler))

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


def _init_once(handler):
    """An init handler that runs for the first init message only; a second is refused and logged.

    A second InitSupervisor could swap the config (the browser executable)
    of a running pool."""
    @functools.wraps(handler)
    def receive_init(self, msg, sender):
        if self._init_from is not None:
            from foxden.transport import Refusal
            from foxden.transport.refusals import refused

            refused(Refusal.SECOND_INIT, f"{self.role}: a second {type(msg).__name__} from {sender} "
                                         f"(the first came from {self._init_from})")
            return None
        self._init_from = str(sender)
        return handler(self, msg, sender)

    return receive_init
