"""What a run's browsers leave behind: processes and dirs of dead browsers, and the control plane's memory."""
from __future__ import annotations

import os
import re
import signal
import tempfile

import psutil

from foxden import footprint, procs
from foxden.chaos.context import Context

__all__ = ["Leaks", "dir_evidence", "tmp_entries"]

_OWNER_DIR = re.compile(r"/browsers/(b\d+)/")


def tmp_entries() -> set[str]:
    """Paths of the browser leftovers in the system temp dir."""
    tmp = tempfile.gettempdir()
    return {os.path.join(tmp, n) for n in footprint.browser_temp_entries(tmp)}


def dir_evidence(path: str, limit: int = 30) -> dict:
    """What is in a leaked dir, its age, and which processes hold something in it."""
    files = []
    newest = 0.0
    for root, dirs, names in os.walk(path):
        for n in dirs + names:
            full = os.path.join(root, n)
            try:
                newest = max(newest, os.lstat(full).st_mtime)
            except OSError:
                pass
            if len(files) < limit:
                files.append(os.path.relpath(full, path))
    holders = []
    for p in psutil.process_iter():
        try:
            cwd = p.cwd()
            opened = [f.path for f in p.open_files()]
        except (psutil.Error, OSError):
            continue
        if cwd.startswith(path) or any(f.startswith(path) for f in opened):
            holders.append(procs.describe(p))
    try:
        created = os.stat(path).st_ctime
    except OSError:
        created = None
    return {"entries": files, "ctime": created, "newest_mtime": newest or None, "holders": holders[:10]}


