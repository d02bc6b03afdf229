"""The release calendar: plan, change and cancel releases, plan them by a monthly rule, and
read the calendar (a frozen release's preview, the version live on a day).

The lifecycle a release moves through is domain/lifecycle.py; the scheduled steps that move
it at its change deadline and publish time are service_layer/schedule.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.orm import Session

from isd_service.adapters import repository
from isd_service.adapters.orm import Release
from isd_service.domain.catalogue import Catalogue, catalogue_changes
from isd_service.domain.delta import staged_changes
from isd_service.domain.errors import Conflict, Invalid, NotFound
from isd_service.domain.lifecycle import CHANGEABLE, ReleaseState, transition
from isd_service.domain.moments import iso_utc, iso_utc_or_none
from isd_service.domain.recurrence import LONDON, Rule, occurrences
from isd_service.domain.schedule import check_order, holds_frozen_set
from isd_service.domain.staging import is_net, merge_back
from isd_service.service_layer import approvals, audit
from isd_service.service_layer.unit_of_work import UnitOfWork


class ReleaseRefused(Conflict):
    """A calendar change was refused and nothing changed."""

    slug = "release-refused"


def _check_times(change_deadline: datetime, publish_at: datetime, go_live_date: date,
                 now: datetime, *, deadline_changes: bool = True) -> None:
    if change_deadline > publish_at:
        raise Invalid("the change deadline must not be after the publish time",
                      field="change_deadline")
    if go_live_date < publish_at.astimezone(LONDON).date():
        raise Invalid("the go-live date must not be before the publish date",
                      field="go_live_date")
    if publish_at <= now:
        raise Invalid("the publish time must be in the future", field="publish_at")
    if deadline_changes and change_deadline <= now:
        raise Invalid("the change deadline must be in the future", field="change_deadline")


def _check_version(session: Session, version: int | None, release_id: int | None) -> None:
    if version is None:
        return
    latest = repository.latest_version(session)
    if latest is not None and version <= latest.number:
        raise Invalid(f"version {version} is already published (the latest is "
                      f"{latest.number})", field="version")
    taken = repository.release_planning(session, version, other_than=release_id,
                                        states=CHANGEABLE)
    if taken is not None:
        raise ReleaseRefused(f"release {taken} already plans version {version}",
                             field="version")


def create_release(
    uow: UnitOfWork, *, change_deadline: datetime, publish_at: datetime, go_live_date: date,
    version: int | None = None, empty_draft: str | None = None, actor: str,
    organisation: str | None = None, now: datetime | None = None,
) -> Release:
    """Plan a release."""
    now = now or datetime.now(UTC)
    with uow.transaction() as session:
        _check_times(change_deadline, publish_at, go_live_date, now)
        _check_version(session, version, None)
        check_order(change_deadline, publish_at, repository.releases(session, CHANGEABLE))
        release = Release(version=version, change_deadline=change_deadline.astimezone(UTC),
                          publish_at=publish_at.astimezone(UTC), go_live_date=go_live_date,
                          state=ReleaseState.PLANNED, empty_draft=empty_draft,
                          created_by=actor, created_at=now, updated_at=now)
        session.add(release)
        session.flush()
        audit.release_changed(session, release, action="release.create", actor=actor,
                              organisation=organisation)
    return release


def get_release(session: Session, release_id: int) -> Release:
    release = repository.get_release(session, release_id)
    if release is None:
        raise NotFound(f"there is no release {release_id}", slug="no-such-release")
    return release


def update_release(uow: UnitOfWork, release_id: int, changes: dict[str, Any], *,
                   actor: str = "cli", organisation: str | None = None,
                   now: datetime | None = None) -> Release:
    """Change a release not yet published or cancelled (reschedules a missed or failed one)."""
    now = now or datetime.now(UTC)
    with uow.transaction() as session:
        release = get_release(session, release_id)
        frozen = release.frozen_at is not None
        # Rescheduled, a release goes back to planned, or to frozen once it froze.
        target = ReleaseState.FROZEN if frozen else ReleaseState.PLANNED
        transition(release.state, target, release_id=release.id)
        if frozen and "change_deadline" in changes:
            raise ReleaseRefused(f"release {release_id} is already frozen: its change "
                                 "deadline has passed", field="change_deadline")
        deadline = changes.get("change_deadline", release.change_deadline)
        publish_at = changes.get("publish_at", release.publish_at)
        go_live = changes.get("go_live_date", release.go_live_date)
        _check_times(deadline, publish_at, go_live, now, deadline_changes=not frozen)
        if "version" in changes:
            _check_version(session, changes["version"], release.id)
        check_order(deadline, publish_at, repository.releases(session, CHANGEABLE),
                    release_id=release.id)
        if "version" in changes:
            release.version = changes["version"]
        if "empty_draft" in changes:
            release.empty_draft = changes["empty_draft"]
        release.change_deadline = deadline.astimezone(UTC)
        release.publish_at = publish_at.astimezone(UTC)
        release.go_live_date = go_live
        release.move_to(target, at=now)
        release.last_error = None
        audit.release_changed(session, release, action="release.change", actor=actor,
                              organisation=organisation)
        approvals.void_requests(session, release.id, reason=f"release {release.id} changed",
                                actor=actor, organisation=organisation)
    return release


def cancel_release(uow: UnitOfWork, release_id: int, *, actor: str = "cli",
                   organisation: str | None = None, now: datetime | None = None) -> Release:
    """Cancel a release; a frozen set goes back into the open draft."""
    now = now or datetime.now(UTC)
    with uow.transaction() as session:
        release = get_release(session, release_id)
        transition(release.state, ReleaseState.CANCELLED, release_id=release.id)
        if release.frozen_at is not None:
            _unfreeze(session, release)
        release.move_to(ReleaseState.CANCELLED, at=now)
        audit.release_changed(session, release, action="release.cancel", actor=actor,
                              organisation=organisation)
        approvals.void_requests(session, release.id,
                                reason=f"release {release.id} was cancelled", actor=actor,
                                organisation=organisation)
    return release


def _unfreeze(session: Session, release: Release) -> None:
    """Merge a frozen set back under the open draft, keeping the draft net against latest."""
    frozen = repository.frozen_changes(session, release.id)
    returned = merge_back(frozen, repository.open_keys(session))
    repository.discard_staged(session, release.id)
    repository.add_to_open_draft(session, returned)
    # An open change that only undid a frozen one is no change against the latest version.
    for entity_id in {change[0] for change in frozen}:
        live = repository.live_rows(session, entity_id)
        repository.drop_staged(session, entity_id, [
            key for key, (op, data, _) in repository.staged(session, entity_id).items()
            if not is_net(live, key, op, data)])


def generate(uow: UnitOfWork, rule: Rule, count: int, *, actor: str,
             now: datetime | None = None) -> list[Release]:
    """Plan the next ``count`` releases of a rule after the last planned one."""
    now = now or datetime.now(UTC)
    last = repository.last_publish_at(uow.session, CHANGEABLE)
    uow.end_read()
    after = max(now, last) if last else now
    return [create_release(uow, change_deadline=d, publish_at=p, go_live_date=g, actor=actor,
                           now=now)
            for d, p, g in occurrences(rule, after, count)]


def release_dict(release: Release) -> dict[str, Any]:
    """The public description of a release."""
    return {
        "id": release.id,
        "version": release.published_version or release.version,
        "state": str(release.state),
        "change_deadline": iso_utc(release.change_deadline),
        "publish_at": iso_utc(release.publish_at),
        "go_live_date": release.go_live_date.isoformat(),
        "empty_draft": release.empty_draft,
        "frozen_at": iso_utc_or_none(release.frozen_at),
        "published_version": release.published_version,
        "last_error": release.last_error,
    }


def preview(session: Session, release: Release, *, previous: bool = False
            ) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """A frozen release's changes in the shape of a delta from the latest version."""
    if not holds_frozen_set(release):
        raise ReleaseRefused(f"release {release.id} is {release.state}: only a frozen "
                             "release has a preview")
    latest = repository.latest_version(session)
    catalogue = repository.working_catalogue(session)
    old = Catalogue.from_list(latest.catalogue) if latest else Catalogue([])
    head = {"from": latest.number if latest else 0,
            "to": release.version or ((latest.number + 1) if latest else 1),
            "from_sha256": latest.sha256 if latest else None, "to_sha256": None,
            "release": release.id, "catalogue": catalogue_changes(old, catalogue)}

    def changes() -> Iterator[dict[str, Any]]:
        for eid, entity in catalogue.entities.items():
            rows = repository.staged_in_key_order(session, eid, release.id)
            if rows:
                yield from staged_changes(entity, rows, repository.live_rows(session, eid),
                                          previous=previous)

    return head, changes()
