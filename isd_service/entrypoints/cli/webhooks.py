"""`isd webhooks deliver`: send the publication notices that are due."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer.webhooks import deliver_due


@click.group("webhooks")
def webhooks_group() -> None:
    """Webhook notices of publications."""


@webhooks_group.command("deliver")
@with_appcontext
def deliver_command() -> None:
    """Send every notice that is due now (run it from cron or the scheduler)."""
    upcoming = deliver_due(uow())
    click.echo("nothing pending" if upcoming is None else f"next retry in {upcoming:.0f} s")
