"""The Flask app factory: settings, database, blueprints, error handlers, commands."""

from __future__ import annotations

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
    # Records read best in catalogue order (the order of the MDD columns), not sorted.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_commands(app)
    return app


def register_extensions(app: Flask) -> None:
    from isd_service.entrypoints import http
    from isd_service.entrypoints.flask_db import Database

    Database().init_app(app)
    http.init_app(app)


def register_blueprints(app: Flask) -> None:
    from isd_service.entrypoints import web
    from isd_service.entrypoints.api import register_blueprints as register_api

    register_api(app)  # with the OpenAPI document, at /api/v1/openapi.json
    web.register(app)


def register_error_handlers(app: Flask) -> None:
    from isd_service.entrypoints.errors import register_error_handlers as register

    register(app)


def register_commands(app: Flask) -> None:
    from isd_service.entrypoints.cli import register_commands as register

    register(app)
