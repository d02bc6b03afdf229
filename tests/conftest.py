"""Fixtures: an app on a fresh database (SQLite by default, PostgreSQL when
ISD_TEST_DATABASE_URL names one), its client, tokens, and the real MDD versions."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Table, create_engine, make_url, select, text

from isd_service import PROJECT_ROOT
from isd_service.adapters.orm import Base
from isd_service.entrypoints import webhook_worker
from isd_service.entrypoints.app import create_app
from isd_service.entrypoints.cli.database import alembic_config, upgrade_database
from isd_service.entrypoints.flask_db import session, uow
from isd_service.service_layer.tokens import issue_token
from isd_service.service_layer.unit_of_work import UnitOfWork

MDD_DIR = Path(os.environ.get("ISD_MDD_DIR", PROJECT_ROOT.parent / "shared" / "mdd"))
MDD_VERSIONS = [370, 371, 372, 373, 374]


# Under pytest-xdist (see setup.cfg): the tests of a module that share a store built once for
# the module run on one worker, so that it is built once; and the slowest modules start
# first, so that no worker is left running a long test at the end.
SHARED_STORE_MODULES = {"test_browser", "test_faults", "test_mdd_versions", "test_sync",
                        "test_record_queries"}
SLOW_MODULES = ("test_archive", "test_sync", "test_mdd_versions", "test_faults",
                "test_mdd_portal", "test_scheduler_processes", "test_browser", "test_openapi",
                "test_web_processes", "test_seed", "test_record_queries")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto` for named tests only (path::name): one process, as starting workers would
    cost more than they save."""
    if config.args and all("::" in arg for arg in config.args):
        return 0
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """--dist loadgroup, with a module of SHARED_STORE_MODULES as a group.

    (pytest-xdist's own loadgroup reads xdist_group marks from a suffix it adds to node ids,
    which pytest 9.2 no longer lets it set.)
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedStoreScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if Path(module).stem in SHARED_STORE_MODULES else nodeid

    return SharedStoreScheduling(config, log)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        def rank(item: pytest.Item) -> int:
            stem = item.path.stem
            return SLOW_MODULES.index(stem) if stem in SLOW_MODULES else len(SLOW_MODULES)
        items.sort(key=rank)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database with the schema built by the migrations (never create_all).

    SQLite: a file in this process's temporary folder. PostgreSQL: the database that
    ISD_TEST_DATABASE_URL names, or under pytest-xdist one database per worker beside it
    (NAME_gw0, NAME_gw1, ..., created when missing).
    """
    from alembic import command

    url = os.environ.get("ISD_TEST_DATABASE_URL")
    if not url:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'isd.sqlite3'}"
    else:
        url = worker_database(url)
        engine = create_engine(url)
        with engine.begin() as conn:  # start from nothing: a previous run may have left tables
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    command.upgrade(alembic_config(url), "head")
    return url


