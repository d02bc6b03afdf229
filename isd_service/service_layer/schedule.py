"""The scheduled steps of the release calendar: freeze a release's draft at its change
deadline, publish its frozen set at its publish time; each run recorded with its outcome.

A step runs after every step of an earlier release that is due before it (calendar order),
so that with two releases close together release 1 publishes before release 2 freezes,
whichever job fires first. Every step takes the draft's lock and checks the release's state
inside that transaction, so a step that another scheduler has done is "nothing-to-do".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isd_service.adapters import repository
from isd_service.adapters.orm import Release, ReleaseRun
from isd_service.domain.lifecycle import SCHEDULED, ReleaseState, RunOutcome
from isd_service.domain.moments import iso_utc
from isd_service.domain.schedule import FREEZE, PUBLISH, Outcome, Step, due_steps, too_late
from isd_service.service_layer import approvals
from isd_service.service_layer.publishing import PublishRefused, is_empty, publish_in
from isd_service.service_layer.unit_of_work import UnitOfWork

# What a step's due time is called in the outcomes it records.
STEP_TIMES = {FREEZE: "change deadline", PUBLISH: "publish time"}


@dataclass(frozen=True)
class Steps:
    """How the steps run: the grace period, the empty-release policy, who runs them."""

    grace: timedelta
    empty_default: str
    actor: str
    organisation: str | None
    runner: str
    # Four eyes: approvals a publication needs (0: the publish step publishes).
    approvals: int = 0


def _not_due(release: Release | None, release_id: int, states: tuple[str, ...], action: str,
             now: datetime, grace: timedelta) -> Outcome | None:
    """Why a scheduled step does nothing, or None when it should run.

    Nothing to do when the release has moved on from ``states``; missed (and so marked) when
    its due time passed more than ``grace`` ago.
    """
    if release is None or release.state not in states:
        state = release.state if release else "gone"
        return Outcome(RunOutcome.NOTHING_TO_DO, f"release {release_id} is {state}")
    at = release.change_deadline if action == FREEZE else release.publish_at
    if too_late(at, now, grace):
        release.move_to(ReleaseState.MISSED, at=now)
        return Outcome(RunOutcome.MISSED, f"the {STEP_TIMES[action]} {iso_utc(at)} passed "
                                          f"more than {grace} ago")
    return None


def _freeze_in(session: Session, release: Release, now: datetime, actor: str = "scheduler",
               organisation: str | None = None) -> int:
    """Make the open draft the release's frozen set; return how many changes."""
    holder = repository.frozen_release(session)
    if holder is not None and holder.id != release.id:
        raise PublishRefused(f"release {holder.id} still holds a frozen set: release "
                             f"{release.id} cannot freeze before it publishes")
    moved = repository.freeze_open_draft(session, release.id)
    # The open draft a request was made for has become this release's frozen set.
    approvals.void_requests(session, None, reason=f"release {release.id} froze the draft",
                            actor=actor, organisation=organisation)
    release.move_to(ReleaseState.FROZEN, at=now)
    release.frozen_at = now
    return moved


def freeze(uow: UnitOfWork, release_id: int, *, now: datetime, grace: timedelta) -> Outcome:
    """The change-deadline step: freeze the release's draft."""
    with uow.transaction() as session:
        release = repository.get_release(session, release_id, fresh=True)
        refused = _not_due(release, release_id, (ReleaseState.PLANNED,), FREEZE, now, grace)
        if refused is not None:
            return refused
        assert release is not None
        n = _freeze_in(session, release, now)
        return Outcome(RunOutcome.FROZEN, f"{n} change(s) frozen")


def publish_due(uow: UnitOfWork, release_id: int, *, now: datetime, grace: timedelta,
                empty_default: str, actor: str, organisation: str | None,
                approvals_needed: int = 0) -> Outcome:
    """The publish-time step: publish the release's frozen set (freezing first if the freeze
    did not run), or skip an empty one by policy; with four eyes, the release awaits
    approval instead (its publication request's last approval publishes it)."""
    with uow.transaction() as session:
        release = repository.get_release(session, release_id, fresh=True)
        refused = _not_due(release, release_id, SCHEDULED, PUBLISH, now, grace)
        if refused is not None:
            return refused
        assert release is not None
        if release.state == ReleaseState.PLANNED:
            _freeze_in(session, release, now, actor, organisation)
        policy = release.empty_draft or empty_default
        if policy == "skip" and is_empty(session, repository.latest_version(session),
                                         repository.working_catalogue(session), release):
            release.move_to(ReleaseState.SKIPPED, at=now)
            return Outcome(RunOutcome.SKIPPED,
                           "nothing changed: skipped by the empty-draft policy")
        if approvals_needed > 0:
            request = approvals.request_for_release(session, release,
                                                    approvals=approvals_needed, actor=actor,
                                                    organisation=organisation)
            return Outcome(RunOutcome.AWAITING_APPROVAL,
                           f"awaits {approvals_needed} approval(s): publication request "
                           f"{request.id}")
        version = publish_in(uow, session, actor=actor, organisation=organisation,
                             version=None, go_live_date=None, force=True, release=release)
        return Outcome(RunOutcome.PUBLISHED, f"published version {version.number}",
                       version.number)


