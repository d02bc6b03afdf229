"""Sessions of the admin pages: an API token, checked once at sign-in, exchanged for a random
secret that the browser's cookie carries; the session lasts a fixed time or until sign-out.

Every page resolves the session to the token's caller again, so a revoked or expired token
ends its sessions at once, and the roles are checked exactly as the API checks them.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from isd_service.adapters.orm import AdminSession, ApiToken
from isd_service.domain.access import Caller, Unauthorized
from isd_service.service_layer import audit, tokens
from isd_service.service_layer.unit_of_work import UnitOfWork


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def sign_in(uow: UnitOfWork, token: str, *, minutes: int) -> tuple[str, Caller]:
    """Check a token and open a session for it; return the session's secret and caller."""
    row = tokens.find(uow, token) if token.strip() else None
    uow.end_read()
    if row is None:
        raise Unauthorized("that is not a token of this service")
    who = tokens.caller_of(row)
    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with uow.transaction(lock=False) as session:
        session.add(AdminSession(secret_sha256=_digest(secret), token_id=row.id,
                                 created_at=now, expires_at=now + timedelta(minutes=minutes)))
        audit.record(session, action="session.sign-in", actor=who.actor,
                     organisation=who.organisation, subject=f"token {row.id}",
                     details={"token": row.id, "minutes": minutes})
    return secret, who


def _live(uow: UnitOfWork, secret: str | None) -> AdminSession:
    row = (uow.session.scalars(select(AdminSession).where(
        AdminSession.secret_sha256 == _digest(secret))).first() if secret else None)
    if row is None or row.ended_at is not None:
        raise Unauthorized("sign in first")
    if row.expires_at <= datetime.now(UTC):
        raise Unauthorized("your session has expired: sign in again")
    return row


def resume(uow: UnitOfWork, secret: str | None) -> Caller:
    """The caller of a live session (401 if it is unknown, ended or expired, or its token
    has been revoked or has expired since)."""
    row = _live(uow, secret)
    token = uow.session.get(ApiToken, row.token_id)
    uow.end_read()
    if token is None:
        raise Unauthorized("sign in first")
    return tokens.caller_of(token)


def sign_out(uow: UnitOfWork, secret: str | None) -> None:
    """End a session (signing out twice changes nothing)."""
    with uow.transaction(lock=False) as session:
        row = session.scalars(select(AdminSession).where(
            AdminSession.secret_sha256 == _digest(secret or ""))).first()
        if row is not None and row.ended_at is None:
            row.ended_at = datetime.now(UTC)


def keep_refusal(uow: UnitOfWork, secret: str | None, refusal: dict[str, Any] | None) -> None:
    """Keep a session's last refused load (its problems), for its error table."""
    with uow.transaction(lock=False) as session:
        row = session.scalars(select(AdminSession).where(
            AdminSession.secret_sha256 == _digest(secret or ""))).first()
        if row is not None:
            row.refusal = refusal


def refusal(uow: UnitOfWork, secret: str | None) -> dict[str, Any] | None:
    row = _live(uow, secret)
    out = row.refusal
    uow.end_read()
    return out
