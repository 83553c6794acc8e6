"""Harden Thespian's TCP transport: an allow-list unpickler, and loopback-only sockets."""
from __future__ import annotations

import io
import os
import pickle
import types

# Thespian's TCP transport unpickles whatever reaches any of its ports, and a
# pickle can name any importable callable (os.system, subprocess.Popen, ...).
# Only the classes our actors really exchange may be named. The list was
# taken from recording every class unpickled during the whole test suite and
# the demo (FOXDEN_PICKLE_RECORD=path), then reviewed: no functions, no
# classes whose constructor has side effects.
ALLOWED_MODULE_PREFIXES = (
    "foxden.protocols.messages",
    "foxden.protocols.wire",
    "foxden.config",
    "foxden.engines",
    "thespian.actors",
    "thespian.system.messages.",
    "thespian.system.transport.IPBase",
    "thespian.system.logdirector",
)
ALLOWED_NAMES = frozenset({
    ("builtins", name) for name in (
        "set", "frozenset", "tuple", "list", "dict", "bytearray", "bytes", "complex", "range", "slice",
        "str", "int", "float", "bool", "object",
        # exceptions travel inside Thespian's PoisonMessage and our ConfigError
        "Exception", "ValueError", "TypeError", "KeyError", "RuntimeError", "OSError", "AttributeError",
        "AssertionError", "TimeoutError", "ConnectionError",
    )
} | {
    ("collections", "OrderedDict"), ("collections", "deque"), ("collections", "Counter"),
    ("datetime", "datetime"), ("datetime", "timedelta"), ("datetime", "date"), ("datetime", "timezone"),
    ("pathlib", "PosixPath"), ("pathlib", "Path"),
    ("logging", "LogRecord"),
    ("socket", "AddressFamily"), ("socket", "SocketKind"),
})


class RefusedPickle(pickle.UnpicklingError):
    """A pickle named a class outside the allow-list; nothing of it was run."""


def _allowed(module: str, name: str, obj) -> bool:
    """Classes (never functions) from the allowed modules."""
    prefixes = tuple(p if p.endswith(".") else p + "." for p in ALLOWED_MODULE_PREFIXES)
    return isinstance(obj, type) and (module + ".").startswith(prefixes)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED_NAMES:
            return super().find_class(module, name)
        if not module.startswith(("foxden.", "thespian.")):
            raise RefusedPickle(f"refused to unpickle {module}.{name}")
        obj = super().find_class(module, name)
        if not _allowed(module, name, obj):
            raise RefusedPickle(f"refused to unpickle {module}.{name}")
        return obj


class _Recorder(pickle.Unpickler):
    """Allows everything and writes down what it saw (to build the allow-list, never in production)."""

    path = ""

    def find_class(self, module: str, name: str):
        with open(self.path, "a") as f:
            f.write(f"{module}\t{name}\n")
        return super().find_class(module, name)


def loads(data: bytes):
    """pickle.loads restricted to the allow-list above."""
    record = os.environ.get("FOXDEN_PICKLE_RECORD")
    if record:
        u = _Recorder(io.BytesIO(data))
        u.path = record
        return u.load()
    return _Unpickler(io.BytesIO(data)).load()


def install(*, loopback_only: bool = True) -> None:
    """Patch Thespian in this process (actor processes are forked and inherit it).

    With loopback_only, every socket Thespian listens on is bound to
    127.0.0.1 instead of all interfaces, and the addresses it hands out are
    loopback ones too."""
    from thespian.system.transport import IPBase, TCPTransport

    TCPTransport.serializer = types.SimpleNamespace(dumps=pickle.dumps, loads=loads)
    if not loopback_only or getattr(IPBase.IPActorAddress, "_foxden_loopback", False):
        return
    os.environ["THESPIAN_BASE_IPADDR"] = "127.0.0.1"
    original = IPBase.IPActorAddress.__init__

    def loopback_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.bindname and self.bindname[0] in ("", "0.0.0.0"):
            self.bindname = ("127.0.0.1",) + tuple(self.bindname[1:])

    IPBase.IPActorAddress.__init__ = loopback_init
    IPBase.IPActorAddress._foxden_loopback = True
