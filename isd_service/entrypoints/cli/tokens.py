"""`isd token create|list|revoke`: API tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
from flask import current_app
from flask.cli import with_appcontext

from isd_service.domain.access import ROLES
from isd_service.domain.errors import DomainError
from isd_service.entrypoints.cli import refused
from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer.tokens import (
    issue_token,
    list_tokens,
    revoke_token,
    state,
    token_summary,
)


@click.group("token")
def token_group() -> None:
    """Manage API tokens."""


@token_group.command("create")
@click.option("--org", required=True, help="4-character market participant id")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ROLES))
@click.option("--days", type=click.IntRange(1, 3650), help="expire after this many days")
@click.option("--description", help="what the token is for")
@click.option("--name", help="who holds it (four-eyes publication tells holders apart by it)")
@with_appcontext
def token_create(org: str, roles: tuple[str, ...], days: int | None,
                 description: str | None, name: str | None) -> None:
    """Create a token; it is printed once, as the last line."""
    expires = datetime.now(UTC) + timedelta(days=days) if days else None
    try:
        token, _row = issue_token(uow(), organisation=org, roles=list(roles),
                                  expires_at=expires, description=description, name=name,
                                  actor="cli",
                                  actor_organisation=current_app.config["ADMIN_ORG"])
    except DomainError as exc:
        refused(exc)
    holder = name.strip() if name else "unnamed"
    click.echo(f"token for {holder} of {org} ({', '.join(sorted(set(roles)))}); it is not "
               "shown again:")
    click.echo(token)


@token_group.command("list")
@with_appcontext
def token_list() -> None:
    """List the tokens (id, organisation, roles, state); never their text."""
    now = datetime.now(UTC)
    for row in list_tokens(uow().session):
        info = token_summary(row)
        click.echo(f"{info['id']:>5}  {info['name'] or '(unnamed)':<20} {info['organisation']}  "
                   f"{','.join(info['roles']):<24} "
                   f"{state(row, now):<8} created {info['created_at']}  expires "
                   f"{info['expires_at']}"
                   + (f"  {info['description']}" if info["description"] else ""))


@token_group.command("revoke")
@click.argument("token_id", type=click.IntRange(1))
@with_appcontext
def token_revoke(token_id: int) -> None:
    """Revoke a token by its id: refused from now on."""
    try:
        revoke_token(uow(), token_id, actor="cli",
                     actor_organisation=current_app.config["ADMIN_ORG"])
    except DomainError as exc:
        refused(exc)
    click.echo(f"token {token_id} revoked")
