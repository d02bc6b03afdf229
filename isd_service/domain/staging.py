"""Staging: the net change a load makes to the records, worked out on plain values.

A set of staged changes holds, per key, what the next version changes: an upsert (with the
new data) or a delete. A key whose staged data equals its base is not staged at all, so the
staged set is always the exact difference between its base and what will be published.

The open draft's base is the latest version with the frozen release's set on top (what the
frozen release will leave); a frozen set's base is the latest version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from isd_service.domain.catalogue import EntityDef
from isd_service.domain.records import decode
from isd_service.domain.validation import Problem, Validated

MODES = ("replace", "upsert", "delete")
# Where a load goes: the open draft (of the next planned release), or, by override, the
# frozen set of the release that passed its change deadline.
TARGETS = ("open", "frozen")
UPSERT, DELETE = "upsert", "delete"

# key -> stored data
Rows = dict[str, str]
# key -> (op, data, load id): a staged change and the load that staged it
Staged = dict[str, tuple[str, str | None, int | None]]


@dataclass
class Counts:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0

    def add(self, other: Counts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.deleted += other.deleted
        self.unchanged += other.unchanged

    def to_dict(self) -> dict[str, int]:
        return {"inserted": self.inserted, "updated": self.updated,
                "deleted": self.deleted, "unchanged": self.unchanged}


@dataclass
class StagedEntity:
    """One entity's staged changes after a load, and what the load changed."""

    entity: EntityDef
    counts: Counts = field(default_factory=Counts)
    # key -> (op, data): the entity's whole staged set after this load; and before it
    draft: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    before: Staged = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return {key: (op, data) for key, (op, data, _) in self.before.items()} != self.draft

    def rows(self, load_id: int) -> Iterable[tuple[str, str, str | None, int | None]]:
        """(key, op, data, load id) of the new staged set; unchanged rows keep their load."""
        old = self.before
        for key, (op, data) in self.draft.items():
            prior = old.get(key)
            if prior is not None and prior[0] == op and prior[1] == data:
                yield key, op, data, prior[2]
            else:
                yield key, op, data, load_id


def overlay(base: Mapping[str, str], changes: Iterable[tuple[str, str, str | None]]) -> Rows:
    """The records as they stand with staged changes (key, op, data) on top of ``base``."""
    view = dict(base)
    for key, op, data in changes:
        if op == DELETE or data is None:
            view.pop(key, None)
        else:
            view[key] = data
    return view


def is_net(base: Mapping[str, str], key: str, op: str, data: str | None) -> bool:
    """Whether a staged change still changes anything against ``base``."""
    if op == DELETE:
        return key in base
    return base.get(key) != data


def stage(validated: Validated, mode: str, base: Rows, staged: Staged,
          problems: list[Problem]) -> StagedEntity:
    """Work out an entity's staged set after a load of ``validated`` in ``mode``.

    ``base`` is what the staged set is the net change against, ``staged`` the set as it
    stands. A delete of a key that is not there is a problem (added to ``problems``).
    """
    entity = validated.entity
    view = overlay(base, ((key, op, data) for key, (op, data, _) in staged.items()))
    result = StagedEntity(entity=entity, before=staged,
                          draft={key: (op, data) for key, (op, data, _) in staged.items()})
    counts = result.counts
    incoming = validated.data

    def set_draft(key: str, data: str | None) -> None:
        if data == base.get(key):
            result.draft.pop(key, None)
        else:
            result.draft[key] = (DELETE, None) if data is None else (UPSERT, data)

    if mode == DELETE:
        for key in incoming:
            if key not in view:
                problems.append(Problem("no record with this key in the draft to delete",
                                        entity.id, validated.file, validated.lines[key],
                                        entity.key[0], decode(incoming[key])[entity.key[0]]))
                continue
            counts.deleted += 1
            set_draft(key, None)
        return result
    for key, data in incoming.items():
        old = view.get(key)
        if old is None:
            counts.inserted += 1
        elif old == data:
            counts.unchanged += 1
            continue
        else:
            counts.updated += 1
        set_draft(key, data)
    if mode == "replace":
        for key in view.keys() - incoming.keys():
            counts.deleted += 1
            set_draft(key, None)
    return result


def merge_back(frozen: Iterable[tuple[str, str, str, str | None, int | None]],
               open_keys: set[tuple[str, str]]) -> list[tuple[str, str, str, str | None,
                                                            int | None]]:
    """The frozen changes (entity, key, op, data, load) a cancelled release gives back to the
    open draft: those whose key the open draft does not change itself (the open change is
    the later word on that key)."""
    return [change for change in frozen if (change[0], change[1]) not in open_keys]
