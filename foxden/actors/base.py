"""A base for foxden's actors: typed dispatch, and a per-actor policy for a handler that raises."""
from __future__ import annotations

import enum
import functools
import logging
import os

from thespian.actors import ActorSystemMessage, ActorTypeDispatcher

from foxden import logs

__all__ = ["FAULTS_ENV", "FoxdenActor", "InjectedFault", "OnFailure", "fault_point", "parse_faults"]

log = logging.getLogger("foxden.actor")

# Tests only: "point=key,point=key" makes fault_point(point, key) raise InjectedFault
# in every process that inherits it (daemons started by a test inherit its environment).
FAULTS_ENV = "FOXDEN_TEST_FAULTS"


def parse_faults(text: str) -> frozenset[tuple[str, str]]:
    """The (point, key) pairs of a FOXDEN_TEST_FAULTS value."""
    return frozenset(tuple(item.split("=", 1)) for item in text.split(",") if "=" in item)


_FAULTS = parse_faults(os.environ.get(FAULTS_ENV, ""))
# Exit status of an actor process that ends itself after a handler failed (EX_SOFTWARE).
CRASH_EXIT = 70


class InjectedFault(RuntimeError):
    """Raised by fault_point when a test asked for it: a real exception inside a real handler."""


def fault_point(point: str, key: object) -> None:
    """Raise InjectedFault if FOXDEN_TEST_FAULTS names (point, key); nothing otherwise (one set lookup)."""
    if _FAULTS and (point, str(key)) in _FAULTS:
        raise InjectedFault(f"fault injected at {point} for {key}")


class OnFailure(enum.Enum):
    """What an actor does when one of its handlers raises (Thespian would retry the message).

    A retry would run a side effect twice (an answer sent twice), so no
    policy retries; each says how the work the handler left half-done is
    finished instead."""

    DROP = "drop"      # log and drop: the actor holds nothing another actor waits for
    REPAIR = "repair"  # log, then self.repair(msg): restore the invariants the handler may have broken
    CRASH = "crash"    # log, then self.crash(detail): end the actor; its parent's cleanup path answers for it


# The message that sets an actor up; each actor accepts its own once.
INIT_MESSAGES = ("InitSupervisor", "InitDispatcher", "InitAdmin", "InitGateway", "StartBrowser", "InitCluster", "InitNode")


class FoxdenActor(ActorTypeDispatcher):
    """receiveMsg_<Type> dispatch; a handler that raises is logged once and handled by `on_failure`.

    REPAIR actors implement repair(msg); if repair raises too, the actor
    crashes (the last resort). The default crash() ends the process at once,
    like an Erlang process that lets it crash: its parent's ChildActorExited
    (for a browser, the supervisor's one cleanup path) or the daemon's watch
    over the control plane takes over."""

    role = "actor"
    on_failure = OnFailure.DROP
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
        except Exception as exc:
            log.exception("%s: handler for %s failed", self.role, type(msg).__name__)
            self._handler_failed(msg, exc)
            return None

    def _handler_failed(self, msg, exc: Exception) -> None:
        detail = f"handler for {type(msg).__name__} failed: {type(exc).__name__}: {exc}"
        if self.on_failure is OnFailure.REPAIR:
            try:
                self.repair(msg)
                return
            except Exception:
                log.exception("%s: repair after the failed %s handler failed too; crashing",
                              self.role, type(msg).__name__)
        if self.on_failure is not OnFailure.DROP:
            self.crash(detail)

    def repair(self, msg) -> None:
        """Finish what a failed handler of `msg` left half-done (REPAIR actors); idempotent."""
        raise NotImplementedError(f"{type(self).__name__} has on_failure = REPAIR but no repair()")

    def crash(self, detail: str) -> None:
        """End this actor now, without its exit handler: the one who watches it cleans up."""
        log.critical("%s: exiting after a failed handler (%s)", self.role, detail)
        # The log record travels to Thespian's logger asynchronously and may
        # not make it: say it on stderr (the daemon's log) as well.
        os.write(2, f"foxden {self.role} (pid {os.getpid()}): exiting after a failed handler ({detail})\n".encode())
        os._exit(CRASH_EXIT)

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