def run(uow: UnitOfWork, release_id: int, action: str, due: datetime, *, steps: Steps,
        clock: Callable[[], datetime]) -> Outcome:
    """Run one scheduled step (and first any earlier release's step due before it); record
    each run, failures included (a failure marks its release failed)."""
    mine = repository.get_release(uow.session, release_id)
    if mine is not None:
        key = (due, mine.publish_at, mine.id)
        earlier = [step for step in due_steps(repository.scheduled_releases(uow.session),
                                              clock())
                   if step.release_id != release_id
                   and (step.due, _publish_at(uow, step), step.release_id) < key]
        uow.end_read()
        for step in earlier:
            _run_one(uow, step, steps, clock, quiet=True)
    uow.end_read()
    return _run_one(uow, Step(release_id, action, due), steps, clock, quiet=False)


def _publish_at(uow: UnitOfWork, step: Step) -> datetime:
    release = repository.get_release(uow.session, step.release_id)
    assert release is not None
    return release.publish_at


def _run_one(uow: UnitOfWork, step: Step, steps: Steps, clock: Callable[[], datetime], *,
             quiet: bool) -> Outcome:
    """Run a step and record its run; ``quiet``: record nothing if it had nothing to do."""
    started = clock()
    failed = False
    try:
        if step.action == FREEZE:
            outcome = freeze(uow, step.release_id, now=started, grace=steps.grace)
        else:
            outcome = publish_due(uow, step.release_id, now=started, grace=steps.grace,
                                  empty_default=steps.empty_default, actor=steps.actor,
                                  organisation=steps.organisation,
                                  approvals_needed=steps.approvals)
    except Exception as exc:  # recorded and shown: the scheduler itself goes on
        failed = True
        outcome = Outcome(RunOutcome.FAILED, f"{type(exc).__name__}: {exc}")
    if quiet and outcome.outcome == RunOutcome.NOTHING_TO_DO:
        return outcome
    record_run(uow, release_id=step.release_id, action=step.action, scheduled_for=step.due,
               started_at=started, finished_at=clock(), outcome=outcome, runner=steps.runner,
               failed=failed)
    return outcome


def record_run(uow: UnitOfWork, *, release_id: int, action: str, scheduled_for: datetime,
               started_at: datetime, finished_at: datetime, outcome: Outcome, runner: str,
               failed: bool = False) -> None:
    """Record a run's outcome; a failure also marks the release failed (if still due)."""
    with uow.transaction() as session:
        release = repository.get_release(session, release_id, fresh=True)
        if release is None:
            return
        if failed and release.state in SCHEDULED:
            release.move_to(ReleaseState.FAILED, at=finished_at)
            release.last_error = outcome.detail
        session.add(ReleaseRun(release_id=release_id, action=action,
                               scheduled_for=scheduled_for, started_at=started_at,
                               finished_at=finished_at, outcome=outcome.outcome,
                               detail=outcome.detail, version=outcome.version, runner=runner))


def wanted_steps(session: Session) -> list[Step]:
    """Every step the calendar still has, soonest first."""
    wanted = []
    for r in repository.scheduled_releases(session):
        if r.state == ReleaseState.PLANNED:
            wanted.append(Step(r.id, FREEZE, r.change_deadline))
        wanted.append(Step(r.id, PUBLISH, r.publish_at))
    return sorted(wanted, key=lambda s: (s.due, s.release_id))


def next_runs(session: Session) -> list[dict[str, Any]]:
    """The steps the scheduler will take, soonest first."""
    return [{"release": s.release_id, "action": s.action, "run_at": iso_utc(s.due)}
            for s in wanted_steps(session)]


def awaiting_approval(session: Session) -> list[dict[str, Any]]:
    """Releases past their publish time that wait for approval, with their request."""
    out = []
    for r in repository.releases(session, (ReleaseState.AWAITING_APPROVAL,)):
        request = approvals.awaiting_for(session, r.id)
        out.append({"release": r.id, "state": str(r.state), "publish_at": iso_utc(r.publish_at),
                    "request": request.id if request else None})
    return out


def past_runs(session: Session, limit: int = 100) -> list[dict[str, Any]]:
    rows = session.scalars(select(ReleaseRun).order_by(ReleaseRun.id.desc()).limit(limit))
    return [{"id": r.id, "release": r.release_id, "action": r.action,
             "scheduled_for": iso_utc(r.scheduled_for), "started_at": iso_utc(r.started_at),
             "finished_at": iso_utc(r.finished_at), "outcome": str(r.outcome),
             "detail": r.detail, "version": r.version, "runner": r.runner} for r in rows]
