"""Versioned record rows: the SQL for snapshots, deltas, history and the publication step.

A row belongs to every version v with valid_from <= v < valid_to (valid_to null: still live).
Nothing here commits: the services that call it own their transaction.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Integer,
    Table,
    and_,
    delete,
    exists,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Session

from isd_service.models import (
    DraftChange,
    FrozenChange,
    Record,
    Release,
    ReleaseLoad,
    Version,
)

STREAM_BATCH = 5000
INSERT_BATCH = 5000


def alive_at(version: int):
    return and_(Record.valid_from <= version,
                or_(Record.valid_to.is_(None), Record.valid_to > version))


def latest_version(session: Session) -> Version | None:
    return session.scalars(select(Version).order_by(Version.number.desc()).limit(1)).first()


def get_version(session: Session, number: int) -> Version | None:
    return session.get(Version, number)


def iter_snapshot(
    session: Session,
    entity_id: str,
    version: int,
    *,
    after_key: str | None = None,
    limit: int | None = None,
) -> Generator[tuple[str, str]]:
    """Yield (key, data) of an entity as it stood in a version, in key order, streamed."""
    stmt = (select(Record.key, Record.data)
            .where(Record.entity_id == entity_id, alive_at(version))
            .order_by(Record.key))
    if after_key is not None:
        stmt = stmt.where(Record.key > after_key)
    if limit is not None:
        stmt = stmt.limit(limit)
    result = session.execute(stmt, execution_options={"yield_per": STREAM_BATCH})
    try:
        yield from result  # rows unpack as (key, data)
    finally:
        # A reader that stops early must not leave PostgreSQL's server-side cursor open.
        result.close()


def bulk_insert(session: Session, model: type[DeclarativeBase], columns: Sequence[str],
                rows: Iterable[Sequence[Any]]) -> int:
    """Insert many rows in the session's transaction; return how many.

    PostgreSQL takes them by COPY (one stream, no statement per row: a first load of a
    million records would otherwise spend most of its time in round trips); other
    databases by batches of executemany. ``rows`` may be a stream.
    """
    connection = session.connection()
    table = cast(Table, model.__table__)
    if connection.dialect.name == "postgresql":
        quote = connection.dialect.identifier_preparer.quote
        names = ", ".join(quote(c) for c in columns)
        statement = f"COPY {quote(table.name)} ({names}) FROM STDIN"
        driver = connection.connection.driver_connection
        assert driver is not None
        count = 0
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        return count
    count = 0
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(dict(zip(columns, row, strict=True)))
        if len(batch) == INSERT_BATCH:
            session.execute(insert(table), batch)
            count += len(batch)
            batch = []
    if batch:
        session.execute(insert(table), batch)
        count += len(batch)
    return count


def live_rows(session: Session, entity_id: str) -> dict[str, str]:
    """Return key -> data of an entity's rows in the latest version."""
    stmt = select(Record.key, Record.data).where(
        Record.entity_id == entity_id, Record.valid_to.is_(None))
    return dict(session.execute(stmt).all())


def has_live_rows(session: Session, entity_id: str) -> bool:
    stmt = select(Record.id).where(Record.entity_id == entity_id, Record.valid_to.is_(None))
    return session.execute(stmt.limit(1)).first() is not None


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


def changed_rows(session: Session, entity_id: str, old: int, new: int) -> list[KeyChange]:
    """Net changes of an entity from version ``old`` to ``new`` (old < new), in key order.

    Only rows that started or ended in (old, new] are read, so the cost follows the number of
    changes, not the size of the entity.
    """
    started = select(Record.key, Record.data, Record.valid_from, Record.valid_to).where(
        Record.entity_id == entity_id, Record.valid_from > old, Record.valid_from <= new)
    ended = select(Record.key, Record.data, Record.valid_from, Record.valid_to).where(
        Record.entity_id == entity_id, Record.valid_to > old, Record.valid_to <= new)
    before: dict[str, str] = {}
    after: dict[str, str] = {}
    for stmt in (started, ended):
        for key, data, vfrom, vto in session.execute(stmt):
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


# States in which a release that was frozen still holds its frozen set.
HOLDING_STATES = ("frozen", "failed", "missed")


def frozen_release(session: Session) -> Release | None:
    """The release whose frozen set waits to publish (there is at most one)."""
    return session.scalars(select(Release).where(
        Release.state.in_(HOLDING_STATES), Release.frozen_at.is_not(None))
        .order_by(Release.publish_at).limit(1)).first()


def open_release(session: Session) -> Release | None:
    """The next planned release: the one the open draft goes to."""
    return session.scalars(select(Release).where(Release.state == "planned")
                           .order_by(Release.publish_at, Release.id).limit(1)).first()


def load_release(session: Session, load_id: int) -> Release | None:
    """The release a load went to (none when no release was planned)."""
    return session.scalars(select(Release).join(
        ReleaseLoad, ReleaseLoad.release_id == Release.id)
        .where(ReleaseLoad.load_id == load_id)).first()


def frozen_changes(session: Session, entity_id: str) -> dict[str, tuple[str, str | None]]:
    """Return key -> (op, data) of an entity's frozen set (the release waiting to publish)."""
    stmt = select(FrozenChange.key, FrozenChange.op, FrozenChange.data).where(
        FrozenChange.entity_id == entity_id)
    return {key: (op, data) for key, op, data in session.execute(stmt)}


def base_rows(session: Session, entity_id: str) -> dict[str, str]:
    """Return key -> data of an entity as the next release will leave it.

    That is the latest version with the frozen set on top: the open draft is the net change
    against this, so that it is still exact once the frozen release has published.
    """
    rows = live_rows(session, entity_id)
    for key, (op, data) in frozen_changes(session, entity_id).items():
        if op == "delete" or data is None:
            rows.pop(key, None)
        else:
            rows[key] = data
    return rows


def apply_draft(session: Session, number: int, release_id: int | None = None) -> None:
    """Turn the staged draft (or a release's frozen set) into version ``number``'s rows.

    Every live row that the changes update or delete ends at ``number``; every upsert starts
    a new row there. Rows of older versions are never touched, so they stay exact.
    """
    source: type[DraftChange] | type[FrozenChange] = DraftChange
    only: list[Any] = []
    if release_id is not None:
        source = FrozenChange
        only = [FrozenChange.release_id == release_id]
    staged = exists().where(source.entity_id == Record.entity_id,
                            source.key == Record.key, *only)
    session.execute(update(Record).where(Record.valid_to.is_(None), staged)
                    .values(valid_to=number).execution_options(synchronize_session=False))
    session.execute(insert(Record).from_select(
        ["entity_id", "key", "data", "valid_from"],
        select(source.entity_id, source.key, source.data, literal(number, Integer()))
        .where(source.op == "upsert", *only)))
    session.execute(delete(source).where(*only))
