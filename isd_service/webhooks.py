"""Webhooks: tell subscribers of every publication with a small signed JSON notice.

A notice is queued (one `webhook_delivery` row per subscriber) inside the publication's own
transaction, so a publication and its notices commit together and none is lost if the
process stops right after. After the commit a background thread of the publishing process
sends what is due; `isd webhooks deliver` does the same from cron or the scheduler, for
notices whose retry falls after that process has gone. A delivery is claimed with a
conditional UPDATE, so two processes never send the same attempt.

Every attempt is recorded (status code or error, duration). A failed attempt is retried
after WEBHOOK_BACKOFF_SECONDS * 2**(attempt - 1), up to WEBHOOK_MAX_ATTEMPTS attempts.

The body never carries records: the version, its go-live date, hashes and links. Each
subscriber has its own secret; `X-ISD-Signature: sha256=<hex>` is HMAC-SHA256 of the exact
body bytes with it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import click
from flask import Flask, current_app, has_app_context, has_request_context, request
from flask.cli import with_appcontext
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from isd_service import audit, events
from isd_service.models import Version, WebhookAttempt, WebhookDelivery, WebhookSubscription
from isd_service.releases import manifest

log = logging.getLogger(__name__)

EVENT = "version.published"
ENVELOPES = ("plain", "dip")
SECRET_PREFIX = "whsec_"
DEFAULTS = {
    "WEBHOOK_DELIVERY": "thread",  # or "queue": only `isd webhooks deliver` sends
    "WEBHOOK_BACKOFF_SECONDS": 30.0,
    "WEBHOOK_MAX_ATTEMPTS": 6,
    "WEBHOOK_TIMEOUT_SECONDS": 10.0,
    "DIP_ENVIRONMENT_TAG": "prod",
    "DIP_SENDER_ID": "ISDA",
    "DIP_INTERFACE_ID": "IF-176",
}
MAX_DIP_BYTES = 100_000  # the DIP refuses larger requests

_lock = threading.Lock()
_queued: set[int] = set()  # publications (by object id) that queued notices, until committed


class SubscriptionRefused(ValueError):
    """The subscription asked for is not valid; the message says why."""


def setting(name: str) -> Any:
    if not has_app_context():
        return DEFAULTS[name]
    return current_app.config.get(name, DEFAULTS[name])


def now_utc() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


# --- subscriptions -------------------------------------------------------------------------

def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise SubscriptionRefused("url must be an http or https URL of at most 2000 characters")
    if parts.username or parts.password:
        raise SubscriptionRefused("url must not carry credentials: each notice is signed")
    return url


def subscribe(session: Session, *, url: str, description: str | None, envelope: str,
              actor: str, organisation: str | None = None) -> tuple[WebhookSubscription, str]:
    """Add a subscriber and commit; return it with its secret (shown this once)."""
    if envelope not in ENVELOPES:
        raise SubscriptionRefused(f"envelope must be one of {', '.join(ENVELOPES)}")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    row = WebhookSubscription(url=check_url(url), secret=secret, description=description,
                              envelope=envelope, created_by=actor, created_at=now_utc())
    session.add(row)
    session.flush()
    audit.record(session, action="webhook.subscribe", actor=actor, organisation=organisation,
                 subject=f"webhook {row.id}",
                 details={"webhook": row.id, "url": row.url, "envelope": envelope})
    session.commit()
    return row, secret


def active(session: Session) -> list[WebhookSubscription]:
    return list(session.scalars(select(WebhookSubscription)
                                .where(WebhookSubscription.deleted_at.is_(None))
                                .order_by(WebhookSubscription.id)))


def unsubscribe(session: Session, subscription: WebhookSubscription, *, actor: str = "cli",
                organisation: str | None = None) -> None:
    """Stop notices to a subscriber; its deliveries stay visible, pending ones are dropped."""
    moment = now_utc()
    subscription.deleted_at = moment
    session.execute(update(WebhookDelivery).where(
        WebhookDelivery.subscription_id == subscription.id,
        WebhookDelivery.state == "pending").values(state="cancelled"))
    audit.record(session, action="webhook.unsubscribe", actor=actor, organisation=organisation,
                 subject=f"webhook {subscription.id}",
                 details={"webhook": subscription.id, "url": subscription.url})
    session.commit()


# --- notices -------------------------------------------------------------------------------

def public_url() -> str:
    url = ((current_app.config.get("PUBLIC_URL") if has_app_context() else None)
           or os.environ.get("ISD_PUBLIC_URL"))
    if not url:
        url = request.url_root if has_request_context() else "http://127.0.0.1:8000/"
    return url.rstrip("/")


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


def dip_envelope(body: dict[str, Any], subscription_id: int) -> dict[str, Any]:
    """The same notice as a DIP publication message: CommonBlock S0, S1, D0."""
    stamp = now_utc().isoformat().replace("+00:00", "Z")
    correlation = str(uuid.uuid4())
    return {"payload": {
        "CommonBlock": {
            "S0": {"interfaceID": setting("DIP_INTERFACE_ID"), "schemaVersion": "1.0",
                   "eventCode": "ISD_VERSION_PUBLISHED"},
            "S1": {"environmentTag": setting("DIP_ENVIRONMENT_TAG"),
                   "senderUniqueReference": f"ISD-{body['version']}-{subscription_id}",
                   "senderTimestamp": stamp, "senderDIPID": setting("DIP_SENDER_ID"),
                   "senderRoleID": "ISDA", "senderCorrelationID": correlation},
            "D0": {"transactionID": str(uuid.uuid4()), "transactionTimestamp": stamp,
                   "publicationID": f"ISD-{body['version']}",
                   "initialCorrelationID": correlation, "replayIndicator": False},
        },
        "CustomBlock": body,
    }}


def _enqueue(version: Version, *, session: Session, **_: Any) -> None:
    """Queue one delivery per subscriber, inside the publication's transaction."""
    subscriptions = active(session)
    if not subscriptions:
        return
    body = notice(version, public_url())
    moment = now_utc()
    for sub in subscriptions:
        content = dip_envelope(body, sub.id) if sub.envelope == "dip" else body
        text = json.dumps(content, separators=(",", ":"), ensure_ascii=False)
        session.add(WebhookDelivery(subscription_id=sub.id, version=version.number,
                                    body=text, state="pending", attempts=0,
                                    next_attempt_at=moment, created_at=moment))
    with _lock:
        _queued.add(id(version))


