"""The scheduler: APScheduler 3 freezes drafts at their change deadlines and publishes releases
at their publish times.

It runs as one process of its own (`isd scheduler`), never inside the web workers. The
release table is the calendar's truth: a sync job reads it every few seconds and keeps one
date job per step (freeze, publish) in a job store in the service's own database. Jobs are
the module-level functions below; each opens its own session, logs, rolls back on failure and
records its outcome (GET /api/v1/admin/schedule shows them).

Several schedulers started by mistake against one database do no harm: every step takes the
draft's lock and checks the release's state inside that transaction, so a second scheduler
finds the step done and records "nothing-to-do".
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from isd_service import release_calendar
from isd_service.downloads.commands import build_after_publication
from isd_service.models import Release
from isd_service.release_calendar import EMPTY_POLICIES, LONDON, Outcome, aware

log = logging.getLogger(__name__)

JOBSTORE = "calendar"
# A step that runs later than this after its time (the scheduler was down) is not done:
# the release is marked missed and an admin decides.
DEFAULT_GRACE_SECONDS = 3600
DEFAULT_EMPTY_RELEASE = "skip"
DEFAULT_SYNC_SECONDS = 15


def utc_now() -> datetime:
    return datetime.now(UTC)


# The clock the steps read; tests replace it to drive the calendar through time.
clock: Callable[[], datetime] = utc_now

_app: Flask | None = None


def bind(app: Flask) -> None:
    """Give the jobs the app whose database and settings they use."""
    global _app
    _app = app


def _bound() -> Flask:
    if _app is None:
        raise RuntimeError("the scheduler's jobs need an app: call scheduler.bind(app)")
    return _app


def setting(app: Flask, name: str, default: Any) -> Any:
    """A scheduler setting: app config, else the ISD_<name> environment variable."""
    if name in app.config:
        return app.config[name]
    return os.environ.get(f"ISD_{name}", default)


def grace(app: Flask) -> timedelta:
    return timedelta(seconds=int(setting(app, "SCHEDULE_GRACE_SECONDS", DEFAULT_GRACE_SECONDS)))


def empty_release_policy(app: Flask) -> str:
    policy = str(setting(app, "EMPTY_RELEASE", DEFAULT_EMPTY_RELEASE))
    if policy not in EMPTY_POLICIES:
        raise ValueError(f"ISD_EMPTY_RELEASE must be one of {', '.join(EMPTY_POLICIES)}")
    return policy


def _session() -> Session:
    return _bound().extensions["isd_db"].session_factory()


def _runner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


def _run(action: str, release_id: int, due: str,
         step: Callable[[Session, datetime], Outcome]) -> Outcome:
    """Run one step in its own session; log it and record its outcome, failures included."""
    started = clock()
    session = _session()
    failed = False
    try:
        outcome = step(session, started)
        log.info("release %s: %s: %s (%s)", release_id, action, outcome.outcome, outcome.detail)
    except Exception as exc:  # recorded and shown: the scheduler itself goes on
        failed = True
        outcome = Outcome("failed", f"{type(exc).__name__}: {exc}")
        log.exception("release %s: %s failed: %s", release_id, action, outcome.detail)
    try:
        release_calendar.record_run(
            session, release_id=release_id, action=action,
            scheduled_for=datetime.fromisoformat(due), started_at=started,
            finished_at=clock(), outcome=outcome, runner=_runner(), failed=failed)
    except Exception:
        log.exception("release %s: could not record the %s run", release_id, action)
    finally:
        session.close()
    return outcome


def freeze_job(release_id: int, due: str) -> Outcome:
    """Change deadline: freeze the release's draft."""
    app = _bound()
    return _run("freeze", release_id, due, lambda session, now: release_calendar.freeze(
        session, release_id, now=now, grace=grace(app)))


