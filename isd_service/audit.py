"""The audit log: every change (loads, publications, catalogue changes, the draft discarded,
tokens created and revoked) as an append-only event: who, organisation, when, what.

Events are added to the writer's own session, so an event commits or rolls back with the
change it describes. The code only ever inserts into the table (and the database refuses
updates, see the migration).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from isd_service import drafts, events
from isd_service.models import AuditEvent, DraftChange, Load, Release, Version


def record(
    session: Session, *, action: str, actor: str, organisation: str | None,
    subject: str | None = None, details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an event to the session's transaction (the caller commits it with its change)."""
    event = AuditEvent(at=datetime.now(UTC), actor=actor, organisation=organisation,
                       action=action, subject=subject, details=details or {})
    session.add(event)
    return event


def _on_load(load: Load, *, session: Session, **_: Any) -> None:
    record(session, action="load", actor=load.actor, organisation=load.organisation,
           subject=f"load {load.id}",
           details={"load": load.id, "format": load.format, "mode": load.mode,
                    "files": load.files, "sha256": load.sha256,
                    "inserted": load.inserted, "updated": load.updated,
                    "deleted": load.deleted, "unchanged": load.unchanged,
                    "entities": load.entities})


def _on_publish(version: Version, *, session: Session, **_: Any) -> None:
    loads = list(session.scalars(select(Load.id).where(Load.version == version.number)
                                 .order_by(Load.id)))
    record(session, action="publication", actor=version.published_by,
           organisation=version.organisation, subject=f"version {version.number}",
           details={"version": version.number, "sha256": version.sha256,
                    "record_count": version.record_count,
                    "previous_version": version.previous_version,
                    "go_live_date": (version.go_live_date.isoformat()
                                     if version.go_live_date else None),
                    "loads": loads})


def _on_release(release: Release, *, session: Session, action: str, actor: str,
                organisation: str | None = None, **_: Any) -> None:
    record(session, action=action, actor=actor, organisation=organisation,
           subject=f"release {release.id}",
           details={"release": release.id, "version": release.version, "state": release.state,
                    "change_deadline": _iso(release.change_deadline),
                    "publish_at": _iso(release.publish_at),
                    "go_live_date": release.go_live_date.isoformat()})


def _iso(moment: datetime) -> str:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def connect_signals() -> None:
    """Listen to the data path's signals (idempotent: blinker keeps one connection each)."""
    events.load_accepting.connect(_on_load)
    events.version_publishing.connect(_on_publish)
    events.release_changing.connect(_on_release)


def discard_draft(session: Session, *, actor: str, organisation: str | None) -> int:
    """Discard the draft and record it, in one transaction; return how many changes went."""
    drafts.lock_draft(session)
    staged = session.scalar(select(func.count()).select_from(DraftChange)) or 0
    record(session, action="draft.discard", actor=actor, organisation=organisation,
           subject="draft", details={"discarded": staged})
    return drafts.discard(session)


def to_dict(event: AuditEvent) -> dict[str, Any]:
    at = event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)
    return {"id": event.id, "at": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "actor": event.actor, "organisation": event.organisation,
            "action": event.action, "subject": event.subject, "details": event.details}


def encode_cursor(event_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": event_id}).encode()).decode()


def decode_cursor(cursor: str) -> int:
    """The id a page starts below; ValueError for a cursor this service did not hand out."""
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        before = value["before"]
    except (ValueError, TypeError, KeyError, UnicodeError) as exc:
        raise ValueError("not a cursor from a previous page") from exc
    if not isinstance(before, int) or isinstance(before, bool) or before < 1:
        raise ValueError("not a cursor from a previous page")
    return before


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
