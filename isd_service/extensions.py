"""The database, bound to the app in create_app and reached through ``current_app``."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from isd_service.db import make_engine, make_session_factory, sqlite_url


class Database:
    """Holds the engine and hands out one session per request (closed at teardown)."""

    engine: Engine
    session_factory: sessionmaker[Session]

    def init_app(self, app: Flask) -> None:
        url = app.config["DATABASE_URL"] or sqlite_url(app.instance_path)
        app.config["DATABASE_URL"] = url
        self.engine = make_engine(url)
        self.session_factory = make_session_factory(self.engine)
        app.extensions["isd_db"] = self
        app.teardown_appcontext(self._close)

    @staticmethod
    def _close(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()


def database() -> Database:
    return current_app.extensions["isd_db"]


def session() -> Session:
    """The session of the current request or CLI command."""
    if "db_session" not in g:
        g.db_session = database().session_factory()
    return g.db_session