def publish_job(release_id: int, due: str) -> Outcome:
    """Publish time: publish the release's frozen set, then (BUILD_DOWNLOADS) its files."""
    app = _bound()
    outcome = _run("publish", release_id, due, lambda session, now: release_calendar.publish_due(
        session, release_id, now=now, grace=grace(app),
        empty_default=empty_release_policy(app), actor="scheduler",
        organisation=app.config.get("ADMIN_ORG")))
    if outcome.outcome == "published" and outcome.version is not None:
        try:
            with app.app_context():
                build_after_publication(app, outcome.version)
        except Exception:  # the version is out; its files will be built on first request
            log.exception("version %s: building its downloads failed", outcome.version)
    return outcome


def wanted_jobs(session: Session) -> dict[str, tuple[Callable[..., Any], int, datetime]]:
    """The date jobs the calendar needs now: job id -> (function, release id, run time)."""
    wanted: dict[str, tuple[Callable[..., Any], int, datetime]] = {}
    for r in session.scalars(select(Release).where(Release.state.in_(("planned", "frozen")))):
        if r.state == "planned":
            wanted[f"release-{r.id}-freeze"] = (freeze_job, r.id, aware(r.change_deadline))
        wanted[f"release-{r.id}-publish"] = (publish_job, r.id, aware(r.publish_at))
    return wanted


def sync(scheduler: BackgroundScheduler) -> None:
    """Make the job store hold exactly the jobs the calendar needs, at the right times."""
    session = _session()
    try:
        wanted = wanted_jobs(session)
    finally:
        session.close()
    for job in scheduler.get_jobs(jobstore=JOBSTORE):
        if job.id not in wanted:
            _quietly(scheduler.remove_job, job.id, JOBSTORE)
    for job_id, (func, release_id, run_at) in wanted.items():
        job = scheduler.get_job(job_id, JOBSTORE)
        if job is not None and job.next_run_time == run_at:
            continue
        _quietly(scheduler.add_job, func, "date", run_date=run_at,
                 args=[release_id, run_at.isoformat()], id=job_id, jobstore=JOBSTORE,
                 replace_existing=True, name=f"{func.__name__} release {release_id}")


def _quietly(action: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Another scheduler on the same store may have just done the same: that is fine."""
    try:
        action(*args, **kwargs)
    except (ConflictingIdError, JobLookupError) as exc:
        log.debug("job store changed under us: %s", exc)


def sync_job() -> None:
    """Interval job of the running scheduler: bring its jobs in line with the calendar."""
    if _running is not None:
        sync(_running)


class SharedJobStore(SQLAlchemyJobStore):
    """The SQLAlchemy job store, tolerant of a job another scheduler removed first."""

    def remove_job(self, job_id: str) -> None:
        try:
            super().remove_job(job_id)
        except JobLookupError:
            log.debug("job %s was already removed", job_id)

    def update_job(self, job: Any) -> None:
        try:
            super().update_job(job)
        except JobLookupError:
            log.debug("job %s was already removed", job.id)


_running: BackgroundScheduler | None = None


def build(app: Flask) -> BackgroundScheduler:
    """A scheduler on the service's database, in Europe/London time, not yet started.

    Missed runs are coalesced and never dropped by APScheduler (no misfire grace there): the
    step itself decides, with the service's grace period, to run or to mark the release missed.
    """
    bind(app)
    engine = app.extensions["isd_db"].engine
    return BackgroundScheduler(
        jobstores={JOBSTORE: SharedJobStore(engine=engine), "default": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(4)},
        job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
        timezone=LONDON)


def run(app: Flask, stop: threading.Event | None = None) -> None:
    """Run the scheduler in the foreground until SIGTERM or SIGINT (or ``stop`` is set)."""
    global _running
    empty_release_policy(app)  # refuse a bad setting at start, not at the first publication
    stop = stop or threading.Event()
    scheduler = build(app)
    every = int(setting(app, "SCHEDULER_SYNC_SECONDS", DEFAULT_SYNC_SECONDS))
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda _sig, _frame: stop.set())
    _running = scheduler
    scheduler.add_job(sync_job, "interval", seconds=every, id="sync", jobstore="default",
                      next_run_time=datetime.now(LONDON))
    scheduler.start()
    log.info("scheduler %s started (grace %s, sync every %ss)", _runner(), grace(app), every)
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
        _running = None
        log.info("scheduler %s stopped", _runner())
