"""Alembic environment: the app's metadata, and its database (or a connection given to us)."""

from __future__ import annotations

import warnings

from alembic import context

from isd_service.adapters.database import make_engine
from isd_service.adapters.orm import FIELD_INDEX_PREFIX, Base

# The record field indexes are expressions, which SQLAlchemy does not reflect; they are left
# out of the comparison below anyway.
warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based "
                        "index ix_record_field_")
config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from isd_service.config import database_url

    return database_url()


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Leave out the record field indexes: they follow the catalogue (data), not the models."""
    return not (type_ == "index" and reflected and name
                and name.startswith(FIELD_INDEX_PREFIX))


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True, include_object=include_object)
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


def _run(connection) -> None:
    # Batch mode lets later migrations alter tables on SQLite too.
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True, compare_type=True,
                      include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
