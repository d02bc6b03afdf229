"""The store's SQL: versioned records, staged changes, versions, releases and the catalogue.

A record row belongs to every version v with valid_from <= v < valid_to (valid_to null: still
live). Staged changes are the open draft (``frozen_for`` null) or a release's frozen set.
Nothing here commits: the service layer's unit of work owns the transaction.
"""

from __future__ import annotations

import re
import time
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import chain, repeat
from typing import Any, cast

import psycopg
from sqlalchemy import (
    Column,
    ColumnElement,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import Text

from isd_service.adapters.key_ranges import key_range_sql
from isd_service.adapters.orm import (
    FIELD_INDEX_PREFIX,
    CatalogueEntity,
    CatalogueField,
    KeyText,
    Load,
    Record,
    Release,
    ReleaseLoad,
    StagedChange,
    Version,
    field_index_ddl,
    field_value_sql,
    sql_identifier,
)
from isd_service.domain.catalogue import (
    Catalogue,
    EntityDef,
    FieldDef,
    ForeignKey,
    PublishedCatalogues,
)
from isd_service.domain.lifecycle import HOLDING, SCHEDULED, ReleaseState
from isd_service.domain.record_query import QueryTooExpensive, RecordQuery
from isd_service.domain.staging import Counts, Rows, Staged, overlay
from isd_service.domain.validation import CheckedRows

STREAM_BATCH = 5000
INSERT_BATCH = 5000
# How many SQLite VM steps pass between two looks at a query's clock (a few microseconds).
PROGRESS_STEPS = 2000


# --- versions -------------------------------------------------------------------------------

def latest_version(session: Session) -> Version | None:
    return session.scalars(select(Version).order_by(Version.number.desc()).limit(1)).first()


def get_version(session: Session, number: int) -> Version | None:
    return session.get(Version, number) if 1 <= number <= 2**31 - 1 else None


def versions_page(session: Session, limit: int, below: int | None = None) -> list[Version]:
    """Versions newest first, below ``below`` when given."""
    stmt = select(Version).order_by(Version.number.desc()).limit(limit)
    if below is not None:
        stmt = stmt.where(Version.number < below)
    return list(session.scalars(stmt))


def version_numbers(session: Session) -> list[int]:
    return list(session.scalars(select(Version.number).order_by(Version.number.desc())))


def live_on(session: Session, day: Any) -> Version | None:
    """The newest published version gone live on or before ``day``."""
    return session.scalars(select(Version).where(Version.go_live_date.is_not(None),
                                                 Version.go_live_date <= day)
                           .order_by(Version.number.desc()).limit(1)).first()


# --- records --------------------------------------------------------------------------------

def alive_at(version: int) -> ColumnElement[bool]:
    return and_(Record.valid_from <= version,
                or_(Record.valid_to.is_(None), Record.valid_to > version))


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


PUBLISHED_CATALOGUES = PublishedCatalogues()


def catalogue_of(version: Version) -> Catalogue:
    """The catalogue ``version`` was published with, parsed once per process (shared: read
    it, never change it)."""
    return PUBLISHED_CATALOGUES.get(version.catalogue_sha256, lambda: version.catalogue)


def published_catalogue(session: Session, number: int | None) -> tuple[int, Catalogue] | None:
    """(number, catalogue) of version ``number`` (None: the latest), or None if there is no
    such version: one small row read, the catalogue parsed only the first time its hash is
    seen (see catalogue_of)."""
    stmt = select(Version.number, Version.catalogue_sha256)
    if number is None:
        stmt = stmt.order_by(Version.number.desc()).limit(1)
    elif 1 <= number <= 2**31 - 1:
        stmt = stmt.where(Version.number == number)
    else:
        return None
    row = session.execute(stmt).first()
    if row is None:
        return None
    found, sha256 = row
    return found, PUBLISHED_CATALOGUES.get(sha256, lambda: session.scalars(
        select(Version.catalogue).where(Version.number == found)).one())


def records_page(session: Session, entity: EntityDef, version: int, query: RecordQuery, *,
                 after_key: str | None, limit: int, budget_ms: int) -> list[tuple[str, str]]:
    """(key, data) of up to ``limit`` + 1 records of a version that match ``query``, in key
    order after ``after_key``: the one past ``limit`` says that there is a next page.

    Everything is filtered in SQL, on the expressions the field indexes hold (see
    orm.field_index_ddl): an equality on one field reads its index from the cursor on and
    stops at the page's end. A query that runs past ``budget_ms`` is stopped by the database
    and refused with QueryTooExpensive.
    """
    dialect = session.get_bind().dialect.name

    def value(field_id: str) -> ColumnElement[Any]:
        return literal_column(field_value_sql(dialect, field_id), Text())

    def param(item: Any) -> Any:
        # PostgreSQL's ->> gives text; SQLite's json_extract the JSON scalar itself.
        return str(item) if dialect == "postgresql" else item

    alive = alive_at(version)
    if dialect == "sqlite":
        # Unary + keeps SQLite's planner off the valid_from index (all the entity's rows,
        # then a sort) and on an index that yields the page in key order.
        alive = and_(literal_column("+record.valid_from") <= version,
                     or_(Record.valid_to.is_(None), Record.valid_to > version))
    # The entity as a literal: SQLite uses a partial index only for a query that names the
    # same constant as the index's WHERE (ids are checked: see orm.sql_identifier).
    stmt = (select(Record.key, Record.data)
            .where(Record.entity_id == literal_column(f"'{sql_identifier(entity.id)}'"),
                   alive)
            .order_by(Record.key).limit(limit + 1))
    for field_id, values in query.equals.items():
        present = [param(v) for v in values if v is not None]
        conditions = []
        if len(present) == 1:
            conditions.append(value(field_id) == present[0])
        elif present:
            conditions.append(value(field_id).in_(present))
        if None in values:
            conditions.append(value(field_id).is_(None))
        stmt = stmt.where(or_(*conditions))
    if query.effective_on is not None and entity.effective_from is not None:
        day = query.effective_on.isoformat()

        def date_of(field_id: str) -> ColumnElement[Any]:
            # ISO dates compare as text, by code point (not by PostgreSQL's locale).
            expr = value(field_id)
            return expr.collate("C") if dialect == "postgresql" else expr

        start = date_of(entity.effective_from)
        stmt = stmt.where(or_(start.is_(None), start <= day))
        if entity.effective_to is not None:
            end = date_of(entity.effective_to)
            stmt = stmt.where(or_(end.is_(None), end >= day))
    if after_key is not None:
        stmt = stmt.where(Record.key > after_key)
    with time_budget(session, entity, budget_ms):
        return [(key, data) for key, data in session.execute(stmt)]


@contextmanager
def time_budget(session: Session, entity: EntityDef, budget_ms: int) -> Iterator[None]:
    """Let the statements inside run for at most ``budget_ms`` each (QueryTooExpensive).

    PostgreSQL: statement_timeout, set for the rest of the transaction (SET LOCAL): a read
    request's transaction ends with its query, and putting the old value back would cost
    every filtered page one more round trip. SQLite: a progress handler that interrupts
    the statement once the time is up, removed afterwards.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.scalar(select(func.set_config("statement_timeout", str(budget_ms), True)))
        try:
            yield
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != "57014":  # query_canceled
                raise
            session.rollback()
            raise QueryTooExpensive(entity, budget_ms) from None
        return
    driver = connection.connection.driver_connection
    assert driver is not None
    deadline = time.monotonic() + budget_ms / 1000

    def over_time() -> int:
        return 1 if time.monotonic() > deadline else 0

    driver.set_progress_handler(over_time, PROGRESS_STEPS)
    try:
        yield
    except OperationalError as exc:
        if "interrupted" not in str(exc.orig):
            raise
        session.rollback()
        raise QueryTooExpensive(entity, budget_ms) from None
    finally:
        driver.set_progress_handler(None, 0)


def snapshot_data(session: Session, entity_id: str, version: int) -> Generator[str]:
    """The stored data of an entity's records in a version, in key order, streamed."""
    for _key, data in iter_snapshot(session, entity_id, version):
        yield data


def live_rows(session: Session, entity_id: str) -> Rows:
    """Return key -> data of an entity's rows in the latest version."""
    stmt = select(Record.key, Record.data).where(
        Record.entity_id == entity_id, Record.valid_to.is_(None))
    return dict(session.execute(stmt).all())


def has_live_rows(session: Session, entity_id: str) -> bool:
    stmt = select(Record.id).where(Record.entity_id == entity_id, Record.valid_to.is_(None))
    return session.execute(stmt.limit(1)).first() is not None


def rows_changed(session: Session, entity_id: str, old: int, new: int) -> bool:
    """Whether any of an entity's rows started or ended in (old, new]: whether it changed."""
    stmt = select(Record.id).where(Record.entity_id == entity_id, or_(
        and_(Record.valid_from > old, Record.valid_from <= new),
        and_(Record.valid_to > old, Record.valid_to <= new))).limit(1)
    return session.execute(stmt).first() is not None


def rows_between(session: Session, entity_id: str, old: int,
                 new: int) -> list[tuple[str, str, int, int | None]]:
    """(key, data, valid_from, valid_to) of the rows that started or ended in (old, new].

    Only these rows can differ between the two versions, so a delta's cost follows the
    number of changes, not the size of the entity (indexes on valid_from and valid_to).
    """
    columns = (Record.key, Record.data, Record.valid_from, Record.valid_to)
    started = select(*columns).where(
        Record.entity_id == entity_id, Record.valid_from > old, Record.valid_from <= new)
    ended = select(*columns).where(
        Record.entity_id == entity_id, Record.valid_to > old, Record.valid_to <= new)
    return [(k, d, f, t) for stmt in (started, ended) for k, d, f, t in session.execute(stmt)]


def key_rows(session: Session, entity_id: str, key: str) -> list[tuple[int, int | None, str]]:
    """Every row ever stored for one key of an entity, oldest first."""
    stmt = (select(Record.valid_from, Record.valid_to, Record.data)
            .where(Record.entity_id == entity_id, Record.key == key)
            .order_by(Record.valid_from))
    return [(vf, vt, data) for vf, vt, data in session.execute(stmt)]


def bulk_insert(session: Session, model: type[DeclarativeBase] | Table, columns: Sequence[str],
                rows: Iterable[Sequence[Any]]) -> int:
    """Insert many rows in the session's transaction; return how many.

    PostgreSQL takes them by COPY (one stream, no statement per row: a first load of a
    million records would otherwise spend most of its time in round trips); other
    databases by batches of executemany. ``rows`` may be a stream.
    """
    connection = session.connection()
    table = model if isinstance(model, Table) else cast(Table, model.__table__)
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


# --- staged changes -------------------------------------------------------------------------

def in_set(frozen_for: int | None) -> ColumnElement[bool]:
    """The staged changes of the open draft (None) or of a release's frozen set."""
    if frozen_for is None:
        return StagedChange.frozen_for.is_(None)
    return StagedChange.frozen_for == frozen_for


def staged(session: Session, entity_id: str, frozen_for: int | None = None) -> Staged:
    """key -> (op, data, load id) of an entity's changes in one set."""
    stmt = select(StagedChange.key, StagedChange.op, StagedChange.data, StagedChange.load_id
                  ).where(StagedChange.entity_id == entity_id, in_set(frozen_for))
    return {key: (op, data, load_id) for key, op, data, load_id in session.execute(stmt)}


def staged_in_key_order(session: Session, entity_id: str,
                        frozen_for: int | None) -> list[tuple[str, str, str | None]]:
    stmt = (select(StagedChange.key, StagedChange.op, StagedChange.data)
            .where(StagedChange.entity_id == entity_id, in_set(frozen_for))
            .order_by(StagedChange.key))
    return [(key, op, data) for key, op, data in session.execute(stmt)]


def staged_entities(session: Session, frozen_for: int | None = None) -> set[str]:
    """The entities a set changes."""
    return set(session.scalars(select(StagedChange.entity_id).where(in_set(frozen_for))
                               .distinct()))


def has_staged(session: Session, frozen_for: int | None = None) -> bool:
    stmt = select(StagedChange.id).where(in_set(frozen_for)).limit(1)
    return session.execute(stmt).first() is not None


def count_staged(session: Session, frozen_for: int | None = None) -> int:
    return session.scalar(select(func.count()).select_from(StagedChange)
                          .where(in_set(frozen_for))) or 0


def has_staged_upserts(session: Session, entity_id: str) -> bool:
    """Whether the open draft adds or changes records of an entity."""
    stmt = select(StagedChange.id).where(StagedChange.entity_id == entity_id,
                                         StagedChange.op == "upsert", in_set(None)).limit(1)
    return session.execute(stmt).first() is not None


def base_rows(session: Session, entity_id: str) -> Rows:
    """key -> data of an entity as the next release will leave it: the latest version with
    the frozen set (if any) on top; the open draft is the net change against this."""
    frozen = frozen_release(session)
    live = live_rows(session, entity_id)
    if frozen is None:
        return live
    return overlay(live, ((key, op, data) for key, (op, data, _) in
                          staged(session, entity_id, frozen.id).items()))


def draft_rows(session: Session, entity_id: str) -> Rows:
    """key -> data of an entity as the open draft stands (its base with its changes on top)."""
    return overlay(base_rows(session, entity_id),
                   ((key, op, data) for key, (op, data, _) in
                    staged(session, entity_id).items()))


def replace_staged(session: Session, entity_id: str, frozen_for: int | None,
                   rows: Iterable[tuple[str, str, str | None, int | None]]) -> None:
    """Replace an entity's changes in one set by ``rows`` (key, op, data, load id)."""
    session.execute(delete(StagedChange).where(StagedChange.entity_id == entity_id,
                                               in_set(frozen_for)))
    bulk_insert(session, StagedChange,
                ["frozen_for", "entity_id", "key", "op", "data", "load_id"],
                ((frozen_for, entity_id, key, op, data, load_id)
                 for key, op, data, load_id in rows))


# --- a load's incoming rows, compared with the records in SQL -------------------------------
# A load writes its checked rows (key text, stored data, line) to a temporary table as they
# are read, then finds duplicate keys and its net change with set-based statements: the
# version is never held in the process, on either database.
_incoming_meta = MetaData()
INCOMING = Table("load_incoming", _incoming_meta,
                 Column("part", Integer, nullable=False),
                 Column("key", KeyText, nullable=False),
                 Column("data", Text, nullable=False),
                 Column("line", Integer),
                 prefixes=["TEMPORARY"])
TOUCHED = Table("load_touched", _incoming_meta,
                Column("key", KeyText, nullable=False),
                Column("op", String(8), nullable=False),
                Column("data", Text),
                prefixes=["TEMPORARY"])


def start_incoming(session: Session) -> None:
    """Create (empty) the temporary tables of a load in the session's transaction."""
    connection = session.connection()
    for table in (INCOMING, TOUCHED):
        table.drop(connection, checkfirst=True)
        table.create(connection)
    if connection.dialect.name == "postgresql":
        # The load's joins and duplicate search hash a whole file's keys: in memory, not on
        # disk. The server's memory, for this transaction only.
        session.execute(text("SET LOCAL work_mem = '256MB'"))


def end_incoming(session: Session) -> None:
    connection = session.connection()
    for table in (INCOMING, TOUCHED):
        table.drop(connection, checkfirst=True)


def add_incoming(session: Session, part: int, batches: Iterable[CheckedRows], *,
                 lines: bool = True) -> int:
    """Write one file's checked rows (``part``) as they come; return how many. Without
    ``lines`` the rows are written with no line (rows a load adds, not read from a file)."""
    return write_checked(session, INCOMING.name, {"part": part}, batches, lines=lines)


def stage_new(session: Session, entity_id: str, frozen_for: int | None, load_id: int,
              batches: Iterable[CheckedRows]) -> int | None:
    """Write the checked rows of an entity the set and its base do not hold at all (its
    first load) straight into the set as upserts; return how many.

    The set's unique key refuses a key met twice: then nothing is written and the answer
    is None, and the caller reads the file the general way, which names every duplicate.
    """
    constants: dict[str, Any] = {"entity_id": entity_id, "op": "upsert", "load_id": load_id}
    if frozen_for is not None:
        constants["frozen_for"] = frozen_for
    try:
        with session.begin_nested():
            return write_checked(session, StagedChange.__tablename__, constants, batches,
                                 lines=False)
    except (IntegrityError, psycopg.errors.UniqueViolation) as exc:
        if isinstance(exc, IntegrityError) and "UNIQUE" not in str(exc.orig):
            raise
        return None


_COPY_SPECIAL = re.compile(r"[\\\t\n\r%]")


def write_checked(session: Session, table: str, constants: dict[str, Any],
                  batches: Iterable[CheckedRows], *, lines: bool) -> int:
    """Insert checked rows (key, data[, line]) with the same ``constants`` in each row, a
    batch at a time; return how many.

    PostgreSQL takes each batch as one block of COPY text, formatted in one pass over the
    batch; SQLite by executemany. The constants are numbers and identifiers: none needs
    escaping, and none may be None (leave such a column to its default).
    """
    names = [*constants, "key", "data"] + (["line"] if lines else [])
    connection = session.connection()
    count = 0
    if connection.dialect.name == "postgresql":
        if any(value is None or _COPY_SPECIAL.search(str(value)) for value in constants.values()):
            raise ValueError(f"constants COPY text would have to escape: {constants!r}")
        head = "".join(f"{value}\t" for value in constants.values())
        driver = connection.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor, cursor.copy(
                f"COPY {table} ({', '.join(names)}) FROM STDIN",
                # A thread sends each block while the next is read and checked, so that
                # this process and the server work at once.
                writer=psycopg.copy.QueuedLibpqWriter(cursor)) as copy:
            for batch in batches:
                # One join over the batch's texts: no formatting per row. strict=False:
                # the repeats are endless, the columns all of the batch's length.
                pieces = [repeat(head), batch.keys, repeat("\t"), batch.data] + (
                    [repeat("\t"), map(str, batch.lines)] if lines else []) + [repeat("\n")]
                block = "".join(chain.from_iterable(zip(*pieces, strict=False)))
                # Only keys and data may hold a backslash, COPY text's one escape here
                # (checked texts hold no tab, newline or other control character).
                copy.write(block.replace("\\", "\\\\") if "\\" in block else block)
                count += len(batch.keys)
        return count
    statement = (f"INSERT INTO {table} ({', '.join(names)}) "
                 f"VALUES ({', '.join('?' for _ in names)})")
    fixed = tuple(constants.values())
    for batch in batches:
        values = (zip(batch.keys, batch.data, batch.lines, strict=True) if lines
                  else zip(batch.keys, batch.data, strict=True))
        if batch.keys:
            connection.exec_driver_sql(statement, [fixed + row for row in values])
            count += len(batch.keys)
    return count


def index_incoming(session: Session) -> None:
    """Index the incoming rows once written (cheaper than indexing row by row).

    PostgreSQL joins by hashing, so the parts alone are indexed there (rows of one part are
    together); SQLite joins through indexes, and would otherwise build one per statement.
    """
    if session.connection().dialect.name == "postgresql":
        session.execute(text("CREATE INDEX load_incoming_part ON load_incoming (part)"))
        session.execute(text("ANALYZE load_incoming"))
    else:
        session.execute(text("CREATE INDEX load_incoming_key ON load_incoming (part, key)"))


def incoming_duplicates(session: Session, part: int) -> list[tuple[int, int, str]]:
    """(line, first line, data) of each incoming row whose key an earlier row has, in line
    order."""
    stmt = text("""
        SELECT i.line, f.first_line, i.data
        FROM load_incoming i
        JOIN (SELECT key, min(line) AS first_line FROM load_incoming
              WHERE part = :part GROUP BY key HAVING count(*) > 1) f ON f.key = i.key
        WHERE i.part = :part AND i.line > f.first_line
        ORDER BY i.line""")
    return [(line, first, data) for line, first, data in
            session.execute(stmt, {"part": part})]


def incoming_rows(session: Session, part: int) -> list[tuple[str, str, int | None]]:
    """(key, data, line) of one part's incoming rows in line order (for small loads)."""
    stmt = text("SELECT key, data, line FROM load_incoming WHERE part = :part ORDER BY line")
    return [(key, data, line) for key, data, line in session.execute(stmt, {"part": part})]


def _set_sql(frozen_for: int | None, alias: str) -> str:
    return (f"{alias}.frozen_for IS NULL" if frozen_for is None
            else f"{alias}.frozen_for = :target")


def _staging_sql(frozen_for: int | None, base_frozen: int | None) -> tuple[str, str]:
    """The SQL of a set's changes (S: key, op, data) and of their base (B: key, data)."""
    staged_sql = (f"SELECT s.key, s.op, s.data FROM staged_change s "
                  f"WHERE s.entity_id = :entity AND {_set_sql(frozen_for, 's')}")
    live = "SELECT r.key, r.data FROM record r WHERE r.entity_id = :entity AND r.valid_to IS NULL"
    if base_frozen is None:
        return staged_sql, live
    base = (f"SELECT f.key, f.data FROM staged_change f WHERE f.entity_id = :entity "
            f"AND f.frozen_for = :base AND f.op = 'upsert' UNION ALL {live} AND NOT EXISTS "
            f"(SELECT 1 FROM staged_change g WHERE g.entity_id = :entity "
            f"AND g.frozen_for = :base AND g.key = r.key)")
    return staged_sql, base


def _incoming_changes_sql(frozen_for: int | None, base_frozen: int | None,
                          mode: str) -> tuple[str, str, str]:
    """Three SELECTs over one part's incoming rows against the set (S) and its base (B):
    the counts, the new staged entries (key, op, data; op 'none': no entry), and (delete
    mode) the rows whose key is not in the view (line, data).

    The rule (see domain/staging.py): the view V is B with S on top. An incoming record is
    inserted (not in V), unchanged (equal to V) or updated; a changed key's entry becomes
    the record, or nothing when the record equals B. A replace load deletes what V holds
    and the file does not; a delete load deletes keys V holds and refuses the others. A
    deleted key's entry is a delete, or nothing when B lacks the key.
    """
    staged_sql, base_sql = _staging_sql(frozen_for, base_frozen)
    joined = (f"FROM load_incoming i LEFT JOIN ({staged_sql}) s ON s.key = i.key "
              f"LEFT JOIN ({base_sql}) b ON b.key = i.key WHERE i.part = :part")
    view = "CASE WHEN s.key IS NOT NULL THEN s.data ELSE b.data END"
    if mode == "delete":
        in_view = ("(CASE WHEN s.key IS NOT NULL THEN (CASE WHEN s.op = 'upsert' THEN 1 "
                   "ELSE 0 END) WHEN b.key IS NOT NULL THEN 1 ELSE 0 END) = 1")
        counts = (f"SELECT 0, 0, COALESCE(SUM(CASE WHEN {in_view} THEN 1 ELSE 0 END), 0), 0 "
                  f"{joined}")
        changes = (f"SELECT i.key AS key, CASE WHEN b.key IS NOT NULL THEN 'delete' "
                   f"ELSE 'none' END AS op, NULL AS data {joined} AND {in_view}")
        missing = f"SELECT i.line, i.data {joined} AND NOT ({in_view}) ORDER BY i.line"
        return counts, changes, missing
    counts = (f"SELECT COALESCE(SUM(CASE WHEN v IS NULL THEN 1 ELSE 0 END), 0), "
              f"COALESCE(SUM(CASE WHEN v <> data THEN 1 ELSE 0 END), 0), 0, "
              f"COALESCE(SUM(CASE WHEN v = data THEN 1 ELSE 0 END), 0) "
              f"FROM (SELECT i.data AS data, {view} AS v {joined}) x")
    changes = (f"SELECT i.key AS key, CASE WHEN b.data = i.data THEN 'none' ELSE 'upsert' "
               f"END AS op, i.data AS data {joined} AND ({view} IS NULL OR {view} <> i.data)")
    return counts, changes, ""


def _replaced_sql(frozen_for: int | None, base_frozen: int | None) -> str:
    """A replace load's deletes: (key, op, data) of the keys the view holds and the file
    does not."""
    staged_sql, base_sql = _staging_sql(frozen_for, base_frozen)
    absent = ("NOT EXISTS (SELECT 1 FROM load_incoming i WHERE i.part = :part "
              "AND i.key = v.key)")
    return (f"SELECT v.key AS key, CASE WHEN v.in_base = 1 THEN 'delete' ELSE 'none' END "
            f"AS op, NULL AS data "
            f"FROM (SELECT s.key, CASE WHEN b.key IS NULL THEN 0 ELSE 1 END AS in_base "
            f"FROM ({staged_sql}) s LEFT JOIN ({base_sql}) b ON b.key = s.key "
            f"WHERE s.op = 'upsert' "
            f"UNION ALL SELECT b.key, 1 FROM ({base_sql}) b WHERE NOT EXISTS "
            f"(SELECT 1 FROM ({staged_sql}) s WHERE s.key = b.key)) v WHERE {absent}")


def _params(entity_id: str, part: int, frozen_for: int | None,
            base_frozen: int | None) -> dict[str, Any]:
    return {"entity": entity_id, "part": part, "target": frozen_for, "base": base_frozen}


def holds_nothing(session: Session, entity_id: str, frozen_for: int | None,
                  base_frozen: int | None) -> bool:
    """Whether the set ``frozen_for`` and its base hold nothing of the entity: a load of it
    is its first, and writes its rows straight into the set (``stage_new``)."""
    params = _params(entity_id, 0, frozen_for, base_frozen)
    staged_sql, base_sql = _staging_sql(frozen_for, base_frozen)
    return all(session.execute(text(f"SELECT 1 FROM ({sql}) x LIMIT 1"), params).first() is None
               for sql in (staged_sql, base_sql))


def incoming_counts(session: Session, entity_id: str, part: int, mode: str,
                    frozen_for: int | None, base_frozen: int | None
                    ) -> tuple[Counts, list[tuple[int, str]]]:
    """What a load of one part would change in the set ``frozen_for`` (whose base is the
    latest version with the frozen set ``base_frozen`` on top, if any): its counts, and
    (delete mode) (line, data) of the rows whose key is not there to delete."""
    params = _params(entity_id, part, frozen_for, base_frozen)
    counts_sql, _, missing_sql = _incoming_changes_sql(frozen_for, base_frozen, mode)
    inserted, updated, deleted, unchanged = session.execute(text(counts_sql), params).one()
    counts = Counts(inserted=int(inserted), updated=int(updated), deleted=int(deleted),
                    unchanged=int(unchanged))
    missing: list[tuple[int, str]] = []
    if mode == "delete":
        missing = [(line, data) for line, data in session.execute(text(missing_sql), params)]
    if mode == "replace":
        counted = f"SELECT count(*) FROM ({_replaced_sql(frozen_for, base_frozen)}) d"
        counts.deleted += int(session.execute(text(counted), params).scalar_one())
    return counts, missing


def stage_incoming(session: Session, entity_id: str, part: int, mode: str,
                   frozen_for: int | None, base_frozen: int | None, load_id: int) -> int:
    """Stage one part's net change into the set ``frozen_for`` as ``incoming_counts``
    worked it out; return how many staged entries changed. Entries the load leaves as they
    were keep their load."""
    params = _params(entity_id, part, frozen_for, base_frozen) | {"load": load_id}
    _, changes_sql, _ = _incoming_changes_sql(frozen_for, base_frozen, mode)
    selects = [changes_sql] + ([_replaced_sql(frozen_for, base_frozen)]
                               if mode == "replace" else [])
    target = "NULL" if frozen_for is None else ":target"
    columns = "(frozen_for, entity_id, key, op, data, load_id)"
    if session.execute(select(StagedChange.id).where(
            StagedChange.entity_id == entity_id, in_set(frozen_for)).limit(1)).first() is None:
        # Nothing staged yet (a first load): every change is a new entry, written at once.
        changed = 0
        for sql in selects:
            result = session.execute(text(
                f"INSERT INTO staged_change {columns} SELECT {target}, :entity, c.key, c.op, "
                f"c.data, :load FROM ({sql}) c WHERE c.op <> 'none'"), params)
            changed += result.rowcount or 0  # type: ignore[attr-defined]
        return changed
    session.execute(text("DELETE FROM load_touched"))
    changed = 0
    for sql in selects:
        result = session.execute(text(f"INSERT INTO load_touched (key, op, data) {sql}"),
                                 params)
        changed += result.rowcount or 0  # type: ignore[attr-defined]
    if changed:
        session.execute(text(
            f"DELETE FROM staged_change WHERE entity_id = :entity AND "
            f"{_set_sql(frozen_for, 'staged_change')} AND key IN (SELECT key FROM load_touched)"),
            params)
        session.execute(text(
            f"INSERT INTO staged_change {columns} SELECT {target}, :entity, t.key, t.op, "
            f"t.data, :load FROM load_touched t WHERE t.op <> 'none'"), params)
    return changed


def drop_staged(session: Session, entity_id: str, keys: Iterable[str],
                frozen_for: int | None = None) -> None:
    for key in keys:
        session.execute(delete(StagedChange).where(
            StagedChange.entity_id == entity_id, StagedChange.key == key, in_set(frozen_for)))


def discard_staged(session: Session, frozen_for: int | None = None) -> int:
    """Drop every change of one set; return how many there were."""
    result = session.execute(delete(StagedChange).where(in_set(frozen_for)))
    return result.rowcount or 0  # type: ignore[attr-defined]


def freeze_open_draft(session: Session, release_id: int) -> int:
    """Make the open draft the release's frozen set; return how many changes moved."""
    result = session.execute(update(StagedChange).where(in_set(None))
                             .values(frozen_for=release_id))
    return result.rowcount or 0  # type: ignore[attr-defined]


def frozen_changes(session: Session,
                   release_id: int) -> list[tuple[str, str, str, str | None, int | None]]:
    """(entity, key, op, data, load id) of a release's frozen set."""
    stmt = select(StagedChange.entity_id, StagedChange.key, StagedChange.op,
                  StagedChange.data, StagedChange.load_id).where(in_set(release_id))
    return [tuple(row) for row in session.execute(stmt)]  # type: ignore[misc]


def open_keys(session: Session) -> set[tuple[str, str]]:
    return {(e, k) for e, k in session.execute(
        select(StagedChange.entity_id, StagedChange.key).where(in_set(None)))}


def add_to_open_draft(session: Session,
                      changes: Iterable[tuple[str, str, str, str | None, int | None]]) -> None:
    rows = [{"frozen_for": None, "entity_id": e, "key": k, "op": op, "data": data,
             "load_id": load_id} for e, k, op, data, load_id in changes]
    if rows:
        session.execute(insert(StagedChange), rows)


def draft_summary(session: Session) -> dict[str, dict[str, int]]:
    """Count the open draft's inserts, updates and deletes per entity."""
    summary: dict[str, dict[str, int]] = {}
    live = (select(Record.id).where(Record.entity_id == StagedChange.entity_id,
                                    Record.key == StagedChange.key,
                                    Record.valid_to.is_(None)).exists())
    stmt = (select(StagedChange.entity_id, StagedChange.op, live.label("live"), func.count())
            .where(in_set(None))
            .group_by(StagedChange.entity_id, StagedChange.op, "live"))
    for eid, op, is_live, n in session.execute(stmt):
        entry = summary.setdefault(eid, {"inserts": 0, "updates": 0, "deletes": 0})
        if op == "delete":
            entry["deletes"] += n
        elif is_live:
            entry["updates"] += n
        else:
            entry["inserts"] += n
    return summary


def apply_staged(session: Session, number: int, frozen_for: int | None = None) -> None:
    """Turn a set of staged changes into version ``number``'s rows, and empty the set.

    Every live row that the changes update or delete ends at ``number``; every upsert starts
    a new row there. Rows of older versions are never touched, so they stay exact.
    """
    chosen = in_set(frozen_for)
    touched = exists().where(StagedChange.entity_id == Record.entity_id,
                             StagedChange.key == Record.key, chosen)
    session.execute(update(Record).where(Record.valid_to.is_(None), touched)
                    .values(valid_to=number).execution_options(synchronize_session=False))
    session.execute(insert(Record).from_select(
        ["entity_id", "key", "data", "valid_from", "key_range"],
        select(StagedChange.entity_id, StagedChange.key, StagedChange.data,
               literal(number, Integer()), key_range_sql(session, StagedChange.key))
        .where(StagedChange.op == "upsert", chosen)))
    session.execute(delete(StagedChange).where(chosen))


# --- loads ----------------------------------------------------------------------------------

def recent_loads(session: Session, limit: int = 200) -> list[Load]:
    return list(session.scalars(select(Load).order_by(Load.id.desc()).limit(limit)))


def loads_of(session: Session, version: int) -> list[Load]:
    return list(session.scalars(select(Load).where(Load.version == version)
                                .order_by(Load.id)))


def has_loads(session: Session) -> bool:
    return session.scalars(select(Load.id).limit(1)).first() is not None


def assign_loads(session: Session, number: int, release_id: int | None) -> None:
    """Mark the loads a publication carries with its version number.

    Publishing a release's frozen set carries every unpublished load but those that went to
    another release's open draft (they wait for it).
    """
    loads = update(Load).where(Load.version.is_(None))
    if release_id is not None:
        loads = loads.where(Load.id.not_in(select(ReleaseLoad.load_id).where(
            ReleaseLoad.release_id != release_id)))
    session.execute(loads.values(version=number))


def pending_load_actors(session: Session, release_id: int | None) -> set[str]:
    """Who made the loads that publishing the set (the open draft, or release
    ``release_id``'s frozen set) would carry: the loads assign_loads() would mark."""
    stmt = select(Load.actor).where(Load.version.is_(None)).distinct()
    if release_id is not None:
        stmt = stmt.where(Load.id.not_in(select(ReleaseLoad.load_id).where(
            ReleaseLoad.release_id != release_id)))
    return set(session.scalars(stmt))


def load_ids_of(session: Session, version: int) -> list[int]:
    return list(session.scalars(select(Load.id).where(Load.version == version)
                                .order_by(Load.id)))


# --- releases -------------------------------------------------------------------------------

def get_release(session: Session, release_id: int, *, fresh: bool = False) -> Release | None:
    """A release by id; ``fresh`` re-reads it as the current transaction sees it."""
    if not 1 <= release_id <= 2**31 - 1:
        return None
    stmt = select(Release).where(Release.id == release_id)
    if fresh:
        stmt = stmt.execution_options(populate_existing=True)
    return session.scalars(stmt).first()


def frozen_release(session: Session) -> Release | None:
    """The release whose frozen set waits to publish (there is at most one)."""
    return session.scalars(select(Release).where(
        Release.state.in_(HOLDING), Release.frozen_at.is_not(None))
        .order_by(Release.publish_at).limit(1)).first()


def open_release(session: Session) -> Release | None:
    """The next planned release: the one the open draft goes to."""
    return session.scalars(select(Release).where(Release.state == ReleaseState.PLANNED)
                           .order_by(Release.publish_at, Release.id).limit(1)).first()


def releases(session: Session, states: Iterable[str] | None = None) -> list[Release]:
    """Releases by publish time (all, or those in ``states``)."""
    stmt = select(Release).order_by(Release.publish_at, Release.id)
    if states is not None:
        stmt = stmt.where(Release.state.in_(list(states)))
    return list(session.scalars(stmt))


def scheduled_releases(session: Session) -> list[Release]:
    """Releases the scheduler still has steps for, read afresh."""
    return list(session.scalars(select(Release).where(Release.state.in_(SCHEDULED))
                                .order_by(Release.publish_at, Release.id)
                                .execution_options(populate_existing=True)))


def release_planning(session: Session, version: int, *, other_than: int | None,
                     states: Iterable[str]) -> int | None:
    """The id of another release in ``states`` that plans ``version``, if any."""
    return session.scalars(select(Release.id).where(
        Release.version == version, Release.state.in_(list(states)),
        Release.id != (other_than or 0))).first()


def last_publish_at(session: Session, states: Iterable[str]) -> Any:
    return session.scalars(select(Release.publish_at).where(Release.state.in_(list(states)))
                           .order_by(Release.publish_at.desc()).limit(1)).first()


def load_release(session: Session, load_id: int) -> Release | None:
    """The release a load went to (none when no release was planned)."""
    return session.scalars(select(Release).join(
        ReleaseLoad, ReleaseLoad.release_id == Release.id)
        .where(ReleaseLoad.load_id == load_id)).first()


# --- the working catalogue ------------------------------------------------------------------

def working_catalogue(session: Session) -> Catalogue:
    """The catalogue that loads are validated against and the next version will carry."""
    rows = session.scalars(select(CatalogueEntity).order_by(CatalogueEntity.position))
    return Catalogue(_to_def(row) for row in rows)


def _to_def(row: CatalogueEntity) -> EntityDef:
    return EntityDef(
        id=row.id, name=row.name, source=row.source, key=tuple(row.key),
        effective_from=row.effective_from, effective_to=row.effective_to,
        description=row.description,
        foreign_keys=tuple(ForeignKey(tuple(fk["fields"]), fk["reference"]["entity"],
                                      tuple(fk["reference"]["fields"]))
                           for fk in row.foreign_keys or ()),
        fields=tuple(FieldDef(id=f.id, name=f.name, type=f.type, required=f.required,
                              max_length=f.max_length,
                              values=tuple(f.values) if f.values is not None else None,
                              description=f.description) for f in row.fields),
    )


def _field_row(fdef: FieldDef, position: int) -> CatalogueField:
    return CatalogueField(id=fdef.id, position=position, name=fdef.name, type=fdef.type,
                          required=fdef.required, max_length=fdef.max_length,
                          values=list(fdef.values) if fdef.values is not None else None,
                          description=fdef.description)


def add_entity(session: Session, entity: EntityDef) -> None:
    """Add an entity definition at the end of the working catalogue."""
    position = session.scalar(select(func.coalesce(func.max(CatalogueEntity.position), 0))) or 0
    session.add(CatalogueEntity(
        id=entity.id, position=position + 1, name=entity.name, source=entity.source,
        description=entity.description, key=list(entity.key),
        effective_from=entity.effective_from, effective_to=entity.effective_to,
        foreign_keys=[fk.to_dict() for fk in entity.foreign_keys] or None,
        fields=[_field_row(f, i) for i, f in enumerate(entity.fields, start=1)]))
    session.flush()
    add_field_indexes(session, entity.id, entity.field_ids)


def set_foreign_keys(session: Session, entity: EntityDef) -> None:
    """Write an entity's declared relations."""
    row = session.get(CatalogueEntity, entity.id)
    assert row is not None
    row.foreign_keys = [fk.to_dict() for fk in entity.foreign_keys] or None
    session.flush()


def entity_definition(session: Session, entity_id: str) -> EntityDef | None:
    row = session.get(CatalogueEntity, entity_id)
    return _to_def(row) if row is not None else None


def add_field(session: Session, entity_id: str, new: FieldDef) -> None:
    """Add a data item at the end of an entity's fields."""
    row = session.get(CatalogueEntity, entity_id)
    assert row is not None
    row.fields.append(_field_row(new, len(row.fields) + 1))
    session.flush()
    add_field_indexes(session, entity_id, [new.id])


def change_field(session: Session, entity_id: str, changed: FieldDef) -> None:
    """Write a field's new name and description."""
    row = session.get(CatalogueField, (entity_id, changed.id))
    assert row is not None
    row.name = changed.name
    row.description = changed.description
    session.flush()


def catalogue_is_empty(session: Session) -> bool:
    return not session.scalar(select(func.count()).select_from(CatalogueEntity))


def add_field_indexes(session: Session, entity_id: str, field_ids: Iterable[str]) -> None:
    """Index fields of an entity for record queries (see orm.field_index_ddl)."""
    connection = session.connection()
    for field_id in field_ids:
        connection.execute(text(field_index_ddl(connection.dialect.name, entity_id, field_id)))


def field_index_names(session: Session) -> set[str]:
    """The names of the record field indexes the database holds."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        stmt = text("SELECT indexname FROM pg_indexes WHERE tablename = 'record' "
                    "AND indexname LIKE :prefix")
    else:
        stmt = text("SELECT name FROM sqlite_master WHERE type = 'index' "
                    "AND tbl_name = 'record' AND name LIKE :prefix")
    return set(connection.scalars(stmt, {"prefix": FIELD_INDEX_PREFIX + "%"}))
