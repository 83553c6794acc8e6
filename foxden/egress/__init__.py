"""Egress: what a job's browser may connect to, enforced by a loopback proxy every browser connection goes through."""
from __future__ import annotations

from foxden.egress.policy import EgressPolicy, Reason, Verdict, judge_address, judge_name, parse_rules

__all__ = ["EgressPolicy", "Reason", "Verdict", "judge_address", "judge_name", "parse_rules", "policy_for"]


def policy_for(jobs) -> EgressPolicy:
    """The policy of a [jobs] config section, with this host's own addresses as they are now."""
    from foxden.egress.policy import own_addresses

    own = own_addresses() if not jobs.allow_private else ()
    return EgressPolicy.from_rules(jobs.allow_private, jobs.allow_hosts, jobs.deny_hosts, own)
