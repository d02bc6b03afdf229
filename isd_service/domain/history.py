"""One record's history: every stored row of its key, and the version each value came in
(pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from isd_service.domain.catalogue import EntityDef
from isd_service.domain.delta import changed_fields
from isd_service.domain.records import decode, project


@dataclass
class Period:
    """The record as it stood in versions valid_from <= v < valid_to (None: still)."""

    valid_from: int
    valid_to: int | None
    record: dict[str, Any] | None  # None: deleted in these versions
    changed: set[str] = field(default_factory=set)  # fields whose value this period brought
    # The record as it stood just before (None: new, or back after a deletion).
    previous: dict[str, Any] | None = None


def record_history(entity: EntityDef,
                   rows: Iterable[tuple[int, int | None, str]]) -> list[Period]:
    """The periods of one record from its stored rows (valid_from, valid_to, data; oldest
    first), with gaps (deleted, then back) as periods with no record."""
    periods: list[Period] = []
    previous: dict[str, Any] | None = None
    for valid_from, valid_to, data in rows:
        if periods and periods[-1].valid_to is not None and periods[-1].valid_to < valid_from:
            periods.append(Period(periods[-1].valid_to, valid_from, None))
            previous = None
        record = project(entity, decode(data))
        changed = (set(entity.field_ids) if previous is None
                   else set(changed_fields(entity, previous, record)))
        periods.append(Period(valid_from, valid_to, record, changed, previous))
        previous = record
    if periods and periods[-1].valid_to is not None:
        periods.append(Period(periods[-1].valid_to, None, None))
    return periods


def introduced_in(periods: list[Period], entity: EntityDef) -> dict[str, int]:
    """For the latest values of a record: the version that brought each of them."""
    since: dict[str, int] = {}
    for period in periods:
        if period.record is None:
            since = {}
            continue
        for fid in entity.field_ids:
            if fid in period.changed or fid not in since:
                since[fid] = period.valid_from
    return since
