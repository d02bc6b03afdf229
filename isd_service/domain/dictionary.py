"""The data dictionary's history: for each entity and field, the version that introduced it
and the versions that changed its definition (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Changes:
    """When a definition came, and every later version whose definition of it differs."""

    introduced: int | None = None
    changed: list[int] = field(default_factory=list)


@dataclass
class EntityHistory:
    entity: Changes = field(default_factory=Changes)
    fields: dict[str, Changes] = field(default_factory=dict)


def catalogue_history(versions: Iterable[tuple[int, list[dict[str, Any]]]]
                      ) -> dict[str, EntityHistory]:
    """Walk (version number, its catalogue) oldest first. An entity changes when anything
    of its definition but its fields does (name, key, relations...); a field when its own
    definition does. A definition that goes and comes back counts as introduced again."""
    out: dict[str, EntityHistory] = {}
    before: dict[str, dict[str, Any]] = {}
    for number, catalogue in versions:
        now = {e["id"]: e for e in catalogue}
        for eid, entity in now.items():
            history = out.setdefault(eid, EntityHistory())
            old = before.get(eid)
            _note(history.entity, number, _without_fields(old), _without_fields(entity))
            old_fields = {f["id"]: f for f in old["fields"]} if old else {}
            for f in entity["fields"]:
                _note(history.fields.setdefault(f["id"], Changes()), number,
                      old_fields.get(f["id"]), f)
        before = now
    return out


def _without_fields(entity: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if entity is None else {k: v for k, v in entity.items() if k != "fields"}


def _note(changes: Changes, number: int, old: Any, new: Any) -> None:
    if old is None:
        changes.introduced = number
        changes.changed = []
    elif old != new:
        changes.changed.append(number)
