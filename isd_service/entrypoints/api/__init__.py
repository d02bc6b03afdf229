"""The HTTP API under /api/v1: public reads and the admin writes."""

from __future__ import annotations

from flask import Flask

from isd_service.entrypoints.api.admin import bp as admin_bp
from isd_service.entrypoints.api.governance import bp as governance_bp
from isd_service.entrypoints.api.participants import bp as participants_bp
from isd_service.entrypoints.api.public import bp as public_bp
from isd_service.entrypoints.api.releases import admin_bp as releases_admin_bp
from isd_service.entrypoints.api.releases import public_bp as releases_bp
from isd_service.entrypoints.api.webhooks import bp as webhooks_admin_bp


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(public_bp, url_prefix="/api/v1")
    app.register_blueprint(admin_bp, url_prefix="/api/v1/admin")
    app.register_blueprint(participants_bp, url_prefix="/api")
    app.register_blueprint(webhooks_admin_bp, url_prefix="/api/v1/admin")
    app.register_blueprint(governance_bp, url_prefix="/api/v1/admin")
    app.register_blueprint(releases_bp, url_prefix="/api/v1")
    app.register_blueprint(releases_admin_bp, url_prefix="/api/v1/admin")
