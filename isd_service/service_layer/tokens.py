"""Bearer tokens for the admin API: random, shown once, stored as SHA-256, with roles."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isd_service.adapters.orm import ApiToken
from isd_service.domain.access import ORG_PATTERN, ROLES, Caller, Unauthorized
from isd_service.domain.errors import Conflict, Invalid, NotFound
from isd_service.domain.moments import iso_utc, iso_utc_or_none
from isd_service.service_layer import audit
from isd_service.service_layer.unit_of_work import UnitOfWork

TOKEN_PREFIX = "isd_"
NAME_MAX = 100


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(
    uow: UnitOfWork, *, organisation: str, roles: list[str],
    expires_at: datetime | None = None, description: str | None = None,
    name: str | None = None, actor: str = "cli", actor_organisation: str | None = None,
) -> tuple[str, ApiToken]:
    """Create a token; return its text (never stored) and its row.

    ``name`` is who holds it (a person or team; four-eyes publication tells holders apart
    by it). ``actor`` (and its organisation) is who asked, recorded in the audit log.
    """
    if not ORG_PATTERN.match(organisation):
        raise Invalid("an organisation is a 4-character market participant id (A-Z, 0-9)",
                      field="organisation")
    unknown = sorted(set(roles) - set(ROLES))
    if not roles or unknown:
        raise Invalid(f"roles must be some of {', '.join(ROLES)}", field="roles")
    if description is not None and len(description) > 200:
        raise Invalid("a description is at most 200 characters", field="description")
    if name is not None:
        name = name.strip()
        if not 1 <= len(name) <= NAME_MAX or not name.isprintable():
            raise Invalid(f"a holder's name is 1 to {NAME_MAX} printable characters",
                          field="name")
        if name.startswith("token:") or name in ("cli", "scheduler"):
            raise Invalid(f"{name!r} names no person: choose the holder's own name",
                          field="name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with uow.transaction(lock=False) as session:
        row = ApiToken(token_sha256=_digest(token), organisation=organisation, name=name,
                       roles=sorted(set(roles)), description=description,
                       created_at=datetime.now(UTC), expires_at=expires_at)
        session.add(row)
        session.flush()
        audit.record(session, action="token.create", actor=actor,
                     organisation=actor_organisation, subject=f"token {row.id}",
                     details=token_summary(row))
    return token, row


def revoke_token(
    uow: UnitOfWork, token_id: int, *, actor: str = "cli",
    actor_organisation: str | None = None,
) -> ApiToken:
    """Revoke a token from now on; NotFound if there is none, Conflict if already revoked."""
    with uow.transaction(lock=False) as session:
        row = (session.get(ApiToken, token_id, with_for_update=True)
               if 1 <= token_id <= 2**31 - 1 else None)
        if row is None:
            raise NotFound(f"no token with id {token_id}", slug="no-such-token")
        if row.revoked_at is not None:
            raise Conflict(f"token {token_id} was already revoked", slug="already-revoked")
        row.revoked_at = datetime.now(UTC)
        audit.record(session, action="token.revoke", actor=actor,
                     organisation=actor_organisation, subject=f"token {row.id}",
                     details=token_summary(row))
    return row


def list_tokens(session: Session) -> list[ApiToken]:
    """Every token, newest first (their hashes stay in the database)."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id.desc())))


def token_summary(row: ApiToken) -> dict[str, Any]:
    """What may be shown of a token: never its text nor its hash."""
    return {"id": row.id, "name": row.name, "organisation": row.organisation,
            "roles": list(row.roles),
            "description": row.description, "created_at": iso_utc(row.created_at),
            "expires_at": iso_utc_or_none(row.expires_at),
            "revoked_at": iso_utc_or_none(row.revoked_at)}


def state(row: ApiToken, now: datetime) -> str:
    """active, expired or revoked."""
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def authenticate(uow: UnitOfWork, header: str | None) -> Caller:
    """Resolve an `Authorization: Bearer ...` header to its caller, or refuse with 401."""
    if not header:
        raise Unauthorized("this needs a token: Authorization: Bearer <token>")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    row = uow.session.scalars(select(ApiToken).where(
        ApiToken.token_sha256 == _digest(token.strip()))).first()
    # Reading the token must not keep a transaction open that a later write would have to
    # upgrade (SQLite); the use cases start their own.
    uow.end_read()
    if row is None:
        raise Unauthorized("unknown token")
    return caller_of(row)


def find(uow: UnitOfWork, token: str) -> ApiToken | None:
    """The row of a token's text, if any."""
    return uow.session.scalars(select(ApiToken).where(
        ApiToken.token_sha256 == _digest(token.strip()))).first()


def caller_of(row: ApiToken) -> Caller:
    """The caller a token row stands for, or 401 when it is revoked or expired."""
    if row.revoked_at is not None:
        raise Unauthorized("this token has been revoked")
    if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
        raise Unauthorized("this token has expired")
    return Caller(token_id=row.id, organisation=row.organisation, roles=frozenset(row.roles),
                  name=row.name)


def holders_of(session: Session, actors: set[str]) -> set[str]:
    """The holders behind recorded actors: a named token's holder, else the actor itself."""
    ids = {int(a.removeprefix("token:")) for a in actors
           if a.startswith("token:") and a.removeprefix("token:").isdigit()}
    names = dict(session.execute(select(ApiToken.id, ApiToken.name).where(
        ApiToken.id.in_(ids))).all()) if ids else {}
    out = set()
    for a in actors:
        token_id = a.removeprefix("token:")
        name = names.get(int(token_id)) if a.startswith("token:") and token_id.isdigit() else None
        out.add(name or a)
    return out
