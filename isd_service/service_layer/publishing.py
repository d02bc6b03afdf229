"""Publication: the draft (or a frozen release's set) becomes the next immutable version, in
one transaction."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.orm import Session

from isd_service.adapters import database, key_ranges, repository
from isd_service.adapters.orm import Release, Version
from isd_service.domain.catalogue import Catalogue, EntityDef, catalogue_changes
from isd_service.domain.errors import Conflict
from isd_service.domain.lifecycle import ReleaseState
from isd_service.domain.records import (
    KEY_RANGES_RULE,
    range_hashes,
    ranges_hash,
    snapshot_hash,
)
from isd_service.service_layer import audit, download_builds, relations, webhooks
from isd_service.service_layer.unit_of_work import UnitOfWork, VersionPublished

MAX_VERSION = 2**31 - 1
# A set this large changes the tables' statistics: refresh them (database.refresh_statistics).
BULK_CHANGES = 50_000


class PublishRefused(Conflict):
    """Publication was refused and nothing changed."""

    slug = "publication-refused"


def publish(
    uow: UnitOfWork,
    *,
    actor: str,
    organisation: str | None,
    version: int | None = None,
    go_live_date: date | None = None,
    force: bool = False,
) -> Version:
    """Publish the draft as version ``version`` (any number above the latest: MDD's
    numbering has gaps), or latest + 1 when none is given.

    When a release of the calendar is frozen, its frozen set is what publishes (with its
    go-live date unless one is given), and the open draft waits for the following release.
    Readers see all of N or nothing: rows, manifest and the emptied draft commit together.
    """
    with uow.transaction() as session:
        return publish_in(uow, session, actor=actor, organisation=organisation,
                          version=version, go_live_date=go_live_date, force=force,
                          release=repository.frozen_release(session))


def check_publishable(session: Session, *, release: Release | None, version: int | None,
                      force: bool) -> None:
    """Refuse as publish_in() would, without publishing: an empty set (unless ``force``) or
    a version number not above the latest."""
    latest = repository.latest_version(session)
    if release is not None and version is None:
        version = release.version
    _next_number(latest, version)
    if not force and is_empty(session, latest, repository.working_catalogue(session), release):
        what = f"release {release.id}'s frozen set" if release else "the draft"
        raise PublishRefused(f"{what} is empty: nothing to publish (use force to "
                             "publish an unchanged version)")


def is_empty(session: Session, latest: Version | None, catalogue: Catalogue,
             release: Release | None = None) -> bool:
    """True when publishing would change nothing (the draft, or the release's frozen set)."""
    if repository.has_staged(session, release.id if release else None):
        return False
    return latest is not None and latest.catalogue_sha256 == catalogue.sha256()


def publish_in(
    uow: UnitOfWork,
    session: Session,
    *,
    actor: str,
    organisation: str | None,
    version: int | None,
    go_live_date: date | None,
    force: bool,
    release: Release | None,
) -> Version:
    """The publication itself, inside ``uow``'s open transaction.

    ``release``: publish that release's frozen set (and mark it published) instead of the
    open draft.
    """
    latest = repository.latest_version(session)
    if release is not None:
        version = version if version is not None else release.version
        go_live_date = go_live_date or release.go_live_date
    number = _next_number(latest, version)
    catalogue = repository.working_catalogue(session)
    frozen_for = release.id if release else None
    if is_empty(session, latest, catalogue, release) and not force:
        what = f"release {release.id}'s frozen set" if release else "the draft"
        raise PublishRefused(f"{what} is empty: nothing to publish (use force to "
                             "publish an unchanged version)")
    bulk = repository.count_staged(session, frozen_for) >= BULK_CHANGES
    if bulk:
        # Plan the statements below by the set's real size; once committed, the set's rows
        # are dead in the staging table until vacuumed, and later loads and publications
        # would scan them and plan by their count.
        database.refresh_statistics(session, ["staged_change"])
        uow.defer(lambda: _tidy_after_bulk(uow))
    changed = repository.staged_entities(session, frozen_for)
    old_catalogue = Catalogue.from_list(latest.catalogue) if latest else Catalogue([])
    redefined = {c["entity"] for c in catalogue_changes(old_catalogue, catalogue)}
    changed |= redefined
    repository.apply_staged(session, number, frozen_for)
    if bulk:
        # The rows just written count in the statistics of this transaction's ANALYZE: the
        # relation check and the re-hash then read them by the right plan (with statistics
        # that predate them, reading a new entity's rows in range order took minutes).
        database.refresh_statistics(session, ["record"])
    # The whole version, the changes applied; a refusal rolls the transaction back.
    relations.check_version(session, catalogue, number, changed if latest else None)
    # Hashes of the latest version are reused only where they follow the same rule.
    ranged: dict[str, Any] = (latest.entities if latest is not None
                              and latest.hash_rule == KEY_RANGES_RULE else {})
    entities: dict[str, Any] = {}
    for eid, entity in catalogue.entities.items():
        if eid in ranged and eid not in changed:
            entities[eid] = ranged[eid]
            continue
        # Only the ranges the changes touched, unless every line's bytes may have moved
        # (a new or redefined entity, or the first version under rule 2).
        partial = eid in ranged and eid not in redefined
        count, digest = _rehash(session, entity, number, partial=partial)
        entities[eid] = {"records": count, "sha256": digest}
    catalogue_sha = catalogue.sha256()
    row = Version(
        number=number, published_at=datetime.now(UTC), go_live_date=go_live_date,
        previous_version=latest.number if latest else None,
        sha256=snapshot_hash({k: v["sha256"] for k, v in entities.items()}, catalogue_sha),
        catalogue_sha256=catalogue_sha,
        record_count=sum(v["records"] for v in entities.values()),
        entities=entities, catalogue=catalogue.to_list(),
        published_by=actor, organisation=organisation, hash_rule=KEY_RANGES_RULE)
    session.add(row)
    repository.assign_loads(session, number, frozen_for)
    if release is not None:
        release.move_to(ReleaseState.PUBLISHED, at=row.published_at)
        release.published_version = number
        release.last_error = None
    session.flush()
    audit.version_published(session, row, repository.load_ids_of(session, number))
    notices = webhooks.queue_notices(session, row, uow.settings)
    download_builds.queue(session, number, uow.settings)  # built by a builder, not here
    uow.announce(VersionPublished(number, webhook_notices=notices))
    return row


def _tidy_after_bulk(uow: UnitOfWork) -> None:
    with uow.transaction(lock=False) as session:
        database.refresh_statistics(session, ["record", "record_range"],
                                    vacuum=["staged_change"])


def _rehash(session: Session, entity: EntityDef, number: int, *,
            partial: bool) -> tuple[int, str]:
    """Count and hash an entity of version ``number`` (rule 2) and keep its ranges: with
    ``partial``, re-hash only the ranges the version's changes touched; the cost then follows
    the changes, not the entity."""
    eid = entity.id
    old = key_ranges.live_ranges(session, eid)
    touched = key_ranges.touched(session, eid, number) if partial else None
    rows = key_ranges.live_rows(session, eid, only=touched)
    new = {r.key_range: r for r in range_hashes(entity, rows)}
    looked_at = touched if touched is not None else set(old) | set(new)
    emptied = {rng for rng in looked_at if rng in old and rng not in new}
    key_ranges.save(session, eid, number,
                    [r for rng, r in new.items() if old.get(rng) != r], emptied)
    now = {**old, **new}
    for rng in emptied:
        del now[rng]
    return ranges_hash(now.values())


def _next_number(latest: Version | None, requested: int | None) -> int:
    """The number to publish: the one asked for, which must be above the latest (MDD's
    numbering has gaps), else latest + 1 (1 for the very first)."""
    if requested is not None and not 1 <= requested <= MAX_VERSION:
        raise PublishRefused("a version number is a positive integer", status=422)
    if latest is None:
        return requested if requested is not None else 1
    if requested is not None and requested <= latest.number:
        raise PublishRefused(
            f"version {requested} cannot be published: the latest is {latest.number}, and a "
            f"new version's number must be above it (the next is {latest.number + 1} unless "
            "another is given)")
    return requested if requested is not None else latest.number + 1
