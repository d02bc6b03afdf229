"""Bearer tokens for the admin API: random, shown once, stored as SHA-256, with roles."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isd_service import audit
from isd_service.models import ApiToken

ROLES = ("loader", "publisher", "admin")
ORG_PATTERN = re.compile(r"^[A-Z0-9_]{4}$")
TOKEN_PREFIX = "isd_"


class AuthError(Exception):
    def __init__(self, message: str, status: int):
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class Caller:
    """Who is asking: the token's organisation and roles."""

    token_id: int | None
    organisation: str | None
    roles: frozenset[str]

    @property
    def actor(self) -> str:
        return f"token:{self.token_id}" if self.token_id else "cli"

    def require(self, *roles: str) -> None:
        """Refuse unless the caller holds one of ``roles`` (admin holds every role)."""
        if "admin" in self.roles or self.roles & set(roles):
            return
        raise AuthError(f"this needs the role {' or '.join(roles)}", 403)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    session: Session, *, organisation: str, roles: list[str],
    expires_at: datetime | None = None, description: str | None = None,
    actor: str = "cli", actor_organisation: str | None = None,
) -> str:
    """Create a token and return it: this is the only time its text is known; commit."""
    return issue_token(session, organisation=organisation, roles=roles, expires_at=expires_at,
                       description=description, actor=actor,
                       actor_organisation=actor_organisation)[0]


def issue_token(
    session: Session, *, organisation: str, roles: list[str],
    expires_at: datetime | None = None, description: str | None = None,
    actor: str = "cli", actor_organisation: str | None = None,
) -> tuple[str, ApiToken]:
    """Create a token; return its text (never stored) and its row; commit.

    ``actor`` (and its organisation) is who asked, recorded in the audit log.
    """
    if not ORG_PATTERN.match(organisation):
        raise ValueError("an organisation is a 4-character market participant id (A-Z, 0-9)")
    unknown = sorted(set(roles) - set(ROLES))
    if not roles or unknown:
        raise ValueError(f"roles must be some of {', '.join(ROLES)}")
    if description is not None and len(description) > 200:
        raise ValueError("a description is at most 200 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(token_sha256=_digest(token), organisation=organisation,
                   roles=sorted(set(roles)), description=description,
                   created_at=datetime.now(UTC), expires_at=expires_at)
    session.add(row)
    session.flush()
    audit.record(session, action="token.create", actor=actor, organisation=actor_organisation,
                 subject=f"token {row.id}", details=token_summary(row))
    session.commit()
    return token, row


def revoke_token(
    session: Session, token_id: int, *, actor: str = "cli",
    actor_organisation: str | None = None,
) -> ApiToken:
    """Revoke a token from now on; LookupError if there is none, ValueError if already; commit."""
    row = session.get(ApiToken, token_id, with_for_update=True)
    if row is None:
        session.rollback()
        raise LookupError(f"no token with id {token_id}")
    if row.revoked_at is not None:
        session.rollback()
        raise ValueError(f"token {token_id} was already revoked")
    row.revoked_at = datetime.now(UTC)
    audit.record(session, action="token.revoke", actor=actor, organisation=actor_organisation,
                 subject=f"token {row.id}", details=token_summary(row))
    session.commit()
    return row


def list_tokens(session: Session) -> list[ApiToken]:
    """Every token, newest first (their hashes stay in the database)."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id.desc())))


def token_summary(row: ApiToken) -> dict[str, Any]:
    """What may be shown of a token: never its text nor its hash."""
    return {"id": row.id, "organisation": row.organisation, "roles": list(row.roles),
            "description": row.description, "created_at": _iso(row.created_at),
            "expires_at": _iso(row.expires_at), "revoked_at": _iso(row.revoked_at)}


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return _aware(moment).astimezone(UTC).isoformat().replace("+00:00", "Z")


def authenticate(session: Session, header: str | None) -> Caller:
    """Resolve an `Authorization: Bearer ...` header to its caller, or refuse with 401."""
    if not header:
        raise AuthError("this needs a token: Authorization: Bearer <token>", 401)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("the Authorization header must be 'Bearer <token>'", 401)
    row = session.scalars(select(ApiToken).where(
        ApiToken.token_sha256 == _digest(token.strip()))).first()
    # Reading the token must not open a long transaction that a later write would have to
    # upgrade (SQLite); the services start their own.
    session.rollback()
    now = datetime.now(UTC)
    if row is None:
        raise AuthError("unknown token", 401)
    if row.revoked_at is not None:
        raise AuthError("this token has been revoked", 401)
    if row.expires_at is not None and _aware(row.expires_at) <= now:
        raise AuthError("this token has expired", 401)
    return Caller(token_id=row.id, organisation=row.organisation, roles=frozenset(row.roles))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
