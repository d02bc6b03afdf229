"""The Flask app factory: settings, database, blueprints, error handlers, commands."""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import Any

from flask import Flask

from isd_service.config import INSTANCE_DIR, settings


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: configuration, database, blueprints, error handlers, CLI."""
    # The pages' blueprint serves the style sheet; the app itself has no static folder.
    app = Flask("isd_service", instance_path=str(INSTANCE_DIR),
                instance_relative_config=True, static_folder=None)
    app.config.from_mapping(settings(test_config))
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = instance_secret()
    # Records read best in catalogue order (the order of the MDD columns), not sorted.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_commands(app)
    return app


def instance_secret() -> str:
    """The key kept in the instance folder (made once), shared by every web process of this
    machine; production sets ISD_SECRET_KEY instead."""
    path = INSTANCE_DIR / "secret_key"
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it first
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def register_extensions(app: Flask) -> None:
    from isd_service.entrypoints import http
    from isd_service.entrypoints.flask_db import Database
    from isd_service.entrypoints.web import admin as admin_pages

    Database().init_app(app)
    http.init_app(app)
    admin_pages.init_app(app)


def register_blueprints(app: Flask) -> None:
    from isd_service.entrypoints import web
    from isd_service.entrypoints.api import register_blueprints as register_api
    from isd_service.entrypoints.web import admin as admin_pages

    register_api(app)  # with the OpenAPI document, at /api/v1/openapi.json
    web.register(app)
    admin_pages.register(app)


def register_error_handlers(app: Flask) -> None:
    from isd_service.entrypoints.errors import register_error_handlers as register

    register(app)


def register_commands(app: Flask) -> None:
    from isd_service.entrypoints.cli import register_commands as register

    register(app)
