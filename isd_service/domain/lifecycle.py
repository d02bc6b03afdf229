"""The release lifecycle: a release's states and the moves between them.

    planned --(change deadline)--> frozen --(publish time)--> published
       |                             |                    \\--> skipped (empty, policy skip)
       +--> cancelled                +--> cancelled (its frozen set goes back to the draft)
    planned/frozen --(too late, past the grace period)--> missed
    planned/frozen --(the run raised)--> failed
    planned/frozen --(publish time, four eyes)--> awaiting-approval --(approved)--> published

With ISD_PUBLICATION_APPROVALS above 0 the publish step does not publish: the release awaits
approval (a publication request) and publishes at the last approval; rescheduled, it goes
back to frozen, cancelled, its frozen set goes back to the draft.

A missed or failed release keeps its frozen set (if it froze); an admin reschedules it (back to
planned, or to frozen when it froze), publishes it by hand or cancels it. Published, skipped
and cancelled are final.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from isd_service.domain.errors import Conflict


class ReleaseState(StrEnum):
    """A release's state; the values are those stored in ``release.state``."""

    PLANNED = "planned"
    FROZEN = "frozen"
    PUBLISHED = "published"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    FAILED = "failed"
    MISSED = "missed"
    AWAITING_APPROVAL = "awaiting-approval"


_S = ReleaseState
# A stopped release (failed, missed) goes back to the calendar or out of it by an admin's hand.
_STOPPED = frozenset({_S.PLANNED, _S.FROZEN, _S.PUBLISHED, _S.CANCELLED})

TRANSITIONS: Mapping[ReleaseState, frozenset[ReleaseState]] = MappingProxyType({
    # A reschedule keeps a release planned; the publish step freezes and then publishes (or
    # skips) in one transaction, so planned may go straight to published or skipped.
    _S.PLANNED: frozenset({_S.PLANNED, _S.FROZEN, _S.PUBLISHED, _S.SKIPPED, _S.CANCELLED,
                           _S.MISSED, _S.FAILED, _S.AWAITING_APPROVAL}),
    # A reschedule keeps a frozen release frozen: its change deadline has passed for good.
    _S.FROZEN: frozenset({_S.FROZEN, _S.PUBLISHED, _S.SKIPPED, _S.CANCELLED, _S.MISSED,
                          _S.FAILED, _S.AWAITING_APPROVAL}),
    # Approved, it publishes; rescheduled, it is frozen again (and the request void).
    _S.AWAITING_APPROVAL: frozenset({_S.PUBLISHED, _S.FROZEN, _S.CANCELLED}),
    _S.FAILED: _STOPPED,
    _S.MISSED: _STOPPED,
    _S.PUBLISHED: frozenset(),
    _S.SKIPPED: frozenset(),
    _S.CANCELLED: frozenset(),
})

# An admin may still change (reschedule) or cancel a release in these states.
CHANGEABLE: tuple[ReleaseState, ...] = (_S.PLANNED, _S.FROZEN, _S.FAILED, _S.MISSED,
                                         _S.AWAITING_APPROVAL)
# The scheduler has steps to take for a release in these states (freeze, publish).
SCHEDULED: tuple[ReleaseState, ...] = (_S.PLANNED, _S.FROZEN)
# A release in these states holds its frozen set, but only if it did freeze (``frozen_at`` is
# set): a release that failed or was missed before its change deadline holds nothing.
HOLDING: tuple[ReleaseState, ...] = (_S.FROZEN, _S.FAILED, _S.MISSED, _S.AWAITING_APPROVAL)
# States a release never leaves.
FINAL: tuple[ReleaseState, ...] = tuple(s for s in ReleaseState if not TRANSITIONS[s])


class IllegalTransition(Conflict):
    """A release cannot move from its state to the one asked for."""

    slug = "release-refused"

    def __init__(self, current: ReleaseState, target: ReleaseState, *,
                 release_id: int | None = None):
        who = f"release {release_id}" if release_id is not None else "the release"
        super().__init__(f"{who} is {current}: it cannot become {target}")
        self.current = current
        self.target = target
        self.release_id = release_id


class RunOutcome(StrEnum):
    """What a scheduled run did; the values are those stored in ``release_run.outcome``."""

    FROZEN = "frozen"
    PUBLISHED = "published"
    SKIPPED = "skipped"
    MISSED = "missed"
    FAILED = "failed"
    NOTHING_TO_DO = "nothing-to-do"
    AWAITING_APPROVAL = "awaiting-approval"


def transition(current: ReleaseState | str, target: ReleaseState, *,
               release_id: int | None = None) -> ReleaseState:
    """The target state when a release in ``current`` may move there; else IllegalTransition.

    ``current`` may be the stored string; one that is no state at all raises ValueError (the
    stored data is broken, which is no conflict the caller can resolve).
    """
    state = ReleaseState(current)
    if target not in TRANSITIONS[state]:
        raise IllegalTransition(state, target, release_id=release_id)
    return target
