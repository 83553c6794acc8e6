"""One foxden across many machines: the node table, its decisions, the leader's cluster actor, the member's node actor."""