def worker_database(url: str) -> str:
    """This pytest-xdist worker's own database beside the one ``url`` names; created if missing."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    base = make_url(url)
    name = f"{base.database}_{worker}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                           {"name": name}) is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


Rows = list[tuple[Table, list[dict[str, Any]]]]

# Per database URL, the rows that `isd db upgrade` leaves in an empty database (the draft
# row, the seed catalogue): read once, after it first ran, and written back by every reset.
_UPGRADED: dict[str, Rows] = {}


def reset(app: Flask) -> None:
    """Empty every table, then do what `isd db upgrade` does on an empty database.

    The schema is already at head (see database_url): rather than run the migrations and
    install the seed catalogue for every test, write back the rows that doing so left once.
    """
    url = app.config["DATABASE_URL"]
    if url in _UPGRADED:
        restore(app, _UPGRADED[url])
        return
    restore(app, [])
    with database_of(app).engine.begin() as conn:
        conn.execute(text("INSERT INTO draft (id, revision) VALUES (1, 0)"))
    upgrade_database(app)
    session().close()
    _UPGRADED[url] = saved_rows(app)


def saved_rows(app: Flask, keep: tuple[str, ...] = ()) -> Rows:
    """Every row of every table but those named in ``keep``, for restore() to write back."""
    with database_of(app).engine.connect() as conn:
        tables = [(table, [dict(row) for row in conn.execute(
            select(table).order_by(*table.primary_key.columns)).mappings()])
            for table in Base.metadata.sorted_tables if table.name not in keep]
    return [(table, rows) for table, rows in tables if rows]


def restore(app: Flask, rows: Rows, keep: tuple[str, ...] = ()) -> None:
    """Empty every table but those named in ``keep``, then write back the rows that
    saved_rows() read.

    Ids are written as they were: sequences only move on, so none is given out twice.
    """
    tables = [table for table in reversed(Base.metadata.sorted_tables) if table.name not in keep]
    with database_of(app).engine.begin() as conn:
        if _holds_much(conn, tables):
            # On PostgreSQL the rows a DELETE removes stay behind, dead, and every scan of
            # the table reads through them until a vacuum: after a real MDD version, that
            # made the next hundred small tests several times slower. TRUNCATE frees them.
            conn.execute(text("TRUNCATE " + ", ".join(
                conn.dialect.identifier_preparer.format_table(table) for table in tables)))
        else:  # for the few rows that most tests leave, DELETE is ten times quicker
            for table in tables:
                conn.execute(table.delete())
        for table, table_rows in rows:
            conn.execute(table.insert(), table_rows)


def _holds_much(conn: Connection, tables: list[Table]) -> bool:
    """True on PostgreSQL when one of ``tables`` takes more than a megabyte."""
    if conn.dialect.name != "postgresql":
        return False  # SQLite reuses a deleted row's space: no dead rows to read through
    return bool(conn.scalar(
        text("SELECT count(*) FROM unnest(CAST(:names AS text[])) AS name "
             "WHERE pg_relation_size(to_regclass(name)) > 1048576"),
        {"names": [table.name for table in tables]}))


# The tests' own seed: a few hand-written records of every entity (the project's seed is a
# real MDD version, which would make every test that seeds load 80,000 records).
TEST_SEED = PROJECT_ROOT / "tests" / "data" / "seed"


def make_app(database_url: str, tmp_path: Path) -> Flask:
    # Downloads built on their first request, as each test of them reads them: no builder
    # runs beside a test's app. The background builds that publications queue by default
    # are tested in tests/integration/test_download_builds.py (and by the processes that
    # e2e tests start, which run with the defaults).
    return create_app({"TESTING": True, "DATABASE_URL": database_url,
                       "MAX_CONTENT_LENGTH": 50 * 1024 * 1024,
                       "DOWNLOADS_DIR": str(tmp_path / "downloads"),
                       "SEED_DIR": str(TEST_SEED), "DOWNLOAD_BUILDS": "on-request"})


@pytest.fixture(scope="session")
def _session_app(database_url: str, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[Flask, dict[str, Any], dict[str, Any]]]:
    """One app for the session: building one, and the SQL its engine compiles and caches,
    cost more than most tests. Its configuration and extensions are kept as built."""
    app = make_app(database_url, tmp_path_factory.mktemp("app"))
    yield app, copy.deepcopy(dict(app.config)), dict(app.extensions)
    database_of(app).engine.dispose()


@pytest.fixture
def app(_session_app: tuple[Flask, dict[str, Any], dict[str, Any]], tmp_path: Path,
        request: pytest.FixtureRequest) -> Iterator[Flask]:
    """The session's app as it was built, with its own downloads folder, on an empty store.

    The seed catalogue's relations are declared only for tests marked ``relations``: the
    others load a few hand-written records of one entity or two (a line loss factor class
    without its participant's role), which publication would refuse, and are about other
    rules. The relations are tested where they are the subject and on every real version.
    """
    app, config, extensions = _session_app
    app.config.clear()
    app.config.update(copy.deepcopy(config), DOWNLOADS_DIR=str(tmp_path / "downloads"))
    app.extensions.clear()
    app.extensions.update(extensions)
    with app.app_context():
        reset(app)
        if request.node.get_closest_marker("relations") is None:
            with database_of(app).engine.begin() as conn:
                conn.execute(text("UPDATE catalogue_entity SET foreign_keys = NULL"))
    yield app
    # As with an app of its own, the next test starts without this one's webhook sender
    # (a sender waiting to retry wakes up later, finds nothing due and stops) nor connections.
    webhook_worker.forget(app)
    database_of(app).engine.dispose()


def database_of(app: Flask):
    return app.extensions["isd_db"]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def create_token(unit: UnitOfWork, **kwargs: Any) -> str:
    """A new token's text (what `isd token create` prints)."""
    return issue_token(unit, **kwargs)[0]


def token_for(app: Flask, *roles: str, org: str = "ISDA") -> str:
    with app.app_context():
        return create_token(uow(), organisation=org, roles=list(roles))


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


@contextmanager
def _in_a_thread(server: Any) -> Iterator[str]:
    """Run an HTTP server (standard library or werkzeug) in a thread; its base URL."""
    import threading

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(30)


def http_serving(handler: Any) -> AbstractContextManager[str]:
    """A standard-library HTTP server with ``handler`` on a free port (its base URL)."""
    import http.server

    return _in_a_thread(http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler))


def serving(app: Flask) -> AbstractContextManager[str]:
    """The app behind a real HTTP server on a free port (its base URL), for tools that fetch
    URLs themselves."""
    from werkzeug.serving import make_server

    return _in_a_thread(make_server("127.0.0.1", 0, app, threaded=True))
