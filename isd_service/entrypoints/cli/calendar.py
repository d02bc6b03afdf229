"""The `isd scheduler` and `isd release ...` commands."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, date, datetime, time

import click
from flask import current_app
from flask.cli import with_appcontext

from isd_service.adapters import repository
from isd_service.config import EMPTY_POLICIES
from isd_service.domain.errors import DomainError
from isd_service.domain.recurrence import Rule
from isd_service.entrypoints import scheduler
from isd_service.entrypoints.cli import refused
from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer import calendar
from isd_service.service_layer.calendar import release_dict

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _moment(value: str, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=what) from None
    if moment.tzinfo is None:
        raise click.BadParameter("give the offset, e.g. 2027-01-19T12:00:00+00:00",
                                 param_hint=what)
    return moment


def _day(value: str, what: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a YYYY-MM-DD date", param_hint=what) from None


def _show(release: dict[str, object]) -> str:
    return (f"{release['id']:>4}  {release['state']:<9}  version {release['version'] or '-':<5}"
            f"  deadline {release['change_deadline']}  publish {release['publish_at']}"
            f"  go-live {release['go_live_date']}")


@click.command("scheduler")
@with_appcontext
def scheduler_command() -> None:
    """Run the release scheduler in the foreground until SIGTERM (one process only)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scheduler.Scheduler(current_app._get_current_object()).run()  # type: ignore[attr-defined]


@click.group("release")
def release_group() -> None:
    """Plan, list and cancel the releases of the calendar."""


@release_group.command("create")
@click.option("--deadline", required=True, help="change-request deadline, ISO 8601 with offset")
@click.option("--publish-at", required=True, help="publish time, ISO 8601 with offset")
@click.option("--go-live", required=True, help="go-live date, YYYY-MM-DD")
@click.option("--version", type=click.IntRange(1, 2**31 - 1), help="the planned version")
@click.option("--empty", type=click.Choice(EMPTY_POLICIES),
              help="an empty draft at publish time: skip or publish (default: ISD_EMPTY_RELEASE)")
@with_appcontext
def release_create(deadline: str, publish_at: str, go_live: str, version: int | None,
                   empty: str | None) -> None:
    """Plan a release; prints its id as the last line."""
    try:
        row = calendar.create_release(
            uow(), change_deadline=_moment(deadline, "--deadline"),
            publish_at=_moment(publish_at, "--publish-at"), go_live_date=_day(go_live, "--go-live"),
            version=version, empty_draft=empty, actor="cli")
    except DomainError as exc:
        refused(exc)
    click.echo(_show(release_dict(row)))
    click.echo(str(row.id))


@release_group.command("generate")
@click.option("--count", default=3, show_default=True, type=click.IntRange(1, 36))
@click.option("--weekday", type=click.Choice(WEEKDAYS), default="tue", show_default=True)
@click.option("--nth", type=click.IntRange(-1, 4), default=3, show_default=True,
              help="which one in the month (1-4, -1 for the last)")
@click.option("--at", "at_", default="12:00", show_default=True, help="London time HH:MM")
@click.option("--go-live-days", default=14, show_default=True, type=click.IntRange(0, 366))
@click.option("--deadline-working-days", default=5, show_default=True,
              type=click.IntRange(0, 60))
@with_appcontext
def release_generate(count: int, weekday: str, nth: int, at_: str, go_live_days: int,
                     deadline_working_days: int) -> None:
    """Plan releases by a monthly rule, after the last planned one."""
    if nth == 0:
        raise click.BadParameter("1-4 or -1", param_hint="--nth")
    try:
        at = time.fromisoformat(at_)
    except ValueError:
        raise click.BadParameter(f"{at_!r} is not HH:MM", param_hint="--at") from None
    rule = Rule(weekday=WEEKDAYS.index(weekday), nth=nth, at=at, go_live_days=go_live_days,
                deadline_working_days=deadline_working_days)
    try:
        rows = calendar.generate(uow(), rule, count, actor="cli", now=datetime.now(UTC))
    except DomainError as exc:
        refused(exc)
    for row in rows:
        click.echo(_show(release_dict(row)))


@release_group.command("list")
@with_appcontext
def release_list() -> None:
    """List the calendar, soonest first."""
    for row in repository.releases(uow().session):
        click.echo(_show(release_dict(row)))


@release_group.command("cancel")
@click.argument("release_id", type=click.IntRange(1, 2**31 - 1))
@with_appcontext
def release_cancel(release_id: int) -> None:
    """Cancel a release (a frozen set goes back into the open draft)."""
    try:
        row = calendar.cancel_release(uow(), release_id)
    except DomainError as exc:
        refused(exc)
    click.echo(_show(release_dict(row)))
