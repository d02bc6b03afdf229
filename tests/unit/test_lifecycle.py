"""The release lifecycle: every state, every allowed move, and the refusals."""

from __future__ import annotations

import pytest

from isd_service.domain.errors import Conflict
from isd_service.domain.lifecycle import (
    CHANGEABLE,
    FINAL,
    HOLDING,
    SCHEDULED,
    TRANSITIONS,
    IllegalTransition,
    ReleaseState,
    RunOutcome,
    transition,
)

S = ReleaseState


def test_the_states_are_the_stored_strings() -> None:
    assert [s.value for s in ReleaseState] == [
        "planned", "frozen", "published", "skipped", "cancelled", "failed", "missed",
        "awaiting-approval"]
    assert set(TRANSITIONS) == set(ReleaseState)
    assert S("frozen") is S.FROZEN and S.FROZEN == "frozen"
    assert [o.value for o in RunOutcome] == [
        "frozen", "published", "skipped", "missed", "failed", "nothing-to-do",
        "awaiting-approval"]


# Every move today's code makes, with where it makes it.
MOVES = [
    (S.PLANNED, S.PLANNED),      # reschedule
    (S.PLANNED, S.FROZEN),       # freeze at the change deadline
    (S.PLANNED, S.PUBLISHED),    # the publish step freezes first, then publishes
    (S.PLANNED, S.SKIPPED),      # ... or skips an empty release
    (S.PLANNED, S.CANCELLED),
    (S.PLANNED, S.MISSED),       # a step too late
    (S.PLANNED, S.FAILED),       # a step that raised
    (S.FROZEN, S.FROZEN),        # reschedule
    (S.FROZEN, S.PUBLISHED),
    (S.FROZEN, S.SKIPPED),
    (S.FROZEN, S.CANCELLED),     # the frozen set goes back to the draft
    (S.FROZEN, S.MISSED),
    (S.FROZEN, S.FAILED),
    (S.PLANNED, S.AWAITING_APPROVAL),  # the publish step with four eyes
    (S.FROZEN, S.AWAITING_APPROVAL),
    (S.AWAITING_APPROVAL, S.PUBLISHED),  # the last approval
    (S.AWAITING_APPROVAL, S.FROZEN),  # reschedule (its request is void)
    (S.AWAITING_APPROVAL, S.CANCELLED),
    *[(stopped, target) for stopped in (S.FAILED, S.MISSED)
      for target in (S.PLANNED, S.FROZEN, S.PUBLISHED, S.CANCELLED)],
]


@pytest.mark.parametrize(("current", "target"), MOVES)
def test_an_allowed_move_returns_its_target(current: ReleaseState, target: ReleaseState) -> None:
    assert transition(current, target) is target
    assert transition(current.value, target) is target


def test_no_other_move_is_allowed() -> None:
    allowed = {(c, t) for c, t in MOVES}
    for current in ReleaseState:
        for target in ReleaseState:
            if (current, target) not in allowed:
                with pytest.raises(IllegalTransition):
                    transition(current, target)


def test_a_refusal_names_the_release_its_state_and_the_target() -> None:
    with pytest.raises(IllegalTransition) as caught:
        transition("cancelled", S.FROZEN, release_id=3)
    error = caught.value
    assert str(error) == "release 3 is cancelled: it cannot become frozen"
    assert isinstance(error, Conflict)
    assert (error.status, error.slug, error.field) == (409, "release-refused", None)
    assert (error.current, error.target, error.release_id) == (S.CANCELLED, S.FROZEN, 3)
    with pytest.raises(IllegalTransition) as caught:
        transition(S.PUBLISHED, S.PLANNED)
    assert str(caught.value) == "the release is published: it cannot become planned"


def test_a_stored_string_that_is_no_state_is_broken_data_not_a_conflict() -> None:
    with pytest.raises(ValueError, match="'thawed'"):
        transition("thawed", S.FROZEN)


def test_the_named_groups() -> None:
    assert CHANGEABLE == (S.PLANNED, S.FROZEN, S.FAILED, S.MISSED, S.AWAITING_APPROVAL)
    assert SCHEDULED == (S.PLANNED, S.FROZEN)
    assert HOLDING == (S.FROZEN, S.FAILED, S.MISSED, S.AWAITING_APPROVAL)
    assert FINAL == (S.PUBLISHED, S.SKIPPED, S.CANCELLED)
    # The groups match the stored strings the queries compare with.
    assert "missed" in CHANGEABLE and "published" not in CHANGEABLE
    # Whatever an admin may change, it may cancel; whatever is final changes no more.
    assert all(S.CANCELLED in TRANSITIONS[s] for s in CHANGEABLE)
    assert set(CHANGEABLE) | set(FINAL) == set(ReleaseState)
