"""The calendar as iCalendar: what calendar clients read, the same as the hand-written writer
it replaced gave them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from icalendar import Calendar

from isd_service.domain.formats.ical import write


@dataclass
class R:
    id: int
    version: int | None
    published_version: int | None
    state: str
    change_deadline: datetime
    publish_at: datetime
    go_live_date: date
    updated_at: datetime


RELEASES = [
    R(1, 375, None, "planned", datetime(2027, 1, 12, 12, tzinfo=UTC),
      datetime(2027, 1, 19, 12, tzinfo=UTC), date(2027, 2, 2),
      datetime(2027, 1, 5, 9, 30, 15, 123456, tzinfo=UTC)),
    # No version planned: the summary names the release by its id.
    R(2, None, None, "cancelled", datetime(2027, 3, 22, 12, tzinfo=UTC),
      datetime(2027, 3, 28, 11, tzinfo=UTC), date(2027, 4, 4),
      datetime(2027, 1, 6, 10, tzinfo=UTC)),
    # Published as another version than planned.
    R(3, 11, 12, "published", datetime(2026, 12, 8, 12, tzinfo=UTC),
      datetime(2026, 12, 15, 12, tzinfo=UTC), date(2026, 12, 29),
      datetime(2026, 12, 15, 12, 0, 2, tzinfo=UTC)),
]
# Long enough to fold the UID lines, and not ASCII, so a fold must not split a character.
LONG_HOST = "kalender.übertragungsnetzbetreiber-stammdaten.strom-großbritannien.example"


# --- the hand-written writer this module replaced (release_calendar.ical), as it was ----

def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _ical_text(value: str) -> str:
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\n", "\\n"))


def _fold(line: str) -> Iterator[str]:
    data = line.encode("utf-8")
    first = True
    while data:
        limit = 75 if first else 74
        cut = min(limit, len(data))
        while cut < len(data) and (data[cut] & 0xC0) == 0x80:
            cut -= 1
        yield ("" if first else " ") + data[:cut].decode("utf-8")
        data = data[cut:]
        first = False


def _stamp(moment: datetime) -> str:
    return _aware(moment).strftime("%Y%m%dT%H%M%SZ")


def old_ical(releases: list[R], host: str) -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//isd_service//release calendar//EN",
             "CALSCALE:GREGORIAN", "METHOD:PUBLISH", "X-WR-CALNAME:ISD releases"]
    for r in releases:
        name = f"ISD release {r.published_version or r.version or r.id}"
        status = "CANCELLED" if r.state == "cancelled" else "CONFIRMED"
        stamp = _stamp(r.updated_at)
        events_ = [
            ("deadline", f"{name}: change-request deadline",
             [f"DTSTART:{_stamp(r.change_deadline)}", f"DTEND:{_stamp(r.change_deadline)}"]),
            ("publish", f"{name}: publication",
             [f"DTSTART:{_stamp(r.publish_at)}", f"DTEND:{_stamp(r.publish_at)}"]),
            ("go-live", f"{name}: go-live",
             [f"DTSTART;VALUE=DATE:{r.go_live_date:%Y%m%d}",
              f"DTEND;VALUE=DATE:{r.go_live_date + timedelta(days=1):%Y%m%d}"]),
        ]
        for kind, summary, times in events_:
            lines += ["BEGIN:VEVENT", f"UID:release-{r.id}-{kind}@{host}", f"DTSTAMP:{stamp}",
                      *times, f"SUMMARY:{_ical_text(summary)}",
                      f"DESCRIPTION:{_ical_text(f'state: {r.state}')}", f"STATUS:{status}",
                      "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return "".join(f"{part}\r\n" for line in lines for part in _fold(line))


# --- comparing calendars as a client reads them -----------------------------------------

def meaning(text: str) -> list[tuple[str | None, dict[str, Any]]]:
    """Each component in order with its properties' values and parameters, order aside."""
    calendar = Calendar.from_ical(text)
    return [(c.name, {k: (c.decoded(k), dict(v.params)) for k, v in c.items()})
            for c in calendar.walk()]


def unfold(text: str) -> list[str]:
    return text.replace("\r\n ", "").split("\r\n")


@pytest.mark.parametrize("host", ["isd.example.org", LONG_HOST])
@pytest.mark.parametrize("count", [0, 1, 3])
def test_the_calendar_means_what_the_hand_written_one_did(host: str, count: int) -> None:
    releases = RELEASES[:count]
    assert meaning(write(releases, host)) == meaning(old_ical(releases, host))


def test_the_text_a_client_reads() -> None:
    text = write(RELEASES, LONG_HOST)
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    assert any(len(line.encode()) > 75 for line in unfold(text))  # something was folded
    lines = unfold(text)
    assert lines[:6] == ["BEGIN:VCALENDAR", "VERSION:2.0",
                         "PRODID:-//isd_service//release calendar//EN", "CALSCALE:GREGORIAN",
                         "METHOD:PUBLISH", "X-WR-CALNAME:ISD releases"]
    assert lines[-2:] == ["END:VCALENDAR", ""]
    assert lines.count("BEGIN:VEVENT") == lines.count("END:VEVENT") == 9
    assert [line for line in lines if line.startswith("UID:")] == [
        f"UID:release-{n}-{kind}@{LONG_HOST}" for n in (1, 2, 3)
        for kind in ("deadline", "publish", "go-live")]
    # UTC date-times in the Z form (no time zone definitions needed); the go-live day a date.
    for line in ("DTSTAMP:20270105T093015Z", "DTSTART:20270112T120000Z",
                 "DTEND:20270119T120000Z", "DTSTART;VALUE=DATE:20270202",
                 "DTEND;VALUE=DATE:20270203", "DTSTART:20261215T120000Z",
                 "DTSTAMP:20261215T120002Z"):
        assert line in lines
    summaries = [line for line in lines if line.startswith("SUMMARY:")]
    assert summaries[::3] == ["SUMMARY:ISD release 375: change-request deadline",
                              "SUMMARY:ISD release 2: change-request deadline",
                              "SUMMARY:ISD release 12: change-request deadline"]
    assert summaries[1:3] == ["SUMMARY:ISD release 375: publication",
                              "SUMMARY:ISD release 375: go-live"]
    assert lines.count("STATUS:CANCELLED") == 3 and lines.count("STATUS:CONFIRMED") == 6
    assert "DESCRIPTION:state: cancelled" in lines


def test_a_release_keeps_its_uids_when_it_moves() -> None:
    first = RELEASES[0]
    moved = R(**{**vars(first), "publish_at": first.publish_at + timedelta(days=1),
                 "updated_at": first.updated_at + timedelta(hours=1)})
    uids = [[line for line in unfold(write([r], "isd")) if line.startswith("UID:")]
            for r in (first, moved)]
    assert uids[0] == uids[1] and len(uids[0]) == 3
