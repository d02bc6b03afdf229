"""Admin API for webhook subscriptions and their deliveries (role admin)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from marshmallow import fields, validate

from isd_service import webhooks
from isd_service.api.guard import caller, protect
from isd_service.api.schemas import Strict, json_body, parse
from isd_service.errors import ApiError
from isd_service.extensions import session
from isd_service.models import WebhookSubscription

bp = Blueprint("webhooks_admin", __name__)


class SubscriptionBody(Strict):
    url = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    description = fields.String(allow_none=True, validate=validate.Length(max=200))
    envelope = fields.String(load_default="plain", validate=validate.OneOf(webhooks.ENVELOPES))


protect(bp, "admin")


def _subscription(subscription_id: int) -> WebhookSubscription:
    row = session().get(WebhookSubscription, subscription_id) if subscription_id < 2**31 else None
    if row is None:
        raise ApiError(404, f"there is no webhook subscription {subscription_id}",
                       slug="no-such-webhook")
    return row


@bp.post("/webhooks")
def post_webhook() -> Any:
    """Subscribe a URL; the answer carries its signing secret, shown only this once."""
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", slug="invalid-request")
    data = parse(SubscriptionBody(), body, status=422, what="body")
    try:
        row, secret = webhooks.subscribe(session(), url=data["url"],
                                         description=data.get("description"),
                                         envelope=data["envelope"], actor=caller().actor,
                                         organisation=caller().organisation)
    except webhooks.SubscriptionRefused as exc:
        raise ApiError(422, str(exc), slug="invalid-request",
                       errors=[{"field": "url", "message": str(exc)}]) from None
    return {**webhooks.subscription_dict(row), "secret": secret}, 201


@bp.get("/webhooks")
def list_webhooks() -> Any:
    return {"webhooks": [webhooks.subscription_dict(s) for s in webhooks.active(session())]}


@bp.get("/webhooks/<int:subscription_id>")
def get_webhook(subscription_id: int) -> Any:
    return webhooks.subscription_dict(_subscription(subscription_id))


@bp.delete("/webhooks/<int:subscription_id>")
def delete_webhook(subscription_id: int) -> Any:
    row = _subscription(subscription_id)
    if row.deleted_at is None:
        webhooks.unsubscribe(session(), row, actor=caller().actor,
                             organisation=caller().organisation)
    return "", 204


@bp.get("/webhooks/<int:subscription_id>/deliveries")
def list_deliveries(subscription_id: int) -> Any:
    """Every delivery to this subscriber, newest first, each with all its attempts."""
    row = _subscription(subscription_id)
    return {"webhook": row.id, "deliveries": webhooks.deliveries(session(), row.id)}
