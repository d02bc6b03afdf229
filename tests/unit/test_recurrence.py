"""Recurring rules in London time: nth weekdays, working days and the clock changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from isd_service.domain.recurrence import (
    LONDON,
    Rule,
    london_time,
    nth_weekday,
    occurrences,
    working_days_before,
)


def test_nth_weekday() -> None:
    assert nth_weekday(2027, 1, 1, 3) == date(2027, 1, 19)  # third Tuesday
    assert nth_weekday(2027, 1, 4, 1) == date(2027, 1, 1)  # the 1st is a Friday
    assert nth_weekday(2027, 12, 6, -1) == date(2027, 12, 26)  # last Sunday, across the year
    assert nth_weekday(2027, 2, 0, -1) == date(2027, 2, 22)
    assert nth_weekday(2028, 2, 1, -1) == date(2028, 2, 29)  # a leap day can be the last


def test_working_days_before() -> None:
    # Five working days before Tuesday 19 January 2027: Tuesday 12 January.
    assert working_days_before(date(2027, 1, 19), 5) == date(2027, 1, 12)
    # A weekend does not count: one working day before a Monday is the Friday.
    assert working_days_before(date(2027, 1, 18), 1) == date(2027, 1, 15)
    assert working_days_before(date(2027, 1, 17), 1) == date(2027, 1, 15)
    assert working_days_before(date(2027, 1, 19), 0) == date(2027, 1, 19)


def test_a_london_time_across_the_clock_changes() -> None:
    assert london_time(date(2027, 1, 19), time(12)) == datetime(2027, 1, 19, 12, tzinfo=UTC)
    assert london_time(date(2027, 7, 20), time(12)) == datetime(2027, 7, 20, 11, tzinfo=UTC)
    # A wall-clock time in the spring gap moves an hour on; a repeated one takes the first.
    assert london_time(date(2027, 3, 28), time(1, 30)) == \
        datetime(2027, 3, 28, 1, 30, tzinfo=UTC)
    assert london_time(date(2027, 10, 31), time(1, 30)) == \
        datetime(2027, 10, 31, 0, 30, tzinfo=UTC)


def test_a_recurring_rule_keeps_london_time_across_the_clock_changes() -> None:
    rule = Rule(weekday=6, nth=-1, at=time(12, 0), go_live_days=7, deadline_working_days=5)
    got = occurrences(rule, datetime(2027, 2, 1, tzinfo=UTC), 9)
    assert len(got) == 9
    publish = {p.date(): p for _d, p, _g in got}
    # Last Sundays: 28 March 2027 (BST starts at 01:00 UTC) and 31 October 2027 (BST ends).
    assert publish[date(2027, 2, 28)] == datetime(2027, 2, 28, 12, 0, tzinfo=UTC)
    assert publish[date(2027, 3, 28)] == datetime(2027, 3, 28, 11, 0, tzinfo=UTC)
    assert publish[date(2027, 9, 26)] == datetime(2027, 9, 26, 11, 0, tzinfo=UTC)
    assert publish[date(2027, 10, 31)] == datetime(2027, 10, 31, 12, 0, tzinfo=UTC)
    march = next(g for g in got if g[1].date() == date(2027, 3, 28))
    # The deadline, five working days before, is still in GMT: 12:00 London is 12:00 UTC.
    assert march[0] == datetime(2027, 3, 22, 12, 0, tzinfo=UTC)
    assert march[2] == date(2027, 4, 4)
    for deadline, publish_at, go_live in got:
        local = publish_at.astimezone(LONDON)
        assert (local.weekday(), local.time()) == (6, time(12))
        assert deadline.astimezone(LONDON).time() == time(12)
        assert go_live == local.date() + timedelta(days=7)


def test_a_month_whose_deadline_has_passed_is_left_out() -> None:
    rule = Rule(weekday=1, nth=3, at=time(12))  # third Tuesday; deadline 5 working days before
    # The January deadline, 12 January 2027 12:00, has just passed; the publication has not.
    got = occurrences(rule, datetime(2027, 1, 12, 12, 0, 1, tzinfo=UTC), 2)
    assert [p.date() for _d, p, _g in got] == [date(2027, 2, 16), date(2027, 3, 16)]
    # A second earlier, January still counts.
    got = occurrences(rule, datetime(2027, 1, 12, 11, 59, 59, tzinfo=UTC), 1)
    assert got == [(datetime(2027, 1, 12, 12, tzinfo=UTC), datetime(2027, 1, 19, 12, tzinfo=UTC),
                    date(2027, 2, 2))]
    assert occurrences(rule, datetime(2027, 1, 1, tzinfo=UTC), 0) == []

