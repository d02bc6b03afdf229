"""Four-eyes publication: publication requests, the decisions on them, and the publication
that the last approval makes (ISD_PUBLICATION_APPROVALS).

A request covers one set: the open draft, or a release's frozen set (the set publish() would
publish when it is made). Anything that changes that set afterwards (a load, a discard, the
release rescheduled or cancelled, the draft frozen) voids it: approvals are for what was
seen. Every request, approval, rejection and void goes to the audit log.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isd_service.adapters import repository
from isd_service.adapters.orm import PublicationDecision, PublicationRequest, Release, Version
from isd_service.domain.approval import (
    APPROVE,
    REJECT,
    RequestClosed,
    RequestState,
    check_decider,
    is_approved,
)
from isd_service.domain.errors import Conflict, Invalid, NotFound
from isd_service.domain.lifecycle import ReleaseState
from isd_service.domain.moments import iso_utc, iso_utc_or_none
from isd_service.service_layer import audit, publishing, tokens
from isd_service.service_layer.unit_of_work import UnitOfWork

COMMENT_MAX = 500


def needed(uow: UnitOfWork) -> int:
    """How many approvals a publication needs (0: four eyes is off)."""
    return int(uow.settings.get("PUBLICATION_APPROVALS", 0) or 0)


def request_or_publish(
    uow: UnitOfWork, *, actor: str, holder: str, organisation: str | None,
    version: int | None = None, go_live_date: date | None = None, force: bool = False,
) -> Version | PublicationRequest:
    """Publish at once when no approval is needed, else ask for approval (a request)."""
    if needed(uow) == 0:
        return publishing.publish(uow, actor=actor, organisation=organisation,
                                  version=version, go_live_date=go_live_date, force=force)
    return request_publication(uow, actor=actor, holder=holder, organisation=organisation,
                               version=version, go_live_date=go_live_date, force=force)


def request_publication(
    uow: UnitOfWork, *, actor: str, holder: str, organisation: str | None,
    version: int | None = None, go_live_date: date | None = None, force: bool = False,
) -> PublicationRequest:
    """Ask other publishers to approve publishing what publish() would publish now.

    Refused as publish() would refuse (an empty set, a version number not above the latest),
    and while another request for the same set still awaits approval.
    """
    with uow.transaction() as session:
        release = repository.frozen_release(session)
        publishing.check_publishable(session, release=release, version=version, force=force)
        release_id = release.id if release else None
        waiting = awaiting_for(session, release_id)
        if waiting is not None:
            raise Conflict(f"publication request {waiting.id} already awaits approval for "
                           f"{_set_name(release_id)}: approve or reject it first",
                           slug="request-pending")
        row = PublicationRequest(
            state=RequestState.AWAITING, release_id=release_id,
            requested_at=datetime.now(UTC), requested_by=actor, holder=holder,
            organisation=organisation, version=version, go_live_date=go_live_date,
            force=force, approvals_needed=max(needed(uow), 1))
        session.add(row)
        session.flush()
        audit.record(session, action="publication.request", actor=actor,
                     organisation=organisation, subject=f"publication request {row.id}",
                     details=summary(row))
    return row


def request_for_release(session: Session, release: Release, *, approvals: int, actor: str,
                        organisation: str | None) -> PublicationRequest:
    """The scheduler's step at publish time: the release awaits approval, under its own
    request (or one a publisher already made for its frozen set)."""
    release.move_to(ReleaseState.AWAITING_APPROVAL, at=datetime.now(UTC))
    waiting = awaiting_for(session, release.id)
    if waiting is not None:
        return waiting
    row = PublicationRequest(
        state=RequestState.AWAITING, release_id=release.id, requested_at=datetime.now(UTC),
        requested_by=actor, holder=actor, organisation=organisation, version=None,
        go_live_date=None, force=True, approvals_needed=max(approvals, 1))
    session.add(row)
    session.flush()
    audit.record(session, action="publication.request", actor=actor,
                 organisation=organisation, subject=f"publication request {row.id}",
                 details=summary(row))
    return row


def decide(
    uow: UnitOfWork, request_id: int, *, decision: str, actor: str, holder: str,
    organisation: str | None, comment: str | None = None,
) -> tuple[PublicationRequest, Version | None]:
    """Approve or reject a request; the last approval publishes (in the same transaction).

    Refused (403) to the requester and to a holder of any load in the set; a request no
    longer awaiting approval is a conflict (409).
    """
    if decision not in (APPROVE, REJECT):
        raise Invalid(f"a decision is {APPROVE} or {REJECT}", field="decision")
    if comment is not None and len(comment) > COMMENT_MAX:
        raise Invalid(f"a comment is at most {COMMENT_MAX} characters", field="comment")
    with uow.transaction() as session:
        row = get_request(session, request_id, fresh=True)
        if row.state != RequestState.AWAITING:
            why = f": {row.reason}" if row.reason else ""
            raise RequestClosed(f"publication request {request_id} is {row.state}{why}")
        loaders = tokens.holders_of(session,
                                    repository.pending_load_actors(session, row.release_id))
        check_decider(holder, requester=row.holder, load_holders=loaders,
                      decided=[d.holder for d in row.decisions if d.decision == APPROVE],
                      request_id=row.id)
        now = datetime.now(UTC)
        session.add(PublicationDecision(request_id=row.id, decision=decision, at=now,
                                        actor=actor, holder=holder, organisation=organisation,
                                        comment=comment))
        session.flush()
        session.refresh(row, ["decisions"])
        audit.record(session, action=f"publication.{decision}", actor=actor,
                     organisation=organisation, subject=f"publication request {row.id}",
                     details={**summary(row), "holder": holder, "comment": comment})
        if decision == REJECT:
            row.state = RequestState.REJECTED
            row.decided_at = now
            row.reason = f"rejected by {holder}" + (f": {comment}" if comment else "")
            return row, None
        if not is_approved(approvals_of(row), row.approvals_needed):
            return row, None
        release = (repository.get_release(session, row.release_id, fresh=True)
                   if row.release_id is not None else None)
        version = publishing.publish_in(
            uow, session, actor=row.requested_by, organisation=row.organisation,
            version=row.version, go_live_date=row.go_live_date, force=row.force,
            release=release)
        row.state = RequestState.PUBLISHED
        row.decided_at = now
        row.published_version = version.number
        return row, version


ANY_SET = -1  # void_requests(): every set (a catalogue change goes out with any of them)


def void_requests(session: Session, release_id: int | None, *, reason: str, actor: str,
                  organisation: str | None) -> list[int]:
    """Void the requests awaiting approval for a set that just changed (``ANY_SET``: all);
    their ids."""
    voided = []
    stmt = select(PublicationRequest).where(PublicationRequest.state == RequestState.AWAITING)
    if release_id != ANY_SET:
        stmt = stmt.where(PublicationRequest.release_id.is_(None) if release_id is None
                          else PublicationRequest.release_id == release_id)
    for row in session.scalars(stmt):
        row.state = RequestState.VOID
        row.decided_at = datetime.now(UTC)
        row.reason = reason
        voided.append(row.id)
        audit.record(session, action="publication.void", actor=actor,
                     organisation=organisation, subject=f"publication request {row.id}",
                     details=summary(row))
    return voided


def awaiting_for(session: Session, release_id: int | None) -> PublicationRequest | None:
    return session.scalars(select(PublicationRequest).where(
        PublicationRequest.state == RequestState.AWAITING,
        PublicationRequest.release_id.is_(None) if release_id is None
        else PublicationRequest.release_id == release_id)).first()


def get_request(session: Session, request_id: int, *, fresh: bool = False
                ) -> PublicationRequest:
    stmt = select(PublicationRequest).where(PublicationRequest.id == request_id)
    if fresh:
        stmt = stmt.execution_options(populate_existing=True).with_for_update()
    row = session.scalars(stmt).first() if 1 <= request_id <= 2**31 - 1 else None
    if row is None:
        raise NotFound(f"no publication request with id {request_id}",
                       slug="no-such-request")
    return row


def list_requests(session: Session, *, limit: int = 100) -> list[PublicationRequest]:
    """Requests newest first."""
    return list(session.scalars(select(PublicationRequest)
                                .order_by(PublicationRequest.id.desc()).limit(limit)))


def approvals_of(row: PublicationRequest) -> int:
    return sum(1 for d in row.decisions if d.decision == APPROVE)


def _set_name(release_id: int | None) -> str:
    return f"release {release_id}'s frozen set" if release_id else "the open draft"


def summary(row: PublicationRequest) -> dict[str, Any]:
    """A request as the API shows it (``request`` is its id)."""
    return {
        "request": row.id, "state": str(row.state), "release": row.release_id,
        "set": _set_name(row.release_id),
        "requested_at": iso_utc(row.requested_at), "requested_by": row.requested_by,
        "holder": row.holder, "organisation": row.organisation, "version": row.version,
        "go_live_date": row.go_live_date.isoformat() if row.go_live_date else None,
        "force": row.force, "approvals_needed": row.approvals_needed,
        "approvals": approvals_of(row),
        "decisions": [{"decision": d.decision, "holder": d.holder, "actor": d.actor,
                       "organisation": d.organisation, "at": iso_utc(d.at),
                       "comment": d.comment} for d in row.decisions],
        "decided_at": iso_utc_or_none(row.decided_at),
        "published_version": row.published_version, "reason": row.reason,
    }
