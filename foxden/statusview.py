"""The `foxden status` table: a rich view of one status document."""
from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

STATE_STYLES = {"idle": "green", "busy": "yellow", "starting": "cyan", "stopping": "red"}


def status_view(st: dict) -> RenderableType:
    """The summary (pool, browsers, queue, totals, watchdog, invariants) above one row per browser."""
    pool = st["pool"]
    header = Text.assemble(
        (f"foxden {st['instance']}", "bold"),
        f"  engine {st['engine']}  up {duration(st['uptime_s'])}  pool ",
        (pool["state"], "green" if pool["state"] == "ok" else "bold red"),
    )

    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    held = f"  held back: {pool['held_back']}" if pool["held_back"] else ""
    summary.add_row("pool", f"target {pool['target']}  min {pool['min']}  max {pool['max']}{held}")
    by_state = st["browsers"]["by_state"]
    summary.add_row("browsers", f"live {st['browsers']['live']}  " + _pairs(by_state))
    for node in st.get("nodes", []):  # a cluster's leader (docs/cluster.md)
        style = {"up": "", "draining": "yellow", "lost": "red"}.get(node["state"], "")
        summary.add_row(f"node {node['name']}", Text(
            f"{node['state']}  live {node['browsers']['live']}  jobs {node['jobs_in_flight']}  "
            f"seen {node['last_seen_s']:.1f}s ago  {node['address']}", style=style))
    summary.add_row("queue", f"depth {st['queue']['depth']}  in flight {st['queue']['in_flight']}")
    summary.add_row("totals", _pairs(st["totals"]))
    if st["errors"]:
        summary.add_row("errors", _pairs(st["errors"]))
    wd = st["watchdog"]
    kills = f"kills {wd['kills']}" + (f" ({_pairs(wd['kills_by_reason'])})" if wd["kills_by_reason"] else "")
    summary.add_row("watchdog", f"{kills}  restarts {st['restarts']}")
    if wd.get("lingering"):
        summary.add_row("lingering", Text(", ".join(f"pid {p['pid']} of {p['browser']} for {p['for_s']:.0f}s"
                                                    for p in wd["lingering"]), style="red"))
    if st["exits"]:
        summary.add_row("exits", _pairs(st["exits"]))
    inv = st["invariants"]
    if inv["ok"]:
        summary.add_row("invariants", Text(f"ok ({inv['checks']} checks)", style="green"))
    else:
        summary.add_row("invariants", Text("VIOLATED: " + "; ".join(inv["violations"]), style="bold red"))
    if pool["error"]:
        summary.add_row("pool error", Text(pool["error"], style="red"))

    browsers = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False)
    for name, justify in (("id", "left"), ("pid", "right"), ("engine", "left"), ("state", "left"),
                          ("job", "left"), ("age", "right"), ("jobs", "right"), ("PSS", "right")):
        browsers.add_column(name, justify=justify, no_wrap=name != "job")
    for c in st["children"]:
        browsers.add_row(c["id"], str(c["pid"] or "-"), c["engine"],
                         Text(c["state"], style=STATE_STYLES.get(c["state"], "")), c["job"] or "",
                         duration(c["age_s"]), str(c["jobs_done"]), mebibytes(c["pss_bytes"]))
    return Group(header, summary, Text(""), browsers)


def duration(seconds: float) -> str:
    """Two units at most: 42s, 3m07s, 5h02m, 12d03h."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def mebibytes(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n else "-"


def _pairs(d: dict) -> str:
    return "  ".join(f"{k} {v}" for k, v in d.items())
