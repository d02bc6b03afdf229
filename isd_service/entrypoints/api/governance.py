"""Admin API for governance (admin role): tokens and the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from marshmallow import fields, validate

from isd_service.domain import cursors
from isd_service.domain.access import ROLES
from isd_service.entrypoints.api.blueprint import Blueprint
from isd_service.entrypoints.api.guard import caller, protect
from isd_service.entrypoints.api.schemas import AuditPage, Strict, TokenList, TokenOut
from isd_service.entrypoints.errors import ApiError
from isd_service.entrypoints.flask_db import session, uow
from isd_service.service_layer import audit
from isd_service.service_layer.tokens import (
    issue_token,
    list_tokens,
    revoke_token,
    token_summary,
)

bp = Blueprint("governance", __name__, description="Tokens and the audit log")


class TokenBody(Strict):
    organisation = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Z0-9_]{4}$", error="a 4-character market participant id (A-Z, 0-9)"))
    roles = fields.List(fields.String(validate=validate.OneOf(ROLES)), required=True,
                        validate=validate.Length(min=1, max=len(ROLES)))
    days = fields.Integer(strict=True, validate=validate.Range(min=1, max=3650),
                          allow_none=True)
    description = fields.String(validate=validate.Length(max=200), allow_none=True)
    name = fields.String(validate=validate.Length(min=1, max=100), allow_none=True,
                         metadata={"description": "who holds the token (four eyes)"})


class AuditQuery(Strict):
    limit = fields.Integer(validate=validate.Range(min=1, max=1000))
    cursor = fields.String(validate=validate.Length(min=1, max=200))
    action = fields.String(validate=validate.Length(min=1, max=40))


protect(bp, "admin")


@bp.post("/tokens")
@bp.arguments(TokenBody)
@bp.response(201, TokenOut)
def post_token(body: dict[str, Any]) -> Any:
    """Create a token; its text is in this answer and never again."""
    days = body.get("days")
    token, row = issue_token(
        uow(), organisation=body["organisation"], roles=body["roles"],
        expires_at=datetime.now(UTC) + timedelta(days=days) if days else None,
        description=body.get("description"), name=body.get("name"), actor=caller().actor,
        actor_organisation=caller().organisation)
    return {**token_summary(row), "token": token}, 201


@bp.get("/tokens")
@bp.response(200, TokenList)
def get_tokens() -> Any:
    return {"tokens": [token_summary(row) for row in list_tokens(session())]}


@bp.delete("/tokens/<int:token_id>")
@bp.response(200, TokenOut)
def delete_token(token_id: int) -> Any:
    """Revoke a token: it is refused from now on (the row stays, for the audit)."""
    row = revoke_token(uow(), token_id, actor=caller().actor,
                       actor_organisation=caller().organisation)
    return token_summary(row)


@bp.get("/audit")
@bp.arguments(AuditQuery, location="query")
@bp.response(200, AuditPage)
def get_audit(query: dict[str, Any]) -> Any:
    """The audit log, newest first, a page at a time (follow next_cursor)."""
    before = None
    if "cursor" in query:
        try:
            before = cursors.decode_id(query["cursor"])
        except ValueError as exc:
            raise ApiError(400, str(exc), slug="invalid-request",
                           errors=[{"field": "cursor", "message": str(exc)}]) from None
    limit = query.get("limit", current_app.config["PAGE_SIZE_DEFAULT"])
    rows, next_before = audit.page(session(), limit=limit, before=before,
                                   action=query.get("action"))
    next_cursor = cursors.encode(next_before) if next_before is not None else None
    return {"events": [audit.to_dict(e) for e in rows], "next_cursor": next_cursor}
