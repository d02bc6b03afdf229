"""The database bound to the Flask app, and one unit of work per request or CLI command."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from isd_service.adapters.database import make_engine, make_session_factory
from isd_service.config import database_url
from isd_service.service_layer.unit_of_work import Event, UnitOfWork, VersionPublished


class Database:
    """Holds the engine; hands out one unit of work per request (closed at teardown)."""

    engine: Engine
    session_factory: sessionmaker[Session]

    def init_app(self, app: Flask) -> None:
        url = database_url(app.config)
        app.config["DATABASE_URL"] = url
        self.engine = make_engine(url)
        self.session_factory = make_session_factory(self.engine)
        app.extensions["isd_db"] = self
        app.teardown_appcontext(self._close)

    @staticmethod
    def _close(_exc: BaseException | None) -> None:
        unit = g.pop("isd_uow", None)
        if unit is not None:
            unit.close()


def database(app: Flask | None = None) -> Database:
    return (app or current_app).extensions["isd_db"]


def new_uow(app: Flask) -> UnitOfWork:
    """A unit of work on the app's database, with its settings and after-commit work."""
    settings: dict[str, Any] = dict(app.config)
    if not settings.get("PUBLIC_URL") and has_request_context():
        settings["PUBLIC_URL"] = request.url_root
    return UnitOfWork(database(app).session_factory, settings=settings,
                      after_commit=lambda event: after_commit(app, event))


def uow() -> UnitOfWork:
    """The unit of work of the current request or CLI command."""
    if "isd_uow" not in g:
        g.isd_uow = new_uow(current_app._get_current_object())  # type: ignore[attr-defined]
    return g.isd_uow


def session() -> Session:
    """The current unit of work's session (for reads)."""
    return uow().session


def after_commit(app: Flask, event: Event) -> None:
    """What follows a committed change in this process: a publication's notices go out."""
    if isinstance(event, VersionPublished) and event.webhook_notices \
            and app.config["WEBHOOK_DELIVERY"] == "thread":
        from isd_service.entrypoints import webhook_worker

        webhook_worker.kick(app)
