"""The declared relations of a whole version: checked before it publishes, shown in the
draft's review."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from isd_service.adapters import repository
from isd_service.domain.catalogue import Catalogue
from isd_service.domain.errors import Conflict
from isd_service.domain.relations import broken_relations, relations_to_check


class RelationsBroken(Conflict):
    """Records refer to records the version does not hold; nothing was published."""

    slug = "relations-broken"

    def __init__(self, found: list[dict[str, Any]], total: int):
        self.found = found
        self.total = total
        listed = f" (the first {len(found)} listed)" if total > len(found) else ""
        super().__init__(f"{total} record(s) break the catalogue's declared relations"
                         f"{listed}: each names a record the version does not hold")

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.found

    @property
    def extra(self) -> dict[str, Any]:
        return {"error_count": self.total}


def check_version(session: Session, catalogue: Catalogue, number: int,
                  changed: set[str] | None) -> None:
    """Refuse version ``number`` (its rows written, uncommitted) when a record breaks a
    relation. Only relations with a changed end are read (``changed``; None: all): the
    others held in the version before, which was checked the same way."""
    relations = relations_to_check(catalogue, changed)
    if not relations:
        return
    found, total = broken_relations(
        catalogue, lambda eid: repository.snapshot_data(session, eid, number), relations)
    if total:
        raise RelationsBroken(found, total)


def draft_review(session: Session, catalogue: Catalogue,
                 changed: set[str] | None) -> dict[str, Any]:
    """The records that would break a relation if the open draft published as it stands
    (relations with a changed end, as publication checks them)."""
    relations = relations_to_check(catalogue, changed)
    found, total = broken_relations(
        catalogue, lambda eid: repository.draft_rows(session, eid).values(), relations)
    return {"checked": [fk.describe(e.id) for e, fk in relations],
            "broken": found, "broken_count": total}
