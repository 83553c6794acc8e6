"""The second wall: unpickling that names only exact (module, name) pairs of already-imported modules."""
from __future__ import annotations

import dataclasses
import enum
import io
import os
import pickle
import sys
from collections.abc import Iterable

__all__ = ["MESSAGE_MODULES", "RefusedPickle", "allowed_pairs", "loads"]

# Modules whose public dataclasses and enums are foxden's messages (and what
# they carry: configs, the engine choice, client requests and answers). Every
# class *defined* there is allowed by its exact name, so a message added later
# needs no list update -- and nothing those modules merely import is reachable.
MESSAGE_MODULES = ("foxden.protocols.messages", "foxden.protocols.wire", "foxden.protocols.options", "foxden.config",
                   "foxden.engines")

# The rest, from recording every class unpickled while the daemon's tests ran
# (FOXDEN_PICKLE_RECORD=path): Thespian's addresses and the system messages it
# exchanges between our own processes, plus what a log record and a config
# contain. Thespian's source-loading messages (ValidateSource,
# RegisterSourceAuthority, ...) are not here: foxden never loads sources.
THESPIAN_AND_STDLIB = frozenset({
    ("thespian.actors", "ActorAddress"),
    ("thespian.actors", "ActorExitRequest"),
    ("thespian.actors", "ChildActorExited"),
    ("thespian.actors", "DeadEnvelope"),  # a message to an actor that is gone, reported to the admin
    ("thespian.system.transport.IPBase", "TCPv4ActorAddress"),
    ("thespian.system.messages.multiproc", "EndpointConnected"),
    ("thespian.system.messages.multiproc", "LoggerConnected"),
    ("thespian.system.messages.admin", "PendingActor"),
    ("thespian.system.messages.admin", "PendingActorResponse"),
    ("thespian.system.messages.admin", "QueryExists"),
    ("thespian.system.messages.admin", "QueryAck"),
    ("thespian.system.messages.admin", "SystemShutdown"),
    ("thespian.system.messages.admin", "SystemShutdownCompleted"),
    ("thespian.system.logdirector", "LoggerExitRequest"),
    # A cluster (docs/cluster.md): the convention between the nodes' admins.
    ("thespian.actors", "ActorSystemConventionUpdate"),
    ("thespian.system.messages.convention", "ConventionRegister"),
    ("thespian.system.messages.convention", "ConventionDeRegister"),
    ("thespian.system.messages.convention", "ConventionInvite"),
    ("thespian.system.messages.convention", "NotifyOnSystemRegistration"),
    ("thespian.system.logdirector", "LogAggregator"),  # a member's logger forwards to the leader's
    ("thespian.system.messages.admin", "CapabilityUpdate"),  # a member's daemon re-registering (docs/cluster.md)
    ("thespian.system.messages.admin", "NewCapabilities"),  # ... which the admin tells its actors
    ("socket", "AddressFamily"),
    ("socket", "SocketKind"),
    ("pathlib", "PosixPath"),
    ("logging", "LogRecord"),
})


class RefusedPickle(pickle.UnpicklingError):
    """A pickle named something outside the allow-list; nothing of it was run or imported."""


def _defined_classes(module_name: str) -> Iterable[tuple[str, str]]:
    module = sys.modules.get(module_name)
    if module is None:
        return
    for name, obj in vars(module).items():
        if (isinstance(obj, type) and obj.__module__ == module_name and obj.__qualname__ == name
                and not name.startswith("_") and (dataclasses.is_dataclass(obj) or issubclass(obj, enum.Enum))):
            yield module_name, name


def allowed_pairs() -> frozenset[tuple[str, str]]:
    """The exact pairs: the message modules' classes (imported here, at start) and the recorded rest."""
    import importlib

    for name in MESSAGE_MODULES:
        importlib.import_module(name)  # our own decision at start, never a frame's
    return THESPIAN_AND_STDLIB | frozenset(p for m in MESSAGE_MODULES for p in _defined_classes(m))


class _Unpickler(pickle.Unpickler):
    allowed: frozenset[tuple[str, str]] = frozenset()
    record = ""  # FOXDEN_PICKLE_RECORD: also append every pair asked for to this file

    def find_class(self, module: str, name: str):
        if self.record:
            # Recording builds the list (run the tests, read the file); it
            # refuses exactly what production refuses, so it is never a way in.
            with open(self.record, "a") as f:
                f.write(f"{module}\t{name}\n")
        # An exact pair, or nothing: a dotted name ("inspect.attrgetter")
        # would walk attributes from an allowed module to anything it imports.
        if (module, name) not in self.allowed:
            raise RefusedPickle(f"refused to unpickle {module}.{name}: not an exact pair of the allow-list "
                                f"(foxden/transport/unpickle.py)")
        # Never import on a frame's behalf: importing runs module code.
        mod = sys.modules.get(module)
        obj = vars(mod).get(name) if mod is not None else None
        if not isinstance(obj, type):
            raise RefusedPickle(f"refused to unpickle {module}.{name}: module not imported in this process")
        return obj


_allowed: frozenset[tuple[str, str]] | None = None


def loads(data: bytes, allowed: frozenset[tuple[str, str]] | None = None):
    """pickle.loads restricted to `allowed` (default: allowed_pairs(), computed once)."""
    global _allowed
    if allowed is None:
        if _allowed is None:
            _allowed = allowed_pairs()
        allowed = _allowed
    u = _Unpickler(io.BytesIO(data))
    u.allowed = allowed
    u.record = os.environ.get("FOXDEN_PICKLE_RECORD", "")
    return u.load()
