"""foxden/actors and foxden/supervisor never import each other; the supervisor's decisions import no actor code."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "foxden"
# The shell is an actor: it may subclass the base every actor shares. Nothing
# else crosses (the browser actor is created, and preloaded, by name).
ALLOWED = {("supervisor/actor.py", "foxden.actors.base")}
PURE = ["children.py", "policy.py", "pool.py", "watchdog.py"]


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize("here, there", [("actors", "foxden.supervisor"), ("supervisor", "foxden.actors")])
def test_the_two_packages_do_not_import_each_other(here, there):
    bad = [(str(p.relative_to(ROOT)), n) for p in sorted((ROOT / here).glob("*.py")) for n in sorted(imports(p))
           if (n == there or n.startswith(there + ".")) and (str(p.relative_to(ROOT)), n) not in ALLOWED
           and not any(n.startswith(a + ".") for f, a in ALLOWED if f == str(p.relative_to(ROOT)))]
    assert bad == []


@pytest.mark.parametrize("module", PURE)
def test_the_decision_modules_touch_no_actor_process_or_clock(module):
    names = imports(ROOT / "supervisor" / module)
    assert not {n for n in names if n.split(".")[0] in {"thespian", "psutil", "time", "shutil"}
                or n.startswith(("foxden.procs", "foxden.actors"))}, names
