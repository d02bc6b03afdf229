"""Webhooks: tell subscribers of every publication with a small signed JSON notice.

A notice is queued (one `webhook_delivery` row per subscriber) inside the publication's own
transaction, so a publication and its notices commit together and none is lost if the
process stops right after. After the commit the publishing process's sender (see
entrypoints/webhook_worker.py) sends what is due; `isd webhooks deliver` does the same from
cron or the scheduler, for notices whose retry falls after that process has gone. A delivery
is claimed with a conditional UPDATE, so two processes never send the same attempt.

Every attempt is recorded (status code or error, duration). A failed attempt is retried
after WEBHOOK_BACKOFF_SECONDS * 2**(attempt - 1), up to WEBHOOK_MAX_ATTEMPTS attempts.

The body never carries records: the version, its go-live date, hashes and links. Each
subscriber has its own secret; `X-ISD-Signature: sha256=<hex>` is HMAC-SHA256 of the exact
body bytes with it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from isd_service.adapters import webhook_http
from isd_service.adapters.orm import (
    Version,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from isd_service.config import DEFAULTS
from isd_service.domain.errors import Invalid, NotFound
from isd_service.domain.manifest import manifest
from isd_service.domain.moments import iso_utc, iso_utc_or_none
from isd_service.service_layer import audit
from isd_service.service_layer.unit_of_work import UnitOfWork

EVENT = "version.published"
ENVELOPES = ("plain", "dip")
SECRET_PREFIX = "whsec_"
MAX_DIP_BYTES = 100_000  # the DIP refuses larger requests
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


class SubscriptionRefused(Invalid):
    """The subscription asked for is not valid; the message says why."""


def _setting(settings: Mapping[str, Any], name: str) -> Any:
    return settings.get(name, DEFAULTS[name])


def now_utc() -> datetime:
    return datetime.now(UTC)


# --- subscriptions -------------------------------------------------------------------------

def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise SubscriptionRefused("url must be an http or https URL of at most 2000 characters",
                                  field="url")
    if parts.username or parts.password:
        raise SubscriptionRefused("url must not carry credentials: each notice is signed",
                                  field="url")
    return url


def subscribe(uow: UnitOfWork, *, url: str, description: str | None, envelope: str,
              actor: str, organisation: str | None = None) -> tuple[WebhookSubscription, str]:
    """Add a subscriber; return it with its secret (shown this once)."""
    if envelope not in ENVELOPES:
        raise SubscriptionRefused(f"envelope must be one of {', '.join(ENVELOPES)}",
                                  field="envelope")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    with uow.transaction() as session:
        row = WebhookSubscription(url=check_url(url), secret=secret, description=description,
                                  envelope=envelope, created_by=actor, created_at=now_utc())
        session.add(row)
        session.flush()
        audit.record(session, action="webhook.subscribe", actor=actor,
                     organisation=organisation, subject=f"webhook {row.id}",
                     details={"webhook": row.id, "url": row.url, "envelope": envelope})
    return row, secret


def get_subscription(session: Session, subscription_id: int) -> WebhookSubscription:
    row = (session.get(WebhookSubscription, subscription_id)
           if 1 <= subscription_id < 2**31 else None)
    if row is None:
        raise NotFound(f"there is no webhook subscription {subscription_id}",
                       slug="no-such-webhook")
    return row


def active(session: Session) -> list[WebhookSubscription]:
    return list(session.scalars(select(WebhookSubscription)
                                .where(WebhookSubscription.deleted_at.is_(None))
                                .order_by(WebhookSubscription.id)))


def unsubscribe(uow: UnitOfWork, subscription_id: int, *, actor: str = "cli",
                organisation: str | None = None) -> None:
    """Stop notices to a subscriber; its deliveries stay visible, pending ones are dropped.
    Removing a removed subscription changes nothing."""
    with uow.transaction() as session:
        subscription = get_subscription(session, subscription_id)
        if subscription.deleted_at is not None:
            return
        subscription.deleted_at = now_utc()
        session.execute(update(WebhookDelivery).where(
            WebhookDelivery.subscription_id == subscription.id,
            WebhookDelivery.state == "pending").values(state="cancelled"))
        audit.record(session, action="webhook.unsubscribe", actor=actor,
                     organisation=organisation, subject=f"webhook {subscription.id}",
                     details={"webhook": subscription.id, "url": subscription.url})


# --- notices -------------------------------------------------------------------------------

def notice(version: Version, base: str) -> dict[str, Any]:
    """The notice of a publication: what it is and where to get it, never the data."""
    api = f"{base}/api/v1"
    n = version.number
    links = {
        "manifest": f"{api}/versions/{n}",
        "snapshot": f"{api}/versions/{n}/snapshot?format=ndjson",
        "delta": (f"{api}/deltas?from={version.previous_version}&to={n}"
                  if version.previous_version else None),
        "page": f"{base}/versions/{n}",
        "feed": f"{api}/feed.atom",
    }
    return {"event": EVENT, **manifest(version), "links": links}


def dip_envelope(body: dict[str, Any], subscription_id: int,
                 settings: Mapping[str, Any]) -> dict[str, Any]:
    """The same notice as a DIP publication message: CommonBlock S0, S1, D0."""
    stamp = iso_utc(now_utc())
    correlation = str(uuid.uuid4())
    return {"payload": {
        "CommonBlock": {
            "S0": {"interfaceID": _setting(settings, "DIP_INTERFACE_ID"), "schemaVersion": "1.0",
                   "eventCode": "ISD_VERSION_PUBLISHED"},
            "S1": {"environmentTag": _setting(settings, "DIP_ENVIRONMENT_TAG"),
                   "senderUniqueReference": f"ISD-{body['version']}-{subscription_id}",
                   "senderTimestamp": stamp,
                   "senderDIPID": _setting(settings, "DIP_SENDER_ID"),
                   "senderRoleID": "ISDA", "senderCorrelationID": correlation},
            "D0": {"transactionID": str(uuid.uuid4()), "transactionTimestamp": stamp,
                   "publicationID": f"ISD-{body['version']}",
                   "initialCorrelationID": correlation, "replayIndicator": False},
        },
        "CustomBlock": body,
    }}


def queue_notices(session: Session, version: Version, settings: Mapping[str, Any]) -> bool:
    """Queue one delivery per subscriber, in the publication's transaction; True if any."""
    subscriptions = active(session)
    if not subscriptions:
        return False
    base = (settings.get("PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/")
    body = notice(version, base)
    moment = now_utc()
    for sub in subscriptions:
        content = dip_envelope(body, sub.id, settings) if sub.envelope == "dip" else body
        text = json.dumps(content, separators=(",", ":"), ensure_ascii=False)
        session.add(WebhookDelivery(subscription_id=sub.id, version=version.number,
                                    body=text, state="pending", attempts=0,
                                    next_attempt_at=moment, created_at=moment))
    return True


# --- delivery ------------------------------------------------------------------------------

def deliver_due(uow: UnitOfWork) -> float | None:
    """Send every delivery that is due; return the seconds until the next retry, or None.

    Each claim and each attempt's record is a transaction of its own, without the draft's
    lock (sending notices never waits for a load), so that a slow receiver holds nothing.
    """
    settings = uow.settings
    timeout = float(_setting(settings, "WEBHOOK_TIMEOUT_SECONDS"))
    while True:
        with uow.transaction(lock=False) as session:
            moment = now_utc()
            free = or_(WebhookDelivery.claimed_until.is_(None),
                       WebhookDelivery.claimed_until < moment)
            due = session.scalars(select(WebhookDelivery.id).where(
                WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= moment,
                free).order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(1)).first()
            if due is None:
                break
            claimed = session.execute(update(WebhookDelivery).where(
                WebhookDelivery.id == due, WebhookDelivery.state == "pending", free)
                .values(claimed_until=moment + timedelta(seconds=timeout + 60)))
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue  # another process took it
        with uow.transaction(lock=False) as session:
            _attempt(session, due, timeout, settings)
    upcoming = uow.session.scalar(select(func.min(WebhookDelivery.next_attempt_at))
                                  .where(WebhookDelivery.state == "pending"))
    uow.end_read()
    if upcoming is None:
        return None
    return max(0.0, (upcoming - now_utc()).total_seconds())


def _attempt(session: Session, delivery_id: int, timeout: float,
             settings: Mapping[str, Any]) -> None:
    delivery = session.get(WebhookDelivery, delivery_id)
    assert delivery is not None
    sub = session.get(WebhookSubscription, delivery.subscription_id)
    assert sub is not None
    body = delivery.body.encode("utf-8")
    headers = {"Content-Type": "application/json", "User-Agent": "isd-service-webhooks/1",
               "X-ISD-Event": EVENT, "X-ISD-Delivery": str(delivery.id),
               "X-ISD-Signature": webhook_http.sign(sub.secret, body)}
    started = time.monotonic()
    status, error = webhook_http.post(sub.url, body, headers, timeout)
    elapsed = int((time.monotonic() - started) * 1000)
    ok = error is None and status is not None and 200 <= status < 300
    moment = now_utc()
    delivery.attempts += 1
    session.add(WebhookAttempt(delivery_id=delivery.id, number=delivery.attempts, at=moment,
                               status_code=status, error=error, duration_ms=elapsed))
    delivery.claimed_until = None
    if ok:
        delivery.state = "delivered"
        delivery.delivered_at = moment
    elif delivery.attempts >= int(_setting(settings, "WEBHOOK_MAX_ATTEMPTS")):
        delivery.state = "failed"
    else:
        backoff = float(_setting(settings, "WEBHOOK_BACKOFF_SECONDS")) * 2 ** (
            delivery.attempts - 1)
        delivery.next_attempt_at = moment + timedelta(seconds=backoff)


# --- what admins see -----------------------------------------------------------------------

def subscription_dict(sub: WebhookSubscription) -> dict[str, Any]:
    return {"id": sub.id, "url": sub.url, "description": sub.description,
            "envelope": sub.envelope, "created_by": sub.created_by,
            "created_at": iso_utc(sub.created_at), "deleted_at": iso_utc_or_none(sub.deleted_at)}


def deliveries(session: Session, subscription_id: int, limit: int = 200) -> list[dict[str, Any]]:
    rows = list(session.scalars(select(WebhookDelivery)
                                .where(WebhookDelivery.subscription_id == subscription_id)
                                .order_by(WebhookDelivery.id.desc()).limit(limit)))
    attempts: dict[int, list[dict[str, Any]]] = {r.id: [] for r in rows}
    if rows:
        for a in session.scalars(select(WebhookAttempt)
                                 .where(WebhookAttempt.delivery_id.in_(list(attempts)))
                                 .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)):
            attempts[a.delivery_id].append(
                {"number": a.number, "at": iso_utc(a.at), "status_code": a.status_code,
                 "error": a.error, "duration_ms": a.duration_ms})
    return [{"id": r.id, "version": r.version, "state": r.state, "attempts": r.attempts,
             "next_attempt_at": iso_utc(r.next_attempt_at) if r.state == "pending" else None,
             "created_at": iso_utc(r.created_at),
             "delivered_at": iso_utc_or_none(r.delivered_at),
             "body_sha256": hashlib.sha256(r.body.encode("utf-8")).hexdigest(),
             "tries": attempts[r.id]} for r in rows]
