"""One record's history: every stored row of its key, and the version each value came in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isd_service.catalogue import EntityDef
from isd_service.models import Record
from isd_service.records import decode, project


@dataclass
class Period:
    """The record as it stood in versions valid_from <= v < valid_to (None: still)."""

    valid_from: int
    valid_to: int | None
    record: dict[str, Any] | None  # None: deleted in these versions
    changed: set[str] = field(default_factory=set)  # fields whose value this period brought


def rows_of(session: Session, entity_id: str, key: str) -> list[tuple[int, int | None, str]]:
    """Every row ever stored for one key of an entity, oldest first."""
    stmt = (select(Record.valid_from, Record.valid_to, Record.data)
            .where(Record.entity_id == entity_id, Record.key == key)
            .order_by(Record.valid_from))
    return [(vf, vt, data) for vf, vt, data in session.execute(stmt)]


def record_history(session: Session, entity: EntityDef, key: str) -> list[Period]:
    """The periods of one record, with gaps (deleted, then back) as periods with no record."""
    periods: list[Period] = []
    previous: dict[str, Any] | None = None
    for valid_from, valid_to, data in rows_of(session, entity.id, key):
        if periods and periods[-1].valid_to is not None and periods[-1].valid_to < valid_from:
            periods.append(Period(periods[-1].valid_to, valid_from, None))
            previous = None
        record = project(entity, decode(data))
        changed = {f for f in entity.field_ids
                   if previous is None or previous.get(f) != record.get(f)}
        periods.append(Period(valid_from, valid_to, record, changed))
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
