"""Who may do what: callers, their organisation and roles (pure).

Reading is public. Changing needs a token, whose holder has one or more roles: ``loader``
loads and reads the draft; ``publisher`` also publishes, plans releases and discards;
``admin`` may do everything (catalogue changes, tokens, webhooks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from isd_service.domain.errors import DomainError

ROLES = ("loader", "publisher", "admin")
ORG_PATTERN = re.compile(r"^[A-Z0-9_]{4}$")


class Unauthorized(DomainError):
    """No valid token: 401."""

    status = 401
    slug = "unauthorized"


class Forbidden(DomainError):
    """A valid token whose roles may not do this: 403."""

    status = 403
    slug = "forbidden"


@dataclass(frozen=True)
class Caller:
    """Who is asking: the token's organisation and roles (no token: the command line)."""

    token_id: int | None
    organisation: str | None
    roles: frozenset[str]
    # The token holder's name (four eyes); None: an unnamed token stands for itself.
    name: str | None = None

    @property
    def actor(self) -> str:
        return f"token:{self.token_id}" if self.token_id else "cli"

    @property
    def holder(self) -> str:
        """Who this is for four-eyes publication: the holder's name, or the token."""
        return self.name or self.actor

    def require(self, *roles: str) -> None:
        """Refuse unless the caller holds one of ``roles`` (admin holds every role)."""
        if "admin" in self.roles or self.roles & set(roles):
            return
        raise Forbidden(f"this needs the role {' or '.join(roles)}")
