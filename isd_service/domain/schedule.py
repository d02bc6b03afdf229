"""The release calendar's timing rules: which scheduled steps are due, in which order, and
which plans keep the releases in sequence (pure).

Only one release holds a frozen set at a time: the next release can freeze only once the one
before it has published. So the steps run in calendar order, and planning refuses a release
whose change deadline falls before the publication of the release before it.

Stored times may come back naive (SQLite keeps UTC without its offset): every time read here
goes through ``aware`` first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from isd_service.domain.errors import Conflict
from isd_service.domain.lifecycle import CHANGEABLE, HOLDING, ReleaseState, RunOutcome

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


def aware(moment: datetime) -> datetime:
    """A stored time as an aware UTC datetime (a naive one is taken to be UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    """A time in UTC as ISO 8601 with a Z, as the API writes times."""
    return aware(moment).isoformat().replace("+00:00", "Z")


def holds_frozen_set(release: Planned) -> bool:
    """Whether the release froze and its frozen set still waits to publish."""
    return release.state in HOLDING and release.frozen_at is not None


def next_step(release: Planned, now: datetime) -> Step | None:
    """The step the release takes next (due or not), or None when it has none.

    A planned release freezes at its change deadline, unless its publish time has passed too:
    then it takes the publish step, which freezes first. A frozen one publishes.
    """
    publish_at = aware(release.publish_at)
    if release.state == ReleaseState.FROZEN or (
            release.state == ReleaseState.PLANNED and publish_at <= aware(now)):
        return Step(release.id, PUBLISH, publish_at)
    if release.state == ReleaseState.PLANNED:
        return Step(release.id, FREEZE, aware(release.change_deadline))
    return None


def due_steps(releases: Iterable[Planned], now: datetime) -> list[Step]:
    """Every step due at or before ``now``, in calendar order.

    By due time, then by the release's publish time, then by id: when the scheduler catches
    up, a release publishes before the next one freezes at the same moment (that freeze,
    run first, would find the earlier release still holding its frozen set).
    """
    now = aware(now)
    keyed = []
    for release in releases:
        step = next_step(release, now)
        if step is not None and step.due <= now:
            keyed.append(((step.due, aware(release.publish_at), release.id), step))
    return [step for _key, step in sorted(keyed, key=lambda pair: pair[0])]


def too_late(due: datetime, now: datetime, grace: timedelta) -> bool:
    """Whether a step due at ``due`` runs more than ``grace`` late (the release is missed)."""
    return aware(now) > aware(due) + grace


def check_order(change_deadline: datetime, publish_at: datetime, others: Iterable[Neighbour],
                *, release_id: int | None = None) -> None:
    """Refuse (OutOfOrder) a release whose times overlap those of its neighbours.

    Its change deadline must not fall before the publication of the release before it (it
    would freeze while that one still holds its frozen set), and its publication must not fall
    after the change deadline of a release after it. ``others`` are the calendar's releases;
    ``release_id`` (the release being changed) and releases no longer changeable do not count.
    A release publishing at the same time as this one counts as the one before it.
    """
    deadline, publish = aware(change_deadline), aware(publish_at)
    before: Neighbour | None = None
    after: Neighbour | None = None
    for other in others:
        if other.id == release_id or other.state not in CHANGEABLE:
            continue
        if aware(other.publish_at) <= publish:
            if before is None or (aware(other.publish_at), other.id) > (
                    aware(before.publish_at), before.id):
                before = other
        # Of the releases after it, the one that freezes first is the one it could block.
        elif after is None or (aware(other.change_deadline), other.id) < (
                aware(after.change_deadline), after.id):
            after = other
    if before is not None and deadline < aware(before.publish_at):
        raise OutOfOrder(
            f"the change deadline {iso_utc(deadline)} is before the publication of release "
            f"{before.id} ({iso_utc(before.publish_at)}): a release freezes only after the one "
            "before it has published", field="change_deadline")
    if after is not None and publish > aware(after.change_deadline):
        raise OutOfOrder(
            f"the publication {iso_utc(publish)} is after the change deadline of release "
            f"{after.id} ({iso_utc(after.change_deadline)}): a release publishes before the "
            "one after it freezes", field="publish_at")
