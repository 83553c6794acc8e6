"""`foxden node drain NAME`: ask the running leader's cluster actor, over the cluster's sealed transport."""
from __future__ import annotations

from foxden.protocols.messages import DrainNode, DrainNodeReply

__all__ = ["DrainFailed", "ask_drain"]


class DrainFailed(Exception):
    """The leader could not be asked, or did not answer."""


def ask_drain(config, node: str, timeout: float = 15.0) -> DrainNodeReply:
    """Ask the leader of `config` (running on this host: its admin port) to drain `node`.

    This process joins the leader's actor system as an external client (the
    same key and bind as the leader's, so its frames are sealed like theirs)
    and finds the cluster actor by its global name; the caller checks first
    that the leader is up, so that no actor system is started here."""
    from thespian.actors import ActorSystem

    from foxden import transport
    from foxden.cluster.leader import GLOBAL_NAME

    if config.cluster.role != "leader":
        raise DrainFailed(f"[cluster] role is {config.cluster.role!r}: run `foxden node drain` with the leader's "
                          "config, on the leader")
    try:
        key = transport.read_key_file(config.cluster.key_file)
    except transport.KeyFileError as exc:
        raise DrainFailed(f"[cluster] key_file: {exc}") from None
    transport.install(key, config=config, bind=config.cluster.bind)
    asys = ActorSystem("multiprocTCPBase", capabilities={"Admin Port": config.daemon.admin_port},
                       transientUnique=False)
    cluster = asys.createActor("foxden.cluster.leader.ClusterActor", globalName=GLOBAL_NAME)
    reply = asys.ask(cluster, DrainNode(node), timeout)
    if not isinstance(reply, DrainNodeReply):
        raise DrainFailed(f"the leader's cluster actor did not answer within {timeout:g}s ({reply!r})")
    return reply
