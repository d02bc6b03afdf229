"""`isd publish`: the draft (or the frozen release's set) becomes the next version, or (four
eyes) a publication request; `isd publication list|approve|reject` decides on requests."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import with_appcontext

from isd_service.adapters.orm import PublicationRequest, Version
from isd_service.domain.approval import APPROVE, REJECT
from isd_service.domain.errors import DomainError
from isd_service.entrypoints.cli import refused
from isd_service.entrypoints.cli.downloads import build_after_publication
from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer import approvals


@click.command("publish")
@click.option("--version", type=click.IntRange(1, 2**31 - 1),
              help="the version number: above the latest [default: latest + 1]")
@click.option("--go-live", type=click.DateTime(formats=["%Y-%m-%d"]), help="YYYY-MM-DD")
@click.option("--force", is_flag=True, help="publish even if the draft is empty")
@click.option("--by", "actor", default="cli", show_default=True,
              help="who publishes (with four eyes: the requester)")
@with_appcontext
def publish_command(version: int | None, go_live: datetime | None, force: bool,
                    actor: str) -> None:
    """Publish the draft as the next version; prints the version as the last line.

    With ISD_PUBLICATION_APPROVALS above 0 this asks for approval instead and prints the
    publication request's id as the last line.
    """
    started = datetime.now(UTC)
    try:
        row = approvals.request_or_publish(
            uow(), actor=actor, holder=actor, organisation=current_app.config["ADMIN_ORG"],
            version=version, go_live_date=go_live.date() if go_live else None, force=force)
    except DomainError as exc:
        refused(exc)
    if isinstance(row, PublicationRequest):
        click.echo(f"publication request {row.id} awaits {row.approvals_needed} approval(s) "
                   f"by other publishers (isd publication approve {row.id} --by NAME)")
        click.echo(str(row.id))
        return
    published(row, started)


def published(row: Version, started: datetime) -> None:
    """Say what was published, then (BUILD_DOWNLOADS) build its downloads in this process."""
    seconds = (datetime.now(UTC) - started).total_seconds()
    click.echo(f"published {row.record_count} records, sha256 {row.sha256} "
               f"in {seconds:.1f}s")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if app.config["DOWNLOAD_BUILDS"] == "background" and not app.config["BUILD_DOWNLOADS"]:
        click.echo(f"version {row.number}'s downloads are queued for the background builder "
                   "(`isd scheduler`, `isd downloads worker` or `isd serve`)")
    try:
        build_after_publication(app, row.number)
    except Exception as exc:  # published all the same: a builder, or a request, builds them
        click.echo(f"warning: version {row.number} is published, but building its downloads "
                   f"failed: {exc}", err=True)
    click.echo(str(row.number))


@click.group("publication")
def publication_group() -> None:
    """Publication requests (four eyes): list, approve, reject."""


@publication_group.command("list")
@with_appcontext
def publication_list() -> None:
    """List publication requests, newest first."""
    for row in approvals.list_requests(uow().session):
        info = approvals.summary(row)
        click.echo(f"{info['request']:>5}  {info['state']:<17} {info['set']:<30} by "
                   f"{info['holder']}  approvals {info['approvals']}/"
                   f"{info['approvals_needed']}"
                   + (f"  version {info['published_version']}"
                      if info["published_version"] else "")
                   + (f"  ({info['reason']})" if info["reason"] else ""))


def _decide(request_id: int, decision: str, actor: str, comment: str | None) -> None:
    started = datetime.now(UTC)
    try:
        row, version = approvals.decide(uow(), request_id, decision=decision, actor=actor,
                                        holder=actor,
                                        organisation=current_app.config["ADMIN_ORG"],
                                        comment=comment)
    except DomainError as exc:
        refused(exc)
    click.echo(f"publication request {row.id}: {row.state} "
               f"({approvals.approvals_of(row)}/{row.approvals_needed} approvals)")
    if version is not None:
        published(version, started)


@publication_group.command("approve")
@click.argument("request_id", type=click.IntRange(1))
@click.option("--by", "actor", required=True, help="who approves: not the requester")
@click.option("--comment")
@with_appcontext
def publication_approve(request_id: int, actor: str, comment: str | None) -> None:
    """Approve a request; the last approval publishes (the version is the last line)."""
    _decide(request_id, APPROVE, actor, comment)


@publication_group.command("reject")
@click.argument("request_id", type=click.IntRange(1))
@click.option("--by", "actor", required=True, help="who rejects: not the requester")
@click.option("--comment")
@with_appcontext
def publication_reject(request_id: int, actor: str, comment: str | None) -> None:
    """Reject a request."""
    _decide(request_id, REJECT, actor, comment)
