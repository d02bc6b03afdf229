"""Deltas: the net changes between two versions, so that snapshot(M) + delta(M, N) == snapshot(N).

A change carries the whole record as it stands in N (never a partial one: a field left empty in
an incremental file is how MDD's D0270 once disagreed with its D0269). An update also names the
fields whose values differ (``changed``, sorted) and, on request, the record as it stood in M
(``previous``): computed here once, for the delta files, the release preview and the pages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from isd_service.domain.catalogue import Catalogue, EntityDef, catalogue_changes
from isd_service.domain.manifest import PublishedVersion
from isd_service.domain.records import decode, key_dict, project
from isd_service.domain.snapshot import dumps

# (key, data, valid_from, valid_to) of the stored rows that started or ended between the
# two versions: only these can differ.
ChangedRows = Callable[[str, int, int], Iterable[tuple[str, str, int, int | None]]]


@dataclass
class KeyChange:
    """The net change of one key between two versions; data None means absent."""

    entity_id: str
    key: str
    before: str | None
    after: str | None

    @property
    def op(self) -> str:
        if self.before is None:
            return "insert"
        return "delete" if self.after is None else "update"


def net_changes(entity_id: str, rows: Iterable[tuple[str, str, int, int | None]], old: int,
                new: int) -> list[KeyChange]:
    """Net changes of an entity from version ``old`` to ``new`` (old < new), in key order,
    from the rows that started or ended in (old, new]."""
    before: dict[str, str] = {}
    after: dict[str, str] = {}
    for key, data, vfrom, vto in rows:
        if vfrom <= old and (vto is None or vto > old):
            before[key] = data
        if vfrom <= new and (vto is None or vto > new):
            after[key] = data
    changes = []
    for key in sorted(before.keys() | after.keys()):
        b, a = before.get(key), after.get(key)
        if b != a:
            changes.append(KeyChange(entity_id, key, b, a))
    return changes


def header(old: PublishedVersion | None, new: PublishedVersion,
           entity_id: str | None = None) -> dict[str, Any]:
    before = Catalogue.from_list(old.catalogue) if old else Catalogue([])
    after = Catalogue.from_list(new.catalogue)
    changes = catalogue_changes(before, after)
    if entity_id is not None:
        changes = [c for c in changes if c["entity"] == entity_id]
    return {
        "from": old.number if old else 0,
        "to": new.number,
        "from_sha256": old.sha256 if old else None,  # the empty base has no manifest
        "to_sha256": new.sha256,
        "catalogue": changes,
    }


def iter_changes(old: PublishedVersion | None, new: PublishedVersion, changed_rows: ChangedRows,
                 entity_id: str | None = None, *, previous: bool = False
                 ) -> Iterator[dict[str, Any]]:
    """Yield every net change from ``old`` (None: the empty base) to ``new``, entity by entity."""
    after = Catalogue.from_list(new.catalogue)
    before = Catalogue.from_list(old.catalogue) if old else Catalogue([])
    ids = list(after.entities) + [e for e in before.entities if e not in after]
    if entity_id is not None:
        ids = [e for e in ids if e == entity_id]
    first = old.number if old else 0
    for eid in ids:
        entity = after.get(eid) or before.get(eid)
        assert entity is not None
        for change in net_changes(eid, changed_rows(eid, first, new.number), first,
                                  new.number):
            yield change_dict(entity, change, previous=previous)


def changed_fields(entity: EntityDef, before: dict[str, Any], after: dict[str, Any]
                   ) -> list[str]:
    """The ids of the entity's fields whose values differ between two records, sorted."""
    return sorted(fid for fid in entity.field_ids if before.get(fid) != after.get(fid))


def change_dict(entity: EntityDef, change: KeyChange, *, previous: bool = False
                ) -> dict[str, Any]:
    """One change as a delta carries it: the key, and the whole record as it stands after;
    an update also its changed fields (and with ``previous`` the record before)."""
    if change.after is not None:
        record = project(entity, decode(change.after))
        out = {"entity": entity.id, "op": change.op, "key": key_dict(entity, record),
               "record": record}
        if change.before is not None:
            before = project(entity, decode(change.before))
            out["changed"] = changed_fields(entity, before, record)
            if previous:
                out["previous"] = before
        return out
    gone = decode(change.before) if change.before is not None else {}
    return {"entity": entity.id, "op": "delete", "key": key_dict(entity, gone),
            "record": None}


def staged_changes(entity: EntityDef, staged: Iterable[tuple[str, str, str | None]],
                   live: dict[str, str], *, previous: bool = False
                   ) -> Iterator[dict[str, Any]]:
    """A set of staged changes (key, op, data; in key order) as delta changes against the
    latest version's rows ``live``: what a release will change (its preview)."""
    for key, op, data in staged:
        after = None if op == "delete" else data
        yield change_dict(entity, KeyChange(entity.id, key, live.get(key), after),
                          previous=previous)


def as_json(head: dict[str, Any], changes: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A delta (or a release preview) as one JSON document: the header, then ``changes``."""
    yield dumps(head)[:-1] + ',"changes":['
    for i, change in enumerate(changes):
        yield ("," if i else "") + dumps(change)
    yield "]}\n"


def as_ndjson(head: dict[str, Any], changes: Iterable[dict[str, Any]]) -> Iterator[str]:
    yield dumps(head) + "\n"
    for change in changes:
        yield dumps(change) + "\n"
