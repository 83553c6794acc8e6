"""Restart policy as frozen data and pure functions, after OTP's supervisor.erl."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence, get_args

from foxden.protocols.exits import ExitReason

__all__ = ["Decision", "ExitPlan", "ExitReason", "Group", "RestartHistory", "RestartPolicy", "RestartType",
           "Strategy", "backoff_delay", "children_to_restart", "decide", "group_restart", "on_exit", "prune",
           "should_restart"]

# Nothing here reads a clock, sends a message or touches a process: the
# supervisor actor owns time and side effects and asks these functions what
# to do, so every restart decision can be tested (and replayed) exactly.
# Exit reasons are foxden.protocols.exits.ExitReason (re-exported here): which
# are normal and which count toward intensity are its properties.

RestartType = Literal["permanent", "transient", "temporary"]
Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]

_RESTART_TYPES = frozenset(get_args(RestartType))
_STRATEGIES = frozenset(get_args(Strategy))


@dataclass(frozen=True)
class RestartPolicy:
    """How a supervisor treats its children's exits (OTP's restart type,
    strategy, intensity and period, plus an exponential restart backoff)."""

    restart: RestartType = "permanent"
    strategy: Strategy = "one_for_one"
    intensity: int = 10  # max counted restarts ...
    period_s: float = 60.0  # ... within this sliding window; more -> give up
    backoff_base_s: float = 0.1
    backoff_max_s: float = 5.0

    def __post_init__(self) -> None:
        # Policies come from config files; fail at load time, not at the
        # first crash, when a bad value would otherwise surface.
        if self.restart not in _RESTART_TYPES:
            raise ValueError(f"restart must be one of {sorted(_RESTART_TYPES)}, got {self.restart!r}")
        if self.strategy not in _STRATEGIES:
            raise ValueError(f"strategy must be one of {sorted(_STRATEGIES)}, got {self.strategy!r}")
        if isinstance(self.intensity, bool) or not isinstance(self.intensity, int) or self.intensity < 0:
            raise ValueError(f"intensity must be an int >= 0, got {self.intensity!r}")
        # `not (x > 0)` rather than `x <= 0` so NaN is rejected too.
        if not (self.period_s > 0):
            raise ValueError(f"period_s must be > 0, got {self.period_s!r}")
        if not (self.backoff_base_s >= 0):
            raise ValueError(f"backoff_base_s must be >= 0, got {self.backoff_base_s!r}")
        if not (self.backoff_max_s >= 0):
            raise ValueError(f"backoff_max_s must be >= 0, got {self.backoff_max_s!r}")

    @classmethod
    def from_config(cls, cfg: Any) -> RestartPolicy:
        """Build from a config section; its `policy` attribute is the restart type."""
        return cls(
            restart=cfg.policy,
            strategy=cfg.strategy,
            intensity=cfg.intensity,
            period_s=cfg.period_s,
            backoff_base_s=cfg.backoff_base_s,
            backoff_max_s=cfg.backoff_max_s,
        )


@dataclass(frozen=True)
class RestartHistory:
    """Monotonic times of counted restarts, oldest first, pruned to the window."""

    times: tuple[float, ...] = ()


@dataclass(frozen=True)
class Decision:
    """What to do about one child exit, and the history to keep afterwards."""

    action: Literal["restart", "ignore", "give_up"]
    delay_s: float  # 0 unless action == "restart"
    history: RestartHistory
    reason: str


def should_restart(restart: RestartType, exit_reason: ExitReason) -> bool:
    """Whether a child of this restart type is restarted after this exit (OTP rules)."""
    if restart == "permanent":
        return True
    if restart == "transient":
        return not exit_reason.is_normal
    if restart == "temporary":
        return False
    raise ValueError(f"unknown restart type {restart!r}")


def prune(history: RestartHistory, now: float, period_s: float) -> RestartHistory:
    """Drop restarts older than `period_s` before `now`.

    The window is inclusive, as in OTP (a restart exactly `period_s` ago
    still counts)."""
    threshold = now - period_s
    # A filter, not OTP's takewhile, so a caller's out-of-order time cannot
    # make us keep or drop the wrong entries.
    kept = tuple(t for t in history.times if t >= threshold)
    return history if len(kept) == len(history.times) else RestartHistory(kept)


def backoff_delay(history: RestartHistory, now: float, policy: RestartPolicy) -> float:
    """Delay before the next counted restart: 0 for the first in the window,
    then base * 2**(k-1) capped at backoff_max_s, k = restarts already in it."""
    k = len(prune(history, now, policy.period_s).times)
    if k == 0:
        return 0.0
    # Clamp the exponent so a large intensity cannot overflow the float
    # arithmetic; 2.0**1023 is finite and the cap applies long before it.
    return min(policy.backoff_base_s * 2.0 ** min(k - 1, 1023), policy.backoff_max_s)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def decide(
    policy: RestartPolicy,
    history: RestartHistory,
    exit_reason: ExitReason,
    now: float,
    *,
    shutting_down: bool = False,
) -> Decision:
    """Decide what a supervisor does about one child exit at monotonic time `now`."""
    pruned = prune(history, now, policy.period_s)
    if shutting_down:
        # Children exit because we are stopping them; restarting would fight
        # the shutdown (OTP's supervisor ignores exits once terminating).
        return Decision("ignore", 0.0, pruned, f"supervisor is shutting down (child exited {exit_reason.value!r})")
    if not should_restart(policy.restart, exit_reason):
        if policy.restart == "temporary":
            why = f"temporary child exited {exit_reason.value!r} and is never restarted"
        else:
            why = f"{policy.restart} child exited normally ({exit_reason.value!r})"
        return Decision("ignore", 0.0, pruned, why)
    if not exit_reason.counts_toward_intensity:
        return Decision(
            "restart",
            0.0,
            pruned,
            f"{policy.restart} child exited {exit_reason.value!r}: restarted without counting toward intensity",
        )

    delay = backoff_delay(pruned, now, policy)
    recorded = RestartHistory(pruned.times + (now,))
    n = len(recorded.times)
    if n > policy.intensity:
        # OTP: more than MaxR restarts within MaxT -> the supervisor gives up
        # (so intensity=0 gives up on the first failure). The history still
        # records this restart, as OTP's state does.
        span = now - min(recorded.times)
        return Decision(
            "give_up",
            0.0,
            recorded,
            f"{_plural(n, 'restart')} in {span:g}s exceeds intensity {policy.intensity} in {policy.period_s:g}s"
            f" (last exit {exit_reason.value!r})",
        )
    return Decision(
        "restart",
        delay,
        recorded,
        f"{policy.restart} child exited {exit_reason.value!r}: restart {n} of {policy.intensity} allowed in {policy.period_s:g}s",
    )


def children_to_restart(strategy: Strategy, order: Sequence[str], failed: str) -> list[str]:
    """Which children to restart, in start order, when `failed` fails."""
    if failed not in order:
        # Not a child we know the position of: restarting anything else
        # on its behalf would be a guess.
        return [failed]
    if strategy == "one_for_one":
        return [failed]
    if strategy == "one_for_all":
        return list(order)
    if strategy == "rest_for_one":
        # Children started after `failed` may depend on it, so they go too.
        return list(order[list(order).index(failed):])
    raise ValueError(f"unknown strategy {strategy!r}")


@dataclass(frozen=True)
class Group:
    """The siblings a group restart stops, and those of them it starts again (start order)."""

    stop: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()


def group_restart(strategy: Strategy, order: Sequence[tuple[str, RestartType]], failed: str) -> Group:
    """OTP's restart_multiple_children for `failed`: which siblings to stop and which to start again.

    `order` is every child in start order with its restart type. Temporary
    siblings are stopped and not started again (terminate_children drops
    them); permanent and transient ones are started again whatever their
    type would say of the stop, which was the supervisor's own doing."""
    ids = [cid for cid, _ in order]
    group = set(children_to_restart(strategy, ids, failed)) - {failed}
    siblings = [(cid, restart) for cid, restart in order if cid in group]
    return Group(tuple(cid for cid, _ in siblings), tuple(cid for cid, r in siblings if r != "temporary"))


