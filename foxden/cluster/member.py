"""What a member's daemon leaves for the node actor the leader places on it (inherited through fork)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Local", "LOCAL", "set_local"]


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
