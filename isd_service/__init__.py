"""isd_service: versioned Industry Standing Data for the GB electricity market."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the sync client (isd_service.sync) must import without Flask
    from flask import Flask

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: configuration, database, blueprints, error handlers, CLI."""
    from flask import Flask

    from isd_service.config import DEFAULTS, from_environment

    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(DEFAULTS)
    app.config.update(from_environment())
    if test_config:
        app.config.update(test_config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    # Records read best in catalogue order (the order of the MDD columns), not sorted.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    register_extensions(app)
    register_blueprints(app)
    register_governance(app)
    register_error_handlers(app)
    register_commands(app)
    register_participants(app)
    return app


def register_extensions(app: Flask) -> None:
    from isd_service.extensions import Database

    Database().init_app(app)


def register_blueprints(app: Flask) -> None:
    from isd_service.api import register_blueprints as register_api

    register_api(app)


def register_governance(app: Flask) -> None:
    from isd_service import audit, http, openapi, policy

    audit.connect_signals()
    policy.init_app(app)
    http.init_app(app)
    openapi.init_app(app)


def register_participants(app: Flask) -> None:
    """Webhook notices of publications, their command, and the web pages."""
    from isd_service import web, webhooks

    webhooks.connect_signals()
    app.cli.add_command(webhooks.webhooks_group)
    web.register(app)


def register_error_handlers(app: Flask) -> None:
    from isd_service.errors import register_error_handlers as register

    register(app)


def register_commands(app: Flask) -> None:
    from isd_service.cli import register_commands as register

    register(app)
