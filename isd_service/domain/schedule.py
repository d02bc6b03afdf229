"""The release calendar's timing rules: which scheduled steps are due, in which order, and
which plans keep the releases in sequence (pure).

Only one release holds a frozen set at a time: the next release can freeze only once the one
before it has published. So the steps run in calendar order, and planning refuses a release
whose change deadline falls before the publication of the release before it.

Every time here is aware (the store reads times back in UTC, adapters/orm.UTCDateTime).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from isd_service.domain.errors import Conflict
from isd_service.domain.lifecycle import CHANGEABLE, HOLDING, ReleaseState, RunOutcome
from isd_service.domain.moments import iso_utc

FREEZE = "freeze"
PUBLISH = "publish"


class Neighbour(Protocol):
    """A release as planning compares it with others."""

    @property
    def id(self) -> int: ...
    @property
    def state(self) -> str: ...
    @property
    def change_deadline(self) -> datetime: ...
    @property
    def publish_at(self) -> datetime: ...


class Planned(Neighbour, Protocol):
    """A release as the scheduler sees it (the ORM row is one)."""

    @property
    def frozen_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class Step:
    """A scheduled step: ``action`` (freeze or publish) of a release, due at ``due``."""

    release_id: int
    action: str
    due: datetime


@dataclass(frozen=True)
class Outcome:
    """What a scheduled run did, as recorded in its release run."""

    outcome: RunOutcome
    detail: str
    version: int | None = None


class OutOfOrder(Conflict):
    """A planned release would overlap its neighbour: one frozen set would wait for another."""

    slug = "release-refused"


def holds_frozen_set(release: Planned) -> bool:
    """Whether the release froze and its frozen set still waits to publish."""
    return release.state in HOLDING and release.frozen_at is not None


def next_step(release: Planned, now: datetime) -> Step | None:
    """The step the release takes next (due or not), or None when it has none.

    A planned release freezes at its change deadline, unless its publish time has passed too:
    then it takes the publish step, which freezes first. A frozen one publishes.
    """
    publish_at = release.publish_at
    if release.state == ReleaseState.FROZEN or (
            release.state == ReleaseState.PLANNED and publish_at <= now):
        return Step(release.id, PUBLISH, publish_at)
    if release.state == ReleaseState.PLANNED:
        return Step(release.id, FREEZE, release.change_deadline)
    return None


def due_steps(releases: Iterable[Planned], now: datetime) -> list[Step]:
    """Every step due at or before ``now``, in calendar order.

    By due time, then by the release's publish time, then by id: when the scheduler catches
    up, a release publishes before the next one freezes at the same moment (that freeze,
    run first, would find the earlier release still holding its frozen set).
    """
    keyed = []
    for release in releases:
        step = next_step(release, now)
        if step is not None and step.due <= now:
            keyed.append(((step.due, release.publish_at, release.id), step))
    return [step for _key, step in sorted(keyed, key=lambda pair: pair[0])]


def too_late(due: datetime, now: datetime, grace: timedelta) -> bool:
    """Whether a step due at ``due`` runs more than ``grace`` late (the release is missed)."""
    return now > due + grace


def check_order(change_deadline: datetime, publish_at: datetime, others: Iterable[Neighbour],
                *, release_id: int | None = None) -> None:
    """Refuse (OutOfOrder) a release whose times overlap those of its neighbours.

    Its change deadline must not fall before the publication of the release before it (it
    would freeze while that one still holds its frozen set), and its publication must not fall
    after the change deadline of a release after it. ``others`` are the calendar's releases;
    ``release_id`` (the release being changed) and releases no longer changeable do not count.
    A release publishing at the same time as this one counts as the one before it.
    """
    deadline, publish = change_deadline, publish_at
    before: Neighbour | None = None
    after: Neighbour | None = None
    for other in others:
        if other.id == release_id or other.state not in CHANGEABLE:
            continue
        if other.publish_at <= publish:
            if before is None or (other.publish_at, other.id) > (
                    before.publish_at, before.id):
                before = other
        # Of the releases after it, the one that freezes first is the one it could block.
        elif after is None or (other.change_deadline, other.id) < (
                after.change_deadline, after.id):
            after = other
    if before is not None and deadline < before.publish_at:
        raise OutOfOrder(
            f"the change deadline {iso_utc(deadline)} is before the publication of release "
            f"{before.id} ({iso_utc(before.publish_at)}): a release freezes only after the one "
            "before it has published", field="change_deadline")
    if after is not None and publish > after.change_deadline:
        raise OutOfOrder(
            f"the publication {iso_utc(publish)} is after the change deadline of release "
            f"{after.id} ({iso_utc(after.change_deadline)}): a release publishes before the "
            "one after it freezes", field="publish_at")
