"""Key ranges in the store: the range of each record, computed by the database as rows are
written, and each entity's range hashes, versioned like records (domain.records, rule 2).

A publication re-hashes only the ranges its changes touched: the rows that started or ended
at the new version name those ranges, and the partial index on (entity, range, key) over
live rows hands back exactly their records, range by range in key order.
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Iterable
from typing import cast as cast_type

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Table,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import BIT
from sqlalchemy.orm import InstrumentedAttribute, Session

from isd_service.adapters.orm import Record, RecordRange
from isd_service.domain.records import RANGE_BITS, RangeHash

STREAM_BATCH = 5000
RANGES = cast_type(Table, RecordRange.__table__)
# Ranges named per statement (closed, or read): well under SQLite's limit on bound parameters.
IN_BATCH = 1000


def key_range_sql(session: Session,
                  key: InstrumentedAttribute[str] | ColumnElement[str]) -> ColumnElement[int]:
    """SQL for domain.records.key_range(key): the first hex digits of the key's SHA-256."""
    if session.get_bind().dialect.name == "postgresql":
        digits = func.substr(func.encode(func.sha256(func.convert_to(key, "UTF8")), "hex"),
                             1, RANGE_BITS // 4)
        return cast(cast(literal("x") + digits, BIT(RANGE_BITS)), Integer)
    # adapters.database registers the domain's function on every SQLite connection.
    return func.isd_key_range(key, type_=Integer)


def touched(session: Session, entity_id: str, number: int) -> set[int]:
    """The ranges of the rows that started or ended at version ``number``."""
    stmt = (select(Record.key_range).distinct()
            .where(Record.entity_id == entity_id,
                   or_(Record.valid_from == number, Record.valid_to == number)))
    return set(session.scalars(stmt))


def live_rows(session: Session, entity_id: str, *, only: Collection[int] | None = None
              ) -> Generator[tuple[int, str]]:
    """(range, data) of an entity's live rows, by range then key, streamed; with ``only``,
    the rows of those ranges alone."""
    base = (select(Record.key_range, Record.data)
            .where(Record.entity_id == entity_id, Record.valid_to.is_(None))
            .order_by(Record.key_range, Record.key))
    if only is None:
        yield from _stream(session, base)
        return
    if len(only) > IN_BATCH:
        # Many ranges (a bulk change): one walk of the entity in range order reads each row
        # once; a thousand ranges at a time, PostgreSQL sorted each batch's rows and took
        # ten times as long (300,000 new rows: 40 s against 4 s).
        wanted_set = set(only)
        yield from (row for row in _stream(session, base) if row[0] in wanted_set)
        return
    # The ranges as a list of values, a batch at a time: each is one descent of the
    # (entity, range, key) index, whatever the size of the entity (a join with the touched
    # ranges may walk the entity's whole index instead).
    wanted = sorted(only)
    for start in range(0, len(wanted), IN_BATCH):
        yield from _stream(session, base.where(
            Record.key_range.in_(wanted[start:start + IN_BATCH])))


def _stream(session: Session, stmt: Select[int, str]) -> Generator[tuple[int, str]]:
    result = session.execute(stmt, execution_options={"yield_per": STREAM_BATCH})
    try:
        yield from result  # rows unpack as (range, data)
    finally:
        result.close()


def live_ranges(session: Session, entity_id: str) -> dict[int, RangeHash]:
    """The latest version's ranges of an entity (none when it was published under rule 1)."""
    stmt = select(RecordRange.key_range, RecordRange.records, RecordRange.sha256).where(
        RecordRange.entity_id == entity_id, RecordRange.valid_to.is_(None))
    return {row[0]: RangeHash(*row) for row in session.execute(stmt)}


def save(session: Session, entity_id: str, number: int, changed: Iterable[RangeHash],
         emptied: Collection[int]) -> None:
    """Version ``number``'s ranges: ``changed`` ones replace the live ones, ``emptied`` end."""
    changed = list(changed)
    ending = sorted({r.key_range for r in changed} | set(emptied))
    for start in range(0, len(ending), IN_BATCH):
        session.execute(
            update(RecordRange)
            .where(RecordRange.entity_id == entity_id, RecordRange.valid_to.is_(None),
                   RecordRange.key_range.in_(ending[start:start + IN_BATCH]))
            .values(valid_to=number).execution_options(synchronize_session=False))
    if changed:
        # Core executemany (no ORM bookkeeping, no ids fetched back): a first publication
        # writes every range of every entity.
        session.connection().execute(insert(RANGES), [
            {"entity_id": entity_id, "key_range": r.key_range, "records": r.records,
             "sha256": r.sha256, "valid_from": number} for r in changed])


def ranges_at(session: Session, entity_id: str, version: int) -> list[RangeHash]:
    """An entity's ranges as they stood in ``version``, in range order."""
    stmt = (select(RecordRange.key_range, RecordRange.records, RecordRange.sha256)
            .where(RecordRange.entity_id == entity_id, RecordRange.valid_from <= version,
                   or_(RecordRange.valid_to.is_(None), RecordRange.valid_to > version))
            .order_by(RecordRange.key_range))
    return [RangeHash(*row) for row in session.execute(stmt)]
