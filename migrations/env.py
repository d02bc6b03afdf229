"""Alembic environment: the app's metadata, and its database (or a connection given to us)."""

from __future__ import annotations

from alembic import context

from isd_service import models  # noqa: F401  (registers the tables)
from isd_service.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from isd_service import create_app

    return create_app().config["DATABASE_URL"]


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


# Tables that a library owns (created by our migrations, shaped by the library), which the
# models do not describe: the scheduler's job store.
LIBRARY_TABLES = {"apscheduler_jobs"}


def _include_object(obj, name, type_, _reflected, _compare_to) -> bool:
    table = obj.table.name if type_ in ("index", "column") else name
    return table not in LIBRARY_TABLES


def _run(connection) -> None:
    # Batch mode lets later migrations alter tables on SQLite too.
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True, compare_type=True,
                      include_object=_include_object)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
