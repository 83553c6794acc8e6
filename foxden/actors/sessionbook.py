"""Pure decisions of the dispatcher about cancels and persistent sessions (issue #14)."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from foxden.protocols.options import JobOptions

__all__ = ["cancel_matches", "with_context_options"]


def cancel_matches(jobs: Iterable[tuple[str, str | None, bool]], wanted: str) -> list[str]:
    """Keys of the jobs a `cancel` of `wanted` ends, from (key, client id, is an end-session job) triples.

    A job matches by the id its answer carries: the client's id when it gave
    one, else the daemon's key. Every unanswered job with that id matches
    (clients may reuse ids); the daemon's own end-session jobs never do."""
    return [key for key, client_id, end in jobs if not end and (client_id or key) == wanted]


def with_context_options(options: JobOptions, kept: tuple) -> JobOptions:
    """`options` with the context options a session started with (proxy, user agent, locale, timezone).

    A session keeps them across its jobs and browsers: a later job's own
    values for these are ignored, as a context cannot change them once made."""
    proxy, user_agent, locale, timezone = kept
    if options.context_options == kept:
        return options
    return dataclasses.replace(options, proxy=proxy, user_agent=user_agent, locale=locale, timezone=timezone)
