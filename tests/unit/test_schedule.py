"""Due steps in calendar order, the grace period, and the rule that keeps releases in
sequence, on plain values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from isd_service.domain.errors import Conflict
from isd_service.domain.lifecycle import RunOutcome
from isd_service.domain.schedule import (
    FREEZE,
    PUBLISH,
    Outcome,
    OutOfOrder,
    Step,
    check_order,
    due_steps,
    holds_frozen_set,
    next_step,
    too_late,
)

T0 = datetime(2027, 1, 11, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass
class R:
    id: int
    state: str
    change_deadline: datetime
    publish_at: datetime
    frozen_at: datetime | None = None


def test_the_next_step_of_each_state() -> None:
    planned = R(1, "planned", T0 + DAY, T0 + 2 * DAY)
    assert next_step(planned, T0) == Step(1, FREEZE, T0 + DAY)
    frozen = R(2, "frozen", T0 - DAY, T0 + DAY, frozen_at=T0 - DAY)
    assert next_step(frozen, T0) == Step(2, PUBLISH, T0 + DAY)
    for state in ("published", "skipped", "cancelled", "failed", "missed"):
        assert next_step(R(3, state, T0 - DAY, T0 - HOUR), T0) is None


def test_a_planned_release_past_its_publish_time_takes_the_publish_step() -> None:
    late = R(1, "planned", T0 - 2 * HOUR, T0 - HOUR)
    # The freeze is due too, but the publish step freezes first: one step, not two.
    assert due_steps([late], T0) == [Step(1, PUBLISH, T0 - HOUR)]
    # At the publish time itself it is due already.
    assert next_step(R(1, "planned", T0 - HOUR, T0), T0) == Step(1, PUBLISH, T0)


def test_nothing_is_due() -> None:
    assert due_steps([], T0) == []
    calendar = [R(1, "planned", T0 + HOUR, T0 + DAY),
                R(2, "frozen", T0 - DAY, T0 + HOUR, frozen_at=T0 - DAY),
                R(3, "published", T0 - 2 * DAY, T0 - DAY),
                R(4, "missed", T0 - 2 * DAY, T0 - DAY),
                R(5, "cancelled", T0 - 2 * DAY, T0 - DAY)]
    assert due_steps(calendar, T0) == []
    # An hour on, release 2 publishes and then release 1 freezes.
    assert due_steps(calendar, T0 + HOUR) == [Step(2, PUBLISH, T0 + HOUR),
                                              Step(1, FREEZE, T0 + HOUR)]


def test_two_releases_close_together_publish_the_first_before_freezing_the_second() -> None:
    # Release 2's change deadline is release 1's publish time: the scheduler was down and both
    # steps are due when it catches up. Release 1 must publish first or release 2 cannot freeze.
    r1 = R(1, "frozen", T0 - 2 * DAY, T0, frozen_at=T0 - 2 * DAY)
    r2 = R(2, "planned", T0, T0 + DAY)
    expected = [Step(1, PUBLISH, T0), Step(2, FREEZE, T0)]
    assert due_steps([r2, r1], T0 + HOUR) == expected
    assert due_steps([r1, r2], T0 + HOUR) == expected
    # Were release 1 still planned (its freeze missed too), its publish step still goes first.
    r1.state, r1.frozen_at = "planned", None
    assert due_steps([r2, r1], T0 + HOUR) == expected


def test_due_steps_run_by_due_time_then_publish_time_then_id() -> None:
    calendar = [R(4, "planned", T0 - 3 * HOUR, T0 + DAY),
                R(3, "planned", T0 - 3 * HOUR, T0 + DAY),
                R(2, "planned", T0 - 3 * HOUR, T0 + HOUR),
                R(1, "frozen", T0 - DAY, T0 - 2 * HOUR, frozen_at=T0 - DAY)]
    assert [(s.release_id, s.action) for s in due_steps(calendar, T0)] == [
        (2, FREEZE), (3, FREEZE), (4, FREEZE), (1, PUBLISH)]


def test_too_late_is_strictly_past_the_grace_period() -> None:
    assert not too_late(T0, T0 + HOUR, HOUR)
    assert too_late(T0, T0 + HOUR + timedelta(microseconds=1), HOUR)
    assert not too_late(T0, T0, timedelta(0))
    assert too_late(T0, T0 + timedelta(seconds=1), timedelta(0))


def test_holding_a_frozen_set_takes_having_frozen() -> None:
    assert holds_frozen_set(R(1, "frozen", T0, T0, frozen_at=T0))
    assert holds_frozen_set(R(1, "failed", T0, T0, frozen_at=T0))
    assert holds_frozen_set(R(1, "missed", T0, T0, frozen_at=T0))
    assert not holds_frozen_set(R(1, "missed", T0, T0))  # missed before its deadline
    assert not holds_frozen_set(R(1, "published", T0, T0, frozen_at=T0))


def test_an_outcome_records_as_its_string() -> None:
    outcome = Outcome(RunOutcome.NOTHING_TO_DO, "release 3 is published")
    assert (outcome.outcome, outcome.version) == ("nothing-to-do", None)


# --- check_order ------------------------------------------------------------------------

# Release 4 publishes on the 14th; release 5 freezes on the 19th and publishes on the 21st.
AT = datetime(2027, 1, 14, 12, tzinfo=UTC)
CALENDAR = [R(4, "planned", AT - 2 * DAY, AT), R(5, "planned", AT + 5 * DAY, AT + 7 * DAY)]


def test_a_release_between_its_neighbours_is_accepted() -> None:
    check_order(AT + DAY, AT + 4 * DAY, CALENDAR)
    # Touching is fine: freeze at the moment the one before publishes, publish at the moment
    # the one after freezes.
    check_order(AT, AT + 5 * DAY, CALENDAR)
    check_order(AT + 8 * DAY, AT + 9 * DAY, CALENDAR)  # after the last
    check_order(AT - 5 * DAY, AT - 3 * DAY, CALENDAR)  # before the first
    check_order(AT - 5 * DAY, AT - 3 * DAY, [])


def test_a_deadline_before_the_publication_before_it_is_refused() -> None:
    with pytest.raises(OutOfOrder) as caught:
        check_order(AT - 2 * DAY, AT + 2 * DAY, CALENDAR)
    error = caught.value
    assert str(error) == (
        "the change deadline 2027-01-12T12:00:00Z is before the publication of release 4 "
        "(2027-01-14T12:00:00Z): a release freezes only after the one before it has published")
    assert isinstance(error, Conflict)
    assert (error.status, error.slug, error.field) == (409, "release-refused", "change_deadline")


def test_a_publication_after_the_deadline_after_it_is_refused() -> None:
    with pytest.raises(OutOfOrder) as caught:
        check_order(AT + DAY, AT + 6 * DAY, CALENDAR)
    error = caught.value
    assert str(error) == (
        "the publication 2027-01-20T12:00:00Z is after the change deadline of release 5 "
        "(2027-01-19T12:00:00Z): a release publishes before the one after it freezes")
    assert (error.status, error.slug, error.field) == (409, "release-refused", "publish_at")


def test_the_release_before_is_the_latest_to_publish_before_it() -> None:
    calendar = [*CALENDAR, R(3, "planned", AT - 9 * DAY, AT - 7 * DAY)]
    with pytest.raises(OutOfOrder, match="release 4 "):
        check_order(AT - 6 * DAY + HOUR, AT + 2 * DAY, calendar)
    # Between 3 and 4 it is fine: 3 has published by its deadline.
    check_order(AT - 6 * DAY, AT - 3 * DAY, calendar)


def test_a_release_publishing_at_the_same_time_counts_as_the_one_before() -> None:
    with pytest.raises(OutOfOrder, match="release 4 ") as caught:
        check_order(AT - DAY, AT, CALENDAR)
    assert caught.value.field == "change_deadline"


def test_an_update_ignores_the_release_itself() -> None:
    # Release 4 moved a day later: against itself it would overlap; it is left out.
    check_order(AT - DAY, AT + DAY, CALENDAR, release_id=4)
    with pytest.raises(OutOfOrder, match="release 5 "):
        check_order(AT - DAY, AT + 6 * DAY, CALENDAR, release_id=4)


def test_releases_no_longer_changeable_are_ignored() -> None:
    for state in ("cancelled", "published", "skipped"):
        calendar = [R(4, state, AT - 2 * DAY, AT),
                    R(5, state, AT + 5 * DAY, AT + 7 * DAY)]
        check_order(AT - 2 * DAY, AT + 6 * DAY, calendar)
    # A failed or missed release still publishes (by hand or rescheduled): it counts.
    for state in ("frozen", "failed", "missed"):
        with pytest.raises(OutOfOrder, match="release 4 "):
            check_order(AT - DAY, AT + DAY, [R(4, state, AT - 2 * DAY, AT)])


