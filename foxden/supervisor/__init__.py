"""The supervisor: a thin actor shell over pure decisions.

    actor.py     the Thespian shell: receive, ask a decision, act (start, kill, send), report
    children.py  the Child record, its ChildState enum and the allowed transitions
    policy.py    OTP restart decisions: intensity window, backoff, strategy groups, the plan for one exit
    watchdog.py  the verdict on one child at one tick (crash, stopped, timeout, launch, heartbeat, stop)
    pool.py      target size, memory admission, recycling reasons, PSS sampling order
    reaper.py    a dead child's processes and files: kill by pid and marker, re-kill what lingers

Exit reasons are foxden.protocols.exits.ExitReason, shared with the actors."""
