"""The release calendar as iCalendar (RFC 5545), for calendar clients to subscribe to.

Per release three events: its change-request deadline, its publication and its go-live day.
Their UIDs depend only on the release's id, so a client updates (or cancels) the same events
when a release moves, instead of adding new ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from icalendar import Calendar, Event

from isd_service.domain.lifecycle import ReleaseState
from isd_service.domain.schedule import Neighbour

PRODID = "-//isd_service//release calendar//EN"
CALNAME = "ISD releases"


class CalendarRelease(Neighbour, Protocol):
    """A release as the calendar shows it (the ORM row is one)."""

    @property
    def version(self) -> int | None: ...
    @property
    def published_version(self) -> int | None: ...
    @property
    def go_live_date(self) -> date: ...
    @property
    def updated_at(self) -> datetime: ...


def _event(release: CalendarRelease, host: str, kind: str, title: str,
           start: datetime | date, end: datetime | date) -> Event:
    name = f"ISD release {release.published_version or release.version or release.id}"
    event = Event()
    event.add("uid", f"release-{release.id}-{kind}@{host}")
    # The last change of the release, so a client can tell a newer copy of the event.
    event.add("dtstamp", release.updated_at.astimezone(UTC))
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", f"{name}: {title}")
    event.add("description", f"state: {release.state}")
    event.add("status", "CANCELLED" if release.state == ReleaseState.CANCELLED else "CONFIRMED")
    return event


def write(releases: Iterable[CalendarRelease], host: str) -> str:
    """The calendar as iCalendar text: CRLF line ends, lines folded at 75 octets.

    ``host`` makes the UIDs unique to this service. Times are written in UTC (Z form), so
    clients need no time zone definitions; the go-live day is an all-day event.
    """
    calendar = Calendar()
    calendar.add("version", "2.0")
    calendar.add("prodid", PRODID)
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", CALNAME)
    for release in releases:
        deadline = release.change_deadline.astimezone(UTC)
        publish_at = release.publish_at.astimezone(UTC)
        go_live = release.go_live_date
        for event in (
            _event(release, host, "deadline", "change-request deadline", deadline, deadline),
            _event(release, host, "publish", "publication", publish_at, publish_at),
            _event(release, host, "go-live", "go-live", go_live, go_live + timedelta(days=1)),
        ):
            calendar.add_component(event)
    return calendar.to_ical().decode("utf-8")
