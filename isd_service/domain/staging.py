"""Staging: the net change a load makes to the records, worked out on plain values.

A set of staged changes holds, per key, what the next version changes: an upsert (with the
new data) or a delete. A key whose staged data equals its base is not staged at all, so the
staged set is always the exact difference between its base and what will be published.

The open draft's base is the latest version with the frozen release's set on top (what the
frozen release will leave); a frozen set's base is the latest version.

A load changes a set by this rule. Its view is the base with the set on top. An incoming
record is inserted (its key is not in the view), unchanged (equal to the view's record) or
updated; the entry of a key it inserts or updates becomes the record, or goes when the record
equals the base's. A replace load also deletes every key of the view its files lack; a delete
load deletes the keys it names, and a key the view lacks is a problem. The entry of a deleted
key becomes a delete, or goes when the base lacks the key. Entries the load leaves as they
were keep the load that staged them. Loads run the rule as set-based SQL over the records
(adapters/repository.py, ``incoming_counts`` and ``stage_incoming``), so that a version is
never held in the process. When the set and its base hold nothing of an entity, the rule
makes every incoming record an insert: such a first load writes its rows straight into the
set (``stage_new``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

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


def merge_back(frozen: Iterable[tuple[str, str, str, str | None, int | None]],
               open_keys: set[tuple[str, str]]) -> list[tuple[str, str, str, str | None,
                                                            int | None]]:
    """The frozen changes (entity, key, op, data, load) a cancelled release gives back to the
    open draft: those whose key the open draft does not change itself (the open change is
    the later word on that key)."""
    return [change for change in frozen if (change[0], change[1]) not in open_keys]
