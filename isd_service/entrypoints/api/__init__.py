"""The HTTP API under /api/v1: public reads and the admin writes."""

from __future__ import annotations

from flask import Flask

from isd_service.entrypoints.api.admin import bp as admin_bp
from isd_service.entrypoints.api.governance import bp as governance_bp
from isd_service.entrypoints.api.health import bp as health_bp
from isd_service.entrypoints.api.participants import bp as participants_bp
from isd_service.entrypoints.api.paths import bp as paths_bp
from isd_service.entrypoints.api.public import bp as public_bp
from isd_service.entrypoints.api.releases import admin_bp as releases_admin_bp
from isd_service.entrypoints.api.releases import public_bp as releases_bp
from isd_service.entrypoints.api.webhooks import bp as webhooks_admin_bp


def register_blueprints(app: Flask) -> None:
    """Register the API blueprints through flask-smorest's Api, which documents them (and
    serves the document at /api/v1/openapi.json)."""
    from isd_service.entrypoints.openapi import Api

    api = Api(app)
    api.register_blueprint(public_bp, url_prefix="/api/v1")
    api.register_blueprint(paths_bp, url_prefix="/api/v1")
    api.register_blueprint(health_bp, url_prefix="/api/v1")
    api.register_blueprint(admin_bp, url_prefix="/api/v1/admin")
    api.register_blueprint(participants_bp, url_prefix="/api")
    api.register_blueprint(webhooks_admin_bp, url_prefix="/api/v1/admin")
    api.register_blueprint(governance_bp, url_prefix="/api/v1/admin")
    api.register_blueprint(releases_bp, url_prefix="/api/v1")
    api.register_blueprint(releases_admin_bp, url_prefix="/api/v1/admin")
