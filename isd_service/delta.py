"""Deltas: the net changes between two versions, so that snapshot(M) + delta(M, N) == snapshot(N).

A change carries the whole record as it stands in N (never a partial one: a field left empty in
an incremental file is how MDD's D0270 once disagreed with its D0269).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from isd_service.catalogue import Catalogue, catalogue_changes
from isd_service.models import Version
from isd_service.records import decode, key_dict, project
from isd_service.snapshot import dumps
from isd_service.store import changed_rows


def header(old: Version | None, new: Version, entity_id: str | None = None) -> dict[str, Any]:
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


def iter_changes(
    session: Session, old: Version | None, new: Version, entity_id: str | None = None
) -> Iterator[dict[str, Any]]:
    """Yield every net change from ``old`` (None: the empty base) to ``new``, entity by entity."""
    after = Catalogue.from_list(new.catalogue)
    before = Catalogue.from_list(old.catalogue) if old else Catalogue([])
    ids = list(after.entities) + [e for e in before.entities if e not in after]
    if entity_id is not None:
        ids = [e for e in ids if e == entity_id]
    for eid in ids:
        entity = after.get(eid) or before.get(eid)
        assert entity is not None
        for change in changed_rows(session, eid, old.number if old else 0, new.number):
            if change.after is not None:
                record = project(entity, decode(change.after))
                yield {"entity": eid, "op": change.op, "key": key_dict(entity, record),
                       "record": record}
            else:
                assert change.before is not None
                gone = decode(change.before)
                yield {"entity": eid, "op": "delete", "key": key_dict(entity, gone),
                       "record": None}


def as_json(session: Session, old: Version | None, new: Version,
            entity_id: str | None) -> Iterator[str]:
    head = dumps(header(old, new, entity_id))
    yield head[:-1] + ',"changes":['
    for i, change in enumerate(iter_changes(session, old, new, entity_id)):
        yield ("," if i else "") + dumps(change)
    yield "]}\n"


def as_ndjson(session: Session, old: Version | None, new: Version,
              entity_id: str | None) -> Iterator[str]:
    yield dumps(header(old, new, entity_id)) + "\n"
    for change in iter_changes(session, old, new, entity_id):
        yield dumps(change) + "\n"
