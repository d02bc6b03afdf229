"""Releases: publish the draft as the next immutable version, in one transaction."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from isd_service import events
from isd_service.catalogue import Catalogue, catalogue_changes
from isd_service.catalogue_db import working_catalogue
from isd_service.drafts import locked
from isd_service.models import DraftChange, FrozenChange, Load, Release, ReleaseLoad, Version
from isd_service.records import entity_hash, snapshot_hash
from isd_service.store import apply_draft, frozen_release, iter_snapshot, latest_version


class PublishRefused(Exception):
    """Publication was refused and nothing changed; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 409):
        self.status = status
        super().__init__(message)


def draft_is_empty(
    session: Session, latest: Version | None, catalogue: Catalogue,
    release: Release | None = None,
) -> bool:
    """True when publishing would change nothing (the draft, or the release's frozen set)."""
    table: type[DraftChange] | type[FrozenChange] = DraftChange
    only: list[Any] = []
    if release is not None:
        table, only = FrozenChange, [FrozenChange.release_id == release.id]
    staged = session.execute(select(table.key).where(*only).limit(1)).first()
    if staged is not None:
        return False
    return latest is not None and latest.catalogue_sha256 == catalogue.sha256()


def publish(
    session: Session,
    *,
    actor: str,
    organisation: str | None,
    version: int | None = None,
    go_live_date: date | None = None,
    force: bool = False,
) -> Version:
    """Publish the draft as version N = latest + 1 (or ``version`` for the very first); commit.

    When a release of the calendar is frozen, its frozen set is what publishes (with its
    go-live date unless one is given), and the open draft waits for the following release.
    Readers see all of N or nothing: rows, manifest and the emptied draft commit together.
    """
    with locked(session):
        row = publish_locked(session, actor=actor, organisation=organisation, version=version,
                             go_live_date=go_live_date, force=force,
                             release=frozen_release(session))
    events.version_published.send(row)
    return row


def publish_locked(
    session: Session,
    *,
    actor: str,
    organisation: str | None,
    version: int | None,
    go_live_date: date | None,
    force: bool,
    release: Release | None,
) -> Version:
    """The publication itself; the caller holds the draft's lock and commits or rolls back.

    ``release``: publish that release's frozen set (and mark it published) instead of the
    open draft.
    """
    latest = latest_version(session)
    if release is not None:
        version = version if version is not None else release.version
        go_live_date = go_live_date or release.go_live_date
    number = _next_number(latest, version)
    catalogue = working_catalogue(session)
    if draft_is_empty(session, latest, catalogue, release) and not force:
        what = f"release {release.id}'s frozen set" if release else "the draft"
        raise PublishRefused(f"{what} is empty: nothing to publish (use force to "
                             "publish an unchanged version)")
    table: type[DraftChange] | type[FrozenChange] = DraftChange
    only: list[Any] = []
    if release is not None:
        table, only = FrozenChange, [FrozenChange.release_id == release.id]
    changed = set(session.scalars(select(table.entity_id).where(*only).distinct()))
    old_catalogue = Catalogue.from_list(latest.catalogue) if latest else Catalogue([])
    changed |= {c["entity"] for c in catalogue_changes(old_catalogue, catalogue)}
    apply_draft(session, number, release.id if release else None)
    entities: dict[str, Any] = {}
    for eid, entity in catalogue.entities.items():
        if latest is not None and eid not in changed and eid in latest.entities:
            entities[eid] = latest.entities[eid]
            continue
        count, digest = entity_hash(
            entity, (data for _key, data in iter_snapshot(session, eid, number)))
        entities[eid] = {"records": count, "sha256": digest}
    catalogue_sha = catalogue.sha256()
    row = Version(
        number=number, published_at=datetime.now(UTC), go_live_date=go_live_date,
        previous_version=latest.number if latest else None,
        sha256=snapshot_hash({k: v["sha256"] for k, v in entities.items()}, catalogue_sha),
        catalogue_sha256=catalogue_sha,
        record_count=sum(v["records"] for v in entities.values()),
        entities=entities, catalogue=catalogue.to_list(),
        published_by=actor, organisation=organisation)
    session.add(row)
    loads = update(Load).where(Load.version.is_(None))
    if release is not None:
        # Loads that went to the following release's open draft wait for it.
        loads = loads.where(Load.id.not_in(select(ReleaseLoad.load_id).where(
            ReleaseLoad.release_id != release.id)))
        release.state = "published"
        release.published_version = number
        release.last_error = None
        release.updated_at = datetime.now(UTC)
    session.execute(loads.values(version=number))
    session.flush()
    events.version_publishing.send(row, session=session)
    return row


def _next_number(latest: Version | None, requested: int | None) -> int:
    if latest is None:
        number = requested if requested is not None else 1
        if number < 1 or number > 2**31 - 1:
            raise PublishRefused("a version number is a positive integer", 422)
        return number
    if requested is not None and requested != latest.number + 1:
        raise PublishRefused(
            f"the next version is {latest.number + 1} (the latest is {latest.number}); "
            f"{requested} cannot be published")
    return latest.number + 1


def manifest(version: Version, loads: list[Load] | None = None) -> dict[str, Any]:
    """The public description of a version: counts and hashes per entity and of the whole."""
    out: dict[str, Any] = {
        "version": version.number,
        "published_at": iso_utc(version.published_at),
        "go_live_date": version.go_live_date.isoformat() if version.go_live_date else None,
        "previous_version": version.previous_version,
        "sha256": version.sha256,
        "catalogue_sha256": version.catalogue_sha256,
        "record_count": version.record_count,
        "entities": version.entities,
    }
    if loads is not None:
        out["loads"] = [{"id": ld.id, "created_at": iso_utc(ld.created_at),
                         "actor": ld.actor, "organisation": ld.organisation,
                         "sha256": ld.sha256, "files": [f["name"] for f in ld.files]}
                        for ld in loads]
    return out


def iso_utc(moment: datetime) -> str:
    """Write a stored time in UTC as ISO 8601 (SQLite gives naive datetimes back, in UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