def _published(version: Version, **_: Any) -> None:
    """After the commit: start sending, if this publication queued any notice."""
    with _lock:
        if id(version) not in _queued:
            return
        _queued.discard(id(version))
    if has_app_context() and setting("WEBHOOK_DELIVERY") == "thread":
        kick(current_app._get_current_object())  # type: ignore[attr-defined]


def connect_signals() -> None:
    """Listen to publications (idempotent: blinker keeps one connection each)."""
    events.version_publishing.connect(_enqueue)
    events.version_published.connect(_published)


# --- delivery ------------------------------------------------------------------------------

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer like any other non-2xx: the notice is not re-sent elsewhere."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect())


def post(url: str, body: bytes, headers: dict[str, str], timeout: float
         ) -> tuple[int | None, str | None]:
    """POST a notice; return (status code, error), an error when there was no 2xx answer."""
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with _opener.open(req, timeout=timeout) as response:
            response.read(65536)
            return response.status, None
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, str(getattr(exc, "reason", exc))[:500]


def deliver_due(session: Session) -> float | None:
    """Send every delivery that is due; return the seconds until the next retry, or None."""
    timeout = float(setting("WEBHOOK_TIMEOUT_SECONDS"))
    while True:
        moment = now_utc()
        free = or_(WebhookDelivery.claimed_until.is_(None),
                   WebhookDelivery.claimed_until < moment)
        due = session.scalars(select(WebhookDelivery.id).where(
            WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= moment, free)
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(1)).first()
        if due is None:
            break
        claimed = session.execute(update(WebhookDelivery).where(
            WebhookDelivery.id == due, WebhookDelivery.state == "pending", free)
            .values(claimed_until=moment + timedelta(seconds=timeout + 60)))
        session.commit()
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue  # another process took it
        _attempt(session, due, timeout)
    upcoming = session.scalar(select(func.min(WebhookDelivery.next_attempt_at))
                              .where(WebhookDelivery.state == "pending"))
    session.commit()
    if upcoming is None:
        return None
    return max(0.0, (aware(upcoming) - now_utc()).total_seconds())