class Leaks:
    """Remembers the run's browser processes and profile dirs, and finds what outlives its browser."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.foreign: list[str] = []  # browser processes of someone else seen during the run
        self.user_data_dirs: set[str] = set()  # our browsers' profile dirs
        self.seen_mains: set[int] = set()
        self.seen_procs: dict[int, tuple[float, str]] = {}  # browser pid -> (start time, browser id)

    def scan(self, st: dict) -> None:
        """Note our browsers' processes and profile dirs, and whether anyone else runs browsers (then
        new /tmp entries cannot be told apart from ours)."""
        self._remember(st)
        if len(self.foreign) >= 5:
            return
        prefix, state = self.ctx.daemon.state_prefix, self.ctx.state_dir
        for p in psutil.process_iter():
            try:
                if not footprint.browserish(p) or p.pid in self.seen_procs or state in " ".join(p.cmdline()):
                    continue
                marker = p.environ().get(procs.MARKER_ENV, "")
                if not marker.startswith(prefix):
                    self.foreign.append(f"{p.pid} {p.name()} marker={marker[:40] or '-'}")
                    if len(self.foreign) >= 5:
                        return
            except (psutil.Error, OSError):
                continue

    def _remember(self, st: dict) -> None:
        for c in st["children"]:
            for pid in c["browser_pids"]:
                if pid not in self.seen_procs:
                    created = procs.create_time(pid)
                    if created is not None:
                        self.seen_procs[pid] = (created, c["id"])
        for c in st["children"]:
            if c["browser_pids"] and c["browser_pids"][0] not in self.seen_mains:
                self.seen_mains.add(c["browser_pids"][0])
                try:
                    for arg in psutil.Process(c["browser_pids"][0]).cmdline():
                        if arg.startswith("--user-data-dir="):
                            self.user_data_dirs.add(arg.split("=", 1)[1])
                except psutil.Error:
                    pass

    def control_plane_rss(self, st: dict) -> dict:
        """RSS of the daemon and its Python descendants that are not browser actors: {pid: (role, rss)}."""
        actors = {c["pid"] for c in st["children"] if c["pid"]}
        roles = {v: k for k, v in (st.get("pids") or {}).items()}
        sup = (st.get("pids") or {}).get("supervisor")
        out = {}
        try:
            root = psutil.Process(self.ctx.daemon.proc.pid)
            tree = [root] + root.children(recursive=True)
        except psutil.Error:
            return out
        for p in tree:
            try:
                if "python" not in p.name() and "python" not in os.path.basename((p.cmdline() or [""])[0]):
                    continue
                if p.pid in actors or (sup is not None and p.ppid() == sup):
                    continue
                role = "daemon" if p.pid == root.pid else roles.get(p.pid, "other")
                out[p.pid] = (role, p.memory_info().rss)
            except psutil.Error:
                continue
        return out

    def our_processes(self) -> list[tuple[psutil.Process, str, str]]:
        """Every live process of this state dir: (process, owner, how it was recognised).

        The marker alone does not do: Chromium's child processes (zygotes, GPU, network and storage
        services, renderers) write their process title over their environment, so FOXDEN_OWNER cannot
        be read back from them. Their command line names the profile dir inside the state dir, and
        any browser process seen in a status sample is remembered by (pid, start time)."""
        prefix, state = self.ctx.daemon.state_prefix, self.ctx.state_dir
        out = []
        for p in psutil.process_iter():
            if p.pid == os.getpid():
                continue
            try:
                if not procs.alive(p):
                    continue
                try:
                    marker = p.environ().get(procs.MARKER_ENV, "")
                except (psutil.Error, OSError):
                    marker = ""
                cmd = " ".join(p.cmdline())
                started = procs.create_time(p.pid)
            except (psutil.Error, OSError):
                continue
            if marker.startswith(prefix):
                out.append((p, marker.rstrip("/").rpartition("/")[2], "marker"))  # ".../b5/" -> "b5"
            elif state in cmd:
                m = _OWNER_DIR.search(cmd)
                out.append((p, m.group(1) if m else "?", "command line"))
            elif self.seen_procs.get(p.pid, (None,))[0] == started:
                out.append((p, self.seen_procs[p.pid][1], "seen in status"))
        return out

    def strays_before_stop(self, st: dict) -> list[str]:
        """Processes of this instance that belong to no live browser and are not the control plane."""
        live_ids = {c["id"] for c in st["children"]}
        actor_pids = {c["pid"] for c in st["children"] if c["pid"]}
        control = set(self.control_plane_rss(st))
        out = []
        for p, owner, how in self.our_processes():
            if owner == "daemon":
                if p.pid in actor_pids or p.pid in control:
                    continue
            elif owner in live_ids:
                continue
            out.append(f"{procs.describe(p)} [owner {owner}, found by {how}]")
        return out

    def dirs_before_stop(self, st: dict) -> list[str]:
        """Browser dirs under the state dir whose browser is not live."""
        root = procs.browsers_dir(self.ctx.daemon.config.daemon.state_dir)
        live_ids = {c["id"] for c in st["children"]}
        try:
            names = os.listdir(root)
        except OSError:
            return []
        return [os.path.join(root, n) for n in sorted(names) if n not in live_ids]

    def sweep_after_stop(self) -> list[str]:
        """Once the daemon is gone: describe, then kill, whatever of ours (or browser-like under us) is alive."""
        found = {p.pid: (p, f"{procs.describe(p)} [owner {owner}, found by {how}]")
                 for p, owner, how in self.our_processes()}
        for p in procs.descendants(os.getpid()):
            if footprint.browserish(p) and p.pid not in found:
                found[p.pid] = (p, f"{procs.describe(p)} [a descendant of the chaos process]")
        if found:
            left = [p for p, _ in found.values()]
            for p in left:  # frozen ones too
                try:
                    p.send_signal(signal.SIGCONT)
                except psutil.Error:
                    pass
            procs.kill_and_wait(left)
        return [desc for _, desc in found.values()]

    def leaked_dirs(self, state_dir: str, before_stop: list[str], tmp_before: set[str], summary: dict) -> list[str]:
        """Dirs left after the stop: of dead browsers, under the state dir, and new browser entries in /tmp
        (only those known to be ours when someone else ran browsers meanwhile; the rest go to summary)."""
        out = [f"(before stop) {d}" for d in before_stop]
        browsers_dir = procs.browsers_dir(state_dir)
        if os.path.isdir(browsers_dir):
            out += [os.path.join(browsers_dir, n) for n in sorted(os.listdir(browsers_dir))]
        new_tmp = sorted(tmp_entries() - tmp_before)
        ours = [t for t in new_tmp if t in self.user_data_dirs]
        if self.foreign:
            out += ours
            summary["tmp_entries_unattributed"] = [t for t in new_tmp if t not in ours]
            summary["foreign_browser_processes"] = self.foreign
        else:
            out += new_tmp
        return out
