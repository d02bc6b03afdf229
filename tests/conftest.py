"""Fixtures: an app on a fresh database (SQLite by default, PostgreSQL when
ISD_TEST_DATABASE_URL names one), its client, tokens, and the real MDD versions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Table, create_engine, select, text

from isd_service import PROJECT_ROOT, create_app
from isd_service.auth import create_token
from isd_service.cli import alembic_config, upgrade_database
from isd_service.db import Base
from isd_service.extensions import database, session

MDD_DIR = Path(os.environ.get("ISD_MDD_DIR", PROJECT_ROOT.parent / "shared" / "mdd"))
MDD_VERSIONS = [370, 371, 372, 373, 374]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database with the schema built by the migrations (never create_all)."""
    from alembic import command

    url = os.environ.get("ISD_TEST_DATABASE_URL")
    if not url:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'isd.sqlite3'}"
    else:
        engine = create_engine(url)
        with engine.begin() as conn:  # start from nothing: a previous run may have left tables
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    command.upgrade(alembic_config(url), "head")
    return url


# Per database URL, the rows that `isd db upgrade` leaves in an empty database (the draft
# row, the seed catalogue): read once, after it first ran, and written back by every reset.
_UPGRADED: dict[str, list[tuple[Table, list[dict[str, Any]]]]] = {}


def reset(app: Flask) -> None:
    """Empty every table, then do what `isd db upgrade` does on an empty database.

    The schema is already at head (see database_url): rather than run the migrations and
    install the seed catalogue for every test, write back the rows that doing so left once.
    """
    url = app.config["DATABASE_URL"]
    engine = database().engine
    with engine.begin() as conn:
        # DELETE, not TRUNCATE: on PostgreSQL a TRUNCATE of every table costs ten times as
        # much when, as after most tests, they hold a few rows.
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
        for table, rows in _UPGRADED.get(url, []):
            conn.execute(table.insert(), rows)
    if url in _UPGRADED:
        return
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO draft (id, revision) VALUES (1, 0)"))
    upgrade_database(app)
    session().close()
    with engine.connect() as conn:
        tables = [(table, [dict(row) for row in conn.execute(
            select(table).order_by(*table.primary_key.columns)).mappings()])
            for table in Base.metadata.sorted_tables]
    _UPGRADED[url] = [(table, rows) for table, rows in tables if rows]


def make_app(database_url: str, tmp_path: Path) -> Flask:
    return create_app({"TESTING": True, "DATABASE_URL": database_url,
                       "MAX_CONTENT_LENGTH": 50 * 1024 * 1024,
                       "DOWNLOADS_DIR": str(tmp_path / "downloads")})


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = make_app(database_url, tmp_path)
    with app.app_context():
        reset(app)
    yield app
    database_of(app).engine.dispose()


def database_of(app: Flask):
    return app.extensions["isd_db"]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def token_for(app: Flask, *roles: str, org: str = "ISDA") -> str:
    with app.app_context():
        return create_token(session(), organisation=org, roles=list(roles))


@pytest.fixture
def admin_headers(app: Flask) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(app, 'admin')}"}


@pytest.fixture
def publisher_headers(app: Flask) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(app, 'publisher')}"}


@pytest.fixture
def loader_headers(app: Flask) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(app, 'loader', org='EXDA')}"}


def mdd_files(version: int) -> list[Path]:
    folder = MDD_DIR / str(version)
    if not folder.is_dir():
        pytest.skip(f"the real MDD versions are not at {MDD_DIR} (set ISD_MDD_DIR)")
    return sorted(folder.glob("*.csv"))


def publish_mdd(app: Flask, version: int, paths: list[str] | None = None) -> None:
    """Load a real MDD version in replace mode and publish it (the first under its number)."""
    runner = app.test_cli_runner()
    paths = paths if paths is not None else [str(p) for p in mdd_files(version)]
    result = runner.invoke(args=["load", "--mode", "replace", *paths])
    assert result.exit_code == 0, result.output
    args = ["publish", "--go-live", "2026-01-01"]
    if version == MDD_VERSIONS[0]:
        args += ["--version", str(version)]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(version)
