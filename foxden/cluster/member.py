"""What a member's daemon leaves for the node actor the leader places on it (inherited through fork)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from foxden import fsafety

__all__ = ["Local", "LOCAL", "OWNER_FILE", "needs_registration", "read_owner", "set_local", "write_owner"]

OWNER_FILE = "node.owner"  # in the member's state dir: "<boot> <pid> <state>" of the node actor placed last


@dataclass(frozen=True)
class Local:
    """The member's own settings: its config, engine, instance marker and daemon pid.

    The leader only says "run a node here": what the node runs is the
    member's own configuration. The member's daemon sets this before its
    actor system starts; Thespian forks the admin from the daemon and every
    actor from the admin, so the node actor finds it here."""

    config: Any  # foxden.config.Config
    engine: Any  # foxden.engines.EngineChoice
    marker: str  # the member daemon's instance marker, "<tag>:<instance>/"
    daemon_pid: int


LOCAL: Local | None = None


def set_local(local: Local) -> None:
    """Called once by the member's daemon, before its actor system starts."""
    global LOCAL
    LOCAL = local


def write_owner(state_dir, boot: str, state: str) -> None:
    """The node actor's line: its boot id, its pid, and "joining", "up" or "released"."""
    fd = fsafety.open_nofollow(os.path.join(str(state_dir), OWNER_FILE), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.write(fd, f"{boot} {os.getpid()} {state}\n".encode())
    finally:
        os.close(fd)


def read_owner(state_dir) -> tuple[str, int, str] | None:
    """(boot, pid, state) of the last node actor placed here, or None."""
    try:
        fd = fsafety.open_nofollow(os.path.join(str(state_dir), OWNER_FILE), os.O_RDONLY)
    except (OSError, fsafety.UnsafePath):
        return None
    try:
        parts = os.read(fd, 200).decode(errors="replace").split()
    finally:
        os.close(fd)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2]


def needs_registration(owner: tuple[str, int, str] | None, pid_alive) -> bool:
    """Whether the member's daemon should register with the leader again (decision; pid_alive injected).

    Yes when no node actor runs here, or the one that runs is not welcomed
    (joining): the leader may have restarted and not know this member; a
    registration it already holds is only refreshed. Not once released."""
    if owner is None or not pid_alive(owner[1]):
        return True
    return owner[2] == "joining"