@dataclass(frozen=True)
class ExitPlan:
    """What the supervisor does about one child's exit (the actor carries it out).

    action: "restart" (one restart, counted once in `restarts`, that also
    stops `stop` with ExitReason.sibling_stop(strategy)), "replace" (a
    retirement: started again outside the policy), "absorbed" (a sibling
    stopped by a group restart that already accounts for it), "ignore"
    (not started again: `drop` slots fewer) or "give_up".
    `relaunch` is what is started again for it, in start order (the failed
    child in its own place: OTP's start_children); `drop` is how many of
    the pool's slots are given up for good."""

    action: Literal["restart", "replace", "absorbed", "ignore", "give_up"]
    delay_s: float
    history: RestartHistory
    reason: str
    stop: tuple[str, ...] = ()
    relaunch: tuple[str, ...] = ()
    drop: int = 0


def on_exit(policy: RestartPolicy, history: RestartHistory, exit_reason: ExitReason, now: float,
            order: Sequence[str], failed: str) -> ExitPlan:
    """Plan for the exit of `failed` (one of `order`, the children in start order, all of the policy's type)."""
    if exit_reason.strategy is not None:
        return ExitPlan("absorbed", 0.0, history, f"stopped by a {exit_reason.strategy} restart, which relaunches it")
    if exit_reason.ends_lease:
        # The supervisor never asks (a leased browser is not the pool's); should it, nothing replaces one.
        return ExitPlan("ignore", 0.0, history, f"a lease's end ({exit_reason.value}): nothing replaces it")
    if exit_reason.is_retirement:
        return ExitPlan("replace", 0.0, history, f"retired ({exit_reason.value}): replaced", relaunch=(failed,))
    d = decide(policy, history, exit_reason, now, shutting_down=exit_reason is ExitReason.SHUTDOWN)
    if d.action == "ignore":
        return ExitPlan("ignore", 0.0, d.history, d.reason, drop=0 if exit_reason is ExitReason.SHUTDOWN else 1)
    if d.action == "give_up":
        return ExitPlan("give_up", 0.0, d.history, d.reason)
    group = group_restart(policy.strategy, [(cid, policy.restart) for cid in order], failed)
    relaunch = [cid for cid in order if cid == failed or cid in group.restart]
    if failed not in order:
        relaunch.append(failed)
    return ExitPlan("restart", d.delay_s, d.history, d.reason, stop=group.stop, relaunch=tuple(relaunch),
                    drop=len(group.stop) - len(group.restart))
