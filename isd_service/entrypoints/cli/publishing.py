"""`isd publish`: the draft (or the frozen release's set) becomes the next version."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import with_appcontext

from isd_service.domain.errors import DomainError
from isd_service.entrypoints.cli import refused
from isd_service.entrypoints.cli.downloads import build_after_publication
from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer import publishing


@click.command("publish")
@click.option("--version", type=click.IntRange(1, 2**31 - 1),
              help="the version number: above the latest [default: latest + 1]")
@click.option("--go-live", type=click.DateTime(formats=["%Y-%m-%d"]), help="YYYY-MM-DD")
@click.option("--force", is_flag=True, help="publish even if the draft is empty")
@click.option("--by", "actor", default="cli", show_default=True)
@with_appcontext
def publish_command(version: int | None, go_live: datetime | None, force: bool,
                    actor: str) -> None:
    """Publish the draft as the next version; prints the version as the last line."""
    started = datetime.now(UTC)
    try:
        row = publishing.publish(uow(), actor=actor,
                                 organisation=current_app.config["ADMIN_ORG"],
                                 version=version,
                                 go_live_date=go_live.date() if go_live else None, force=force)
    except DomainError as exc:
        refused(exc)
    seconds = (datetime.now(UTC) - started).total_seconds()
    click.echo(f"published {row.record_count} records, sha256 {row.sha256} "
               f"in {seconds:.1f}s")
    try:
        build_after_publication(current_app._get_current_object(),  # type: ignore[attr-defined]
                                row.number)
    except Exception as exc:  # published all the same: the files get built on first request
        click.echo(f"warning: version {row.number} is published, but building its downloads "
                   f"failed: {exc}", err=True)
    click.echo(str(row.number))
