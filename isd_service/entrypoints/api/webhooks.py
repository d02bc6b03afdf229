"""Admin API for webhook subscriptions and their deliveries (role admin)."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, pre_load, validate

from isd_service.entrypoints.api.blueprint import Blueprint
from isd_service.entrypoints.api.guard import caller, protect
from isd_service.entrypoints.api.schemas import Strict
from isd_service.entrypoints.errors import ApiError
from isd_service.entrypoints.flask_db import session, uow
from isd_service.service_layer import webhooks

bp = Blueprint("webhooks_admin", __name__, description="Webhook subscriptions")


class SubscriptionBody(Strict):
    url = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    description = fields.String(allow_none=True, validate=validate.Length(max=200))
    envelope = fields.String(load_default="plain", validate=validate.OneOf(webhooks.ENVELOPES))

    @pre_load
    def _object(self, data: Any, **_kwargs: Any) -> Any:
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object", slug="invalid-request")
        return data


protect(bp, "admin")


@bp.post("/webhooks")
@bp.arguments(SubscriptionBody)
@bp.response(201)
def post_webhook(data: dict[str, Any]) -> Any:
    """Subscribe a URL; the answer carries its signing secret, shown only this once."""
    row, secret = webhooks.subscribe(uow(), url=data["url"],
                                     description=data.get("description"),
                                     envelope=data["envelope"], actor=caller().actor,
                                     organisation=caller().organisation)
    return {**webhooks.subscription_dict(row), "secret": secret}, 201


@bp.get("/webhooks")
@bp.response(200)
def list_webhooks() -> Any:
    return {"webhooks": [webhooks.subscription_dict(s) for s in webhooks.active(session())]}


@bp.get("/webhooks/<int:subscription_id>")
@bp.response(200)
def get_webhook(subscription_id: int) -> Any:
    return webhooks.subscription_dict(webhooks.get_subscription(session(), subscription_id))


@bp.delete("/webhooks/<int:subscription_id>")
@bp.alt_response(204, description="No Content", success=True)
def delete_webhook(subscription_id: int) -> Any:
    webhooks.unsubscribe(uow(), subscription_id, actor=caller().actor,
                         organisation=caller().organisation)
    return "", 204


@bp.get("/webhooks/<int:subscription_id>/deliveries")
@bp.response(200)
def list_deliveries(subscription_id: int) -> Any:
    """Every delivery to this subscriber, newest first, each with all its attempts."""
    row = webhooks.get_subscription(session(), subscription_id)
    return {"webhook": row.id, "deliveries": webhooks.deliveries(session(), row.id)}
