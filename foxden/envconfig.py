"""Config from the environment: FOXDEN_<SECTION>_<KEY> overrides a key of the file, validated like it."""
from __future__ import annotations

import dataclasses
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path

__all__ = ["PREFIX", "EnvOverride", "env_overrides", "merge_overrides", "variable_name"]

PREFIX = "FOXDEN_"
# Keys whose values are text: the variable's value is taken as it is, never parsed.
_TEXT_TYPES = (str, Path, str | None, Path | None)


@dataclasses.dataclass(frozen=True)
class EnvOverride:
    """One variable that overrides one key: where it came from and the value it gives."""

    variable: str
    section: str
    key: str
    raw: str
    value: typing.Any


def variable_name(section: str, key: str) -> str:
    """The environment variable that overrides [section] key."""
    return f"{PREFIX}{section.upper()}_{key.upper()}"


def _typed(raw: str, hint: typing.Any) -> typing.Any:
    """The value a TOML file would give for `raw`: text keys take it as is; the others parse it as a TOML
    value (42, 2.5, true, ["a", "b"]); what does not parse stays text, for the validator to refuse by name."""
    if hint in _TEXT_TYPES:
        return raw
    if raw.strip() == "" and typing.get_origin(hint) is tuple:
        return []
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def env_overrides(environ: Mapping[str, str], sections: Mapping[str, type]) -> list[EnvOverride]:
    """Every FOXDEN_<SECTION>_<KEY> of `environ` for a known section, typed; raises ValueError naming a
    variable of a known section whose key is unknown. Variables of other names (FOXDEN_CONFIG,
    FOXDEN_OWNER, ...) are not config and are left alone."""
    found = []
    for name in sorted(environ):
        for section, cls in sections.items():
            head = f"{PREFIX}{section.upper()}_"
            if not name.startswith(head):
                continue
            key = name[len(head):].lower()
            hints = typing.get_type_hints(cls)
            if key not in hints:
                known = ", ".join(variable_name(section, k) for k in hints)
                raise ValueError(f"{name}: unknown key {key!r} of [{section}] (known: {known})")
            found.append(EnvOverride(name, section, key, environ[name], _typed(environ[name], hints[key])))
    return found


def merge_overrides(data: dict, overrides: list[EnvOverride]) -> dict:
    """A copy of decoded TOML `data` with each override's value set (the environment wins over the file)."""
    merged = {name: dict(table) if isinstance(table, dict) else table for name, table in data.items()}
    for o in overrides:
        table = merged.setdefault(o.section, {})
        if isinstance(table, dict):
            table[o.key] = o.value
    return merged
