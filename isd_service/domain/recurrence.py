"""Recurring release rules: publication days and deadlines in London time (pure).

The market works to the London wall clock, so a rule's times are London times and become UTC
instants only for one day at a time: 12:00 is 12:00 UTC in winter and 11:00 UTC in summer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


def london_time(day: date, at: time) -> datetime:
    """The UTC instant of a London wall-clock time on a day.

    A time in the spring gap (01:00-02:00 on the last Sunday of March) does not exist: it
    moves an hour later. A time repeated in October takes its first (BST) occurrence.
    """
    local = datetime.combine(day, at, tzinfo=LONDON)  # fold=0: the first occurrence
    return local.astimezone(UTC)


@dataclass(frozen=True)
class Rule:
    """Monthly: publish on the nth (1-4, or -1 for the last) weekday (0 = Monday) at a London
    time; go live ``go_live_days`` later; deadline ``deadline_working_days`` working days
    (Monday to Friday) before the publish day, at the same London time."""

    weekday: int
    nth: int
    at: time
    go_live_days: int = 14
    deadline_working_days: int = 5


def nth_weekday(year: int, month: int, weekday: int, nth: int) -> date:
    """The nth ``weekday`` (0 = Monday) of a month; any ``nth`` below 1 means the last."""
    if nth > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (nth - 1))
    following = date(year + month // 12, month % 12 + 1, 1)
    last = following - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def working_days_before(day: date, n: int) -> date:
    """The day ``n`` working days (Monday to Friday; bank holidays count) before ``day``."""
    while n > 0:
        day -= timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


def occurrences(rule: Rule, after: datetime, count: int) -> list[tuple[datetime, datetime, date]]:
    """The next ``count`` (deadline, publish time, go-live date) of a rule after a moment.

    A month counts only if its deadline is still to come: a release must be open for changes.
    """
    out: list[tuple[datetime, datetime, date]] = []
    local = after.astimezone(LONDON)
    year, month = local.year, local.month
    while len(out) < count:
        day = nth_weekday(year, month, rule.weekday, rule.nth)
        publish_at = london_time(day, rule.at)
        deadline = london_time(working_days_before(day, rule.deadline_working_days), rule.at)
        if deadline > after:
            out.append((deadline, publish_at, day + timedelta(days=rule.go_live_days)))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out
