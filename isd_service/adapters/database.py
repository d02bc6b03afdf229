"""Engines for SQLite and PostgreSQL, and their sessions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from isd_service.domain.records import key_range


def sqlite_url(instance_path: str) -> str:
    return f"sqlite:///{Path(instance_path) / 'isd.sqlite3'}"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and enforced foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets readers go on while a publication writes; the timeout makes a
            # second writer wait for the first instead of failing at once.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            # SQLite has no SHA-256: the key range of rows it writes comes from the domain's
            # own function (PostgreSQL computes it in SQL: repository.key_range_sql).
            dbapi_conn.create_function("isd_key_range", 1, key_range, deterministic=True)

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, pool_pre_ping=True, **kwargs)


def refresh_statistics(session: Session, tables: Sequence[str], *,
                       vacuum: Sequence[str] = ()) -> None:
    """After a bulk change, on PostgreSQL: ANALYZE ``tables`` (inside the session's
    transaction: the statements that follow plan with the new sizes), and with ``vacuum``
    (its own connection, outside any transaction, as VACUUM must be) reclaim the dead rows a
    bulk delete left. Autovacuum does both in time, where it is on; a publication does not
    wait for it."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for table in tables:
        session.execute(text(f"ANALYZE {table}"))
    if vacuum:
        engine = session.get_bind().engine
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in vacuum:
                conn.execute(text(f"VACUUM (ANALYZE) {table}"))


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def ping(session: Session) -> None:
    """Ask the database the cheapest question; raises SQLAlchemy's error when it is down."""
    session.execute(text("SELECT 1"))
