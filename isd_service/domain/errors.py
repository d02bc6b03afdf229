"""Why a use case was refused: domain errors, each with the HTTP status the API answers with.

A use case that raises one of these has changed nothing (its unit of work rolls back).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal; ``status`` and ``slug`` say how the HTTP API reports it."""

    status = 409
    slug = "conflict"

    def __init__(self, message: str, *, status: int | None = None, field: str | None = None,
                 slug: str | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status
        if slug is not None:
            self.slug = slug
        self.field = field

    @property
    def detail(self) -> str:
        """The problem body's ``detail``."""
        return str(self)

    @property
    def errors(self) -> list[dict[str, Any]] | None:
        """The problem body's ``errors``: the field at fault, when there is one."""
        return [{"field": self.field, "message": str(self)}] if self.field else None


class NotFound(DomainError):
    """The thing asked for does not exist."""

    status = 404
    slug = "not-found"


class Invalid(DomainError):
    """The request's values break a rule (422)."""

    status = 422
    slug = "invalid-request"


class Conflict(DomainError):
    """The request clashes with the state the service is in (409)."""

    status = 409
    slug = "conflict"
