"""GET /api/v1/health: whether the database and the downloads folder are usable."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app

from isd_service.entrypoints.api.blueprint import Blueprint
from isd_service.entrypoints.api.caching import downloads_root
from isd_service.entrypoints.api.schemas import Health
from isd_service.entrypoints.errors import RETRY_AFTER
from isd_service.entrypoints.flask_db import session
from isd_service.service_layer.health import health

bp = Blueprint("health", __name__, description="For load balancers: is the service usable")


@bp.get("/health")
@bp.response(200, Health)
@bp.alt_response(503, schema=Health, description="the database is unavailable")
def get_health() -> Any:
    """200 when the service works (`ok`) or works without its downloads folder (`degraded`:
    downloads are sent from the database); 503 when the database is unavailable (`down`)."""
    body = health(session(), downloads_root(),
                  int(current_app.config["DOWNLOAD_BUILD_WAIT_SECONDS"]))
    response: Response = current_app.response_class(
        current_app.json.dumps(body), mimetype="application/json")
    response.cache_control.no_store = True
    if body["status"] == "down":
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER)
    return response