def _attempt(session: Session, delivery_id: int, timeout: float) -> None:
    delivery = session.get(WebhookDelivery, delivery_id)
    assert delivery is not None
    sub = session.get(WebhookSubscription, delivery.subscription_id)
    assert sub is not None
    body = delivery.body.encode("utf-8")
    headers = {"Content-Type": "application/json", "User-Agent": "isd-service-webhooks/1",
               "X-ISD-Event": EVENT, "X-ISD-Delivery": str(delivery.id),
               "X-ISD-Signature": sign(sub.secret, body)}
    started = time.monotonic()
    status, error = post(sub.url, body, headers, timeout)
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
    elif delivery.attempts >= int(setting("WEBHOOK_MAX_ATTEMPTS")):
        delivery.state = "failed"
    else:
        backoff = float(setting("WEBHOOK_BACKOFF_SECONDS")) * 2 ** (delivery.attempts - 1)
        delivery.next_attempt_at = moment + timedelta(seconds=backoff)
    session.commit()


# --- the background sender of a web (or CLI) process ---------------------------------------

class _Worker:
    def __init__(self, app: Flask):
        self.app = app
        self.wake = threading.Event()
        self.stopping = False
        self.thread = threading.Thread(target=self.run, name="isd-webhooks", daemon=True)

    def run(self) -> None:
        while True:
            self.wake.clear()
            try:
                with self.app.app_context():
                    from isd_service.extensions import database

                    session = database().session_factory()
                    try:
                        delay = deliver_due(session)
                    finally:
                        session.close()
            except Exception:  # a database hiccup must not kill the sender for good
                log.exception("webhook delivery failed; retrying")
                delay = float(self.app.config.get("WEBHOOK_BACKOFF_SECONDS",
                                                  DEFAULTS["WEBHOOK_BACKOFF_SECONDS"]))
            if delay is None:
                with _lock:
                    if not self.wake.is_set():
                        self.stopping = True
                        return
                continue
            self.wake.wait(min(delay, 300.0))


_workers: dict[int, _Worker] = {}


def kick(app: Flask) -> None:
    """Make sure this process's sender runs and looks at the queue now."""
    with _lock:
        worker = _workers.get(id(app))
        if worker is None or worker.stopping or not worker.thread.is_alive():
            worker = _Worker(app)
            _workers[id(app)] = worker
            worker.thread.start()
        worker.wake.set()


def wait_idle(app: Flask, timeout: float) -> bool:
    """Wait until this process's sender has nothing left to send (tests, shutdown)."""
    worker = _workers.get(id(app))
    if worker is None:
        return True
    worker.thread.join(timeout)
    return not worker.thread.is_alive()


# --- what admins see -----------------------------------------------------------------------

def subscription_dict(sub: WebhookSubscription) -> dict[str, Any]:
    return {"id": sub.id, "url": sub.url, "description": sub.description,
            "envelope": sub.envelope, "created_by": sub.created_by,
            "created_at": _iso(sub.created_at),
            "deleted_at": _iso(sub.deleted_at) if sub.deleted_at else None}


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
                {"number": a.number, "at": _iso(a.at), "status_code": a.status_code,
                 "error": a.error, "duration_ms": a.duration_ms})
    return [{"id": r.id, "version": r.version, "state": r.state, "attempts": r.attempts,
             "next_attempt_at": _iso(r.next_attempt_at) if r.state == "pending" else None,
             "created_at": _iso(r.created_at),
             "delivered_at": _iso(r.delivered_at) if r.delivered_at else None,
             "body_sha256": hashlib.sha256(r.body.encode("utf-8")).hexdigest(),
             "tries": attempts[r.id]} for r in rows]


def _iso(moment: datetime) -> str:
    return aware(moment).astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- command line --------------------------------------------------------------------------

@click.group("webhooks")
def webhooks_group() -> None:
    """Webhook notices of publications."""


@webhooks_group.command("deliver")
@with_appcontext
def deliver_command() -> None:
    """Send every notice that is due now (run it from cron or the scheduler)."""
    from isd_service.extensions import session

    upcoming = deliver_due(session())
    click.echo("nothing pending" if upcoming is None
               else f"next retry in {upcoming:.0f} s")
