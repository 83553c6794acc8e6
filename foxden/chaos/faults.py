"""The fault kinds a chaos run injects (one closed vocabulary), their default rates, and `--rates`."""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Fault", "SPECS", "PER_JOB", "PER_SECOND", "KINDS", "HANG_KINDS", "DEFAULT_RATES", "parse_rates"]


class Fault(StrEnum):
    """A kind of fault; per job (a probability that a job is of that kind) or per second (a rate)."""

    HANG_PROMISE = "hang_promise"
    HANG_LOOP = "hang_loop"
    HANG_RESPONSE = "hang_response"
    SLOW = "slow"
    ABANDON = "abandon"
    KILL_BROWSER = "kill_browser"
    KILL_ACTOR = "kill_actor"
    STOP_ACTOR = "stop_actor"
    STOP_BROWSER = "stop_browser"
    STOP_CHILD = "stop_child"
    BAD_FRAME = "bad_frame"
    BURST = "burst"


@dataclass(frozen=True)
class Spec:
    """What a fault kind is: per job or per second, whether its job can never succeed, its default rate."""

    per_job: bool
    hangs: bool
    rate: float  # moderate: a few hundred jobs see every kind several times
    help: str


SPECS: dict[Fault, Spec] = {
    Fault.HANG_PROMISE: Spec(True, True, 0.02, "eval `new Promise(() => {})` (watchdog kill)"),
    Fault.HANG_LOOP: Spec(True, True, 0.02, "eval `while (true) {}` (watchdog kill)"),
    Fault.HANG_RESPONSE: Spec(True, True, 0.02, "/hang: headers, half a body, then nothing"),
    Fault.SLOW: Spec(True, True, 0.02, "/slow?ms=... past the attempt's deadline"),
    Fault.ABANDON: Spec(True, False, 0.03, "a client submits on its own connection and hangs up before the answer"),
    Fault.KILL_BROWSER: Spec(False, False, 0.08, "SIGKILL of a random browser's main process"),
    Fault.KILL_ACTOR: Spec(False, False, 0.05, "SIGKILL of a random browser actor process"),
    Fault.STOP_ACTOR: Spec(False, False, 0.04, "SIGSTOP of a browser actor (left frozen: the daemon must clean up)"),
    Fault.STOP_BROWSER: Spec(False, False, 0.03, "SIGSTOP of a browser's main process (left frozen, likewise)"),
    Fault.STOP_CHILD: Spec(False, False, 0.02,
                           "SIGSTOP of a zygote, renderer, GPU or utility process of a browser, likewise"),
    Fault.BAD_FRAME: Spec(False, False, 0.5, "a raw connection sending random bytes, garbage, a truncated "
                                             "or oversize frame, or a well-formed frame with bad fields"),
    Fault.BURST: Spec(False, False, 0.03, "3 x max_queue jobs at once on a fresh connection (most get queue_full)"),
}

# Plain strings, in this order: the job mix and the summary's keys depend on it.
PER_JOB = tuple(f.value for f in Fault if SPECS[f].per_job)
PER_SECOND = tuple(f.value for f in Fault if not SPECS[f].per_job)
KINDS = PER_JOB + PER_SECOND
HANG_KINDS = tuple(f.value for f in Fault if SPECS[f].hangs)
DEFAULT_RATES = {f.value: SPECS[f].rate for f in Fault}


def parse_rates(text: str | None, base: dict | None = None) -> dict:
    """`k=v,k=v` over the defaults; `all=X` sets every kind (later keys override)."""
    rates = dict(DEFAULT_RATES if base is None else base)
    if not text:
        return rates
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"--rates: expected kind=value, got {part!r}")
        try:
            v = float(value)
        except ValueError:
            raise ValueError(f"--rates: {key}: not a number: {value!r}") from None
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"--rates: {key}: must be a number >= 0, got {value}")
        if key == "all":
            rates = {k: v for k in KINDS}
        elif key in KINDS:
            rates[key] = v
        else:
            raise ValueError(f"--rates: unknown fault kind {key!r} (known: all, {', '.join(KINDS)})")
    if sum(rates[k] for k in PER_JOB) > 1.0:
        raise ValueError(f"--rates: the per-job probabilities ({', '.join(PER_JOB)}) add up to more than 1")
    return rates
