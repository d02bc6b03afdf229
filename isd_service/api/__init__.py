"""The HTTP API under /api/v1: public reads and the admin writes."""

from __future__ import annotations

from flask import Flask

from isd_service.api.admin import bp as admin_bp
from isd_service.api.public import bp as public_bp


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(public_bp, url_prefix="/api/v1")
    app.register_blueprint(admin_bp, url_prefix="/api/v1/admin")
