"""Bearer tokens for the admin API: random, shown once, stored as SHA-256, with roles."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

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
) -> str:
    """Create a token and return it: this is the only time its text is known."""
    if not ORG_PATTERN.match(organisation):
        raise ValueError("an organisation is a 4-character market participant id (A-Z, 0-9)")
    unknown = sorted(set(roles) - set(ROLES))
    if not roles or unknown:
        raise ValueError(f"roles must be some of {', '.join(ROLES)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(token_sha256=_digest(token), organisation=organisation,
                         roles=sorted(set(roles)), description=description,
                         created_at=datetime.now(UTC), expires_at=expires_at))
    session.commit()
    return token


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
