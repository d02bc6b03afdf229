"""Admin API for webhook subscriptions and their deliveries (role admin)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from marshmallow import fields, validate

from isd_service.entrypoints.api.guard import caller, protect
from isd_service.entrypoints.api.schemas import Strict, json_body, parse
from isd_service.entrypoints.errors import ApiError
from isd_service.entrypoints.flask_db import session, uow
from isd_service.service_layer import webhooks

bp = Blueprint("webhooks_admin", __name__)


class SubscriptionBody(Strict):
    url = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    description = fields.String(allow_none=True, validate=validate.Length(max=200))
    envelope = fields.String(load_default="plain", validate=validate.OneOf(webhooks.ENVELOPES))


protect(bp, "admin")


@bp.post("/webhooks")
def post_webhook() -> Any:
    """Subscribe a URL; the answer carries its signing secret, shown only this once."""
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", slug="invalid-request")
    data = parse(SubscriptionBody(), body, status=422, what="body")
    row, secret = webhooks.subscribe(uow(), url=data["url"],
                                     description=data.get("description"),
                                     envelope=data["envelope"], actor=caller().actor,
                                     organisation=caller().organisation)
    return {**webhooks.subscription_dict(row), "secret": secret}, 201


@bp.get("/webhooks")
def list_webhooks() -> Any:
    return {"webhooks": [webhooks.subscription_dict(s) for s in webhooks.active(session())]}


@bp.get("/webhooks/<int:subscription_id>")
def get_webhook(subscription_id: int) -> Any:
    return webhooks.subscription_dict(webhooks.get_subscription(session(), subscription_id))


@bp.delete("/webhooks/<int:subscription_id>")
def delete_webhook(subscription_id: int) -> Any:
    webhooks.unsubscribe(uow(), subscription_id, actor=caller().actor,
                         organisation=caller().organisation)
    return "", 204


@bp.get("/webhooks/<int:subscription_id>/deliveries")
def list_deliveries(subscription_id: int) -> Any:
    """Every delivery to this subscriber, newest first, each with all its attempts."""
    row = webhooks.get_subscription(session(), subscription_id)
    return {"webhook": row.id, "deliveries": webhooks.deliveries(session(), row.id)}
