"""The audit log: every change (loads, publications, catalogue changes, the draft discarded,
releases planned, tokens, webhooks) as an append-only event: who, organisation, when, what.

Each use case adds its event inside its own transaction, so an event commits or rolls back
with the change it describes. The code only ever inserts into the table (and the database
refuses updates, see the migration).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isd_service.adapters.orm import AuditEvent, Load, Release, Version
from isd_service.domain.moments import iso_utc


def record(
    session: Session, *, action: str, actor: str, organisation: str | None,
    subject: str | None = None, details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an event to the session's transaction (it commits with the change)."""
    event = AuditEvent(at=datetime.now(UTC), actor=actor, organisation=organisation,
                       action=action, subject=subject, details=details or {})
    session.add(event)
    return event


def load_accepted(session: Session, load: Load) -> None:
    record(session, action="load", actor=load.actor, organisation=load.organisation,
           subject=f"load {load.id}",
           details={"load": load.id, "format": load.format, "mode": load.mode,
                    "files": load.files, "sha256": load.sha256,
                    "inserted": load.inserted, "updated": load.updated,
                    "deleted": load.deleted, "unchanged": load.unchanged,
                    "entities": load.entities})


def version_published(session: Session, version: Version, loads: list[int]) -> None:
    record(session, action="publication", actor=version.published_by,
           organisation=version.organisation, subject=f"version {version.number}",
           details={"version": version.number, "sha256": version.sha256,
                    "record_count": version.record_count,
                    "previous_version": version.previous_version,
                    "go_live_date": (version.go_live_date.isoformat()
                                     if version.go_live_date else None),
                    "loads": loads})


def release_changed(session: Session, release: Release, *, action: str, actor: str,
                    organisation: str | None) -> None:
    record(session, action=action, actor=actor, organisation=organisation,
           subject=f"release {release.id}",
           details={"release": release.id, "version": release.version, "state": release.state,
                    "change_deadline": release.change_deadline.isoformat(),
                    "publish_at": release.publish_at.isoformat(),
                    "go_live_date": release.go_live_date.isoformat()})


def to_dict(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.id, "at": iso_utc(event.at), "actor": event.actor,
            "organisation": event.organisation, "action": event.action,
            "subject": event.subject, "details": event.details}


def page(
    session: Session, *, limit: int, before: int | None = None, action: str | None = None,
) -> tuple[list[AuditEvent], int | None]:
    """Events newest first, below ``before``; and the id the next page starts below."""
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
    if before is not None:
        stmt = stmt.where(AuditEvent.id < before)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    rows = list(session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)
