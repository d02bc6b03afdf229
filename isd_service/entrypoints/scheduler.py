"""The scheduler process: APScheduler 3 freezes drafts at their change deadlines and publishes
releases at their publish times.

It runs as one process of its own (`isd scheduler`), never inside the web workers. The
release table is the calendar's truth: a sync job reads it every few seconds and keeps one
date job per step (freeze, publish) in memory. Each job opens its own unit of work and runs
the step through the service layer (service_layer/schedule.py), which logs nothing to HTTP
and records every outcome (GET /api/v1/admin/schedule shows them).

It also runs a download builder (entrypoints/download_builder.py) in a thread of its own:
the downloads of every version published (here, by `isd publish` or through the API) are
built in this process, never in a web request.

Several schedulers started by mistake against one database do no harm: every step takes the
draft's lock and checks the release's state inside that transaction, so a second scheduler
finds the step done and records "nothing-to-do".
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from isd_service.domain.lifecycle import RunOutcome
from isd_service.domain.recurrence import LONDON
from isd_service.domain.schedule import FREEZE, PUBLISH, Outcome
from isd_service.entrypoints.cli.downloads import build_after_publication
from isd_service.entrypoints.download_builder import Builder
from isd_service.entrypoints.flask_db import new_uow
from isd_service.service_layer import schedule
from isd_service.service_layer.schedule import Steps

log = logging.getLogger(__name__)

JOBSTORE = "calendar"


def utc_now() -> datetime:
    return datetime.now(UTC)


def runner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


class Scheduler:
    """The release calendar's scheduler for one app (its database and settings).

    ``clock`` is what the steps take as "now" (tests drive the calendar through time).
    """

    def __init__(self, app: Flask, clock: Callable[[], datetime] = utc_now):
        self.app = app
        self.clock = clock
        self.runner = runner_name()
        self.apscheduler: BackgroundScheduler | None = None
        self.builder: Builder | None = None

    @property
    def steps(self) -> Steps:
        """How steps run, from the app's settings as they are now."""
        config = self.app.config
        return Steps(grace=timedelta(seconds=int(config["SCHEDULE_GRACE_SECONDS"])),
                     empty_default=config["EMPTY_RELEASE"], actor="scheduler",
                     organisation=config["ADMIN_ORG"], runner=self.runner,
                     approvals=int(config["PUBLICATION_APPROVALS"]))

    def _run(self, release_id: int, action: str, due: datetime) -> Outcome:
        with new_uow(self.app) as unit:
            outcome = schedule.run(unit, release_id, action, due, steps=self.steps,
                                   clock=self.clock)
        if outcome.outcome == RunOutcome.FAILED:
            log.error("release %s: %s failed: %s", release_id, action, outcome.detail)
        else:
            log.info("release %s: %s: %s (%s)", release_id, action, outcome.outcome,
                     outcome.detail)
        return outcome

    def freeze_job(self, release_id: int, due: datetime) -> Outcome:
        """Change deadline: freeze the release's draft."""
        return self._run(release_id, FREEZE, due)

    def publish_job(self, release_id: int, due: datetime) -> Outcome:
        """Publish time: publish the release's frozen set, then have its files built."""
        outcome = self._run(release_id, PUBLISH, due)
        if outcome.outcome == RunOutcome.PUBLISHED and outcome.version is not None:
            if self.builder is not None and self.app.config["DOWNLOAD_BUILDS"] == "background":
                self.builder.kick()  # its job is queued: this process's builder takes it now
                return outcome
            try:
                build_after_publication(self.app, outcome.version)
            except Exception:  # the version is out; its files will be built on first request
                log.exception("version %s: building its downloads failed", outcome.version)
        return outcome

    def wanted_jobs(self) -> dict[str, tuple[Callable[[int, datetime], Outcome], int,
                                             datetime]]:
        """The date jobs the calendar needs now: job id -> (method, release id, run time)."""
        with new_uow(self.app) as unit:
            steps = schedule.wanted_steps(unit.session)
        jobs = {FREEZE: self.freeze_job, PUBLISH: self.publish_job}
        return {f"release-{s.release_id}-{s.action}": (jobs[s.action], s.release_id, s.due)
                for s in steps}

    def sync(self) -> None:
        """Make the job store hold exactly the jobs the calendar needs, at the right times."""
        scheduler = self.apscheduler
        assert scheduler is not None
        wanted = self.wanted_jobs()
        for job in scheduler.get_jobs(jobstore=JOBSTORE):
            if job.id not in wanted:
                with contextlib.suppress(JobLookupError):  # it ran and went meanwhile
                    scheduler.remove_job(job.id, JOBSTORE)
        for job_id, (method, release_id, run_at) in wanted.items():
            job = scheduler.get_job(job_id, JOBSTORE)
            if job is not None and job.next_run_time == run_at:
                continue
            scheduler.add_job(method, "date", run_date=run_at, args=[release_id, run_at],
                              id=job_id, jobstore=JOBSTORE, replace_existing=True,
                              name=f"{method.__name__} release {release_id}")

    def build(self) -> BackgroundScheduler:
        """A scheduler in Europe/London time, not yet started.

        Missed runs are coalesced and never dropped by APScheduler (no misfire grace there):
        the step itself decides, with the service's grace period, to run or to mark the
        release missed.
        """
        self.apscheduler = BackgroundScheduler(
            jobstores={JOBSTORE: MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
            timezone=LONDON)
        return self.apscheduler

    def run(self, stop: threading.Event | None = None) -> None:
        """Run in the foreground until SIGTERM or SIGINT (or ``stop`` is set)."""
        stop = stop or threading.Event()
        scheduler = self.build()
        every = int(self.app.config["SCHEDULER_SYNC_SECONDS"])
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda _sig, _frame: stop.set())
        scheduler.start()
        if self.app.config["DOWNLOAD_BUILDS"] == "background":
            self.builder = Builder(self.app, runner=self.runner)
            self.builder.start()
        log.info("scheduler %s started (grace %s, sync every %ss)", self.runner,
                 self.steps.grace, every)
        try:
            # The calendar is synced from this thread, never from a job: a job that calls
            # the scheduler while shutdown(wait=True) holds its lock would wait for ever.
            while not stop.is_set():
                try:
                    self.sync()
                except Exception:  # a database hiccup: try again at the next sync
                    log.exception("scheduler %s: syncing the calendar failed", self.runner)
                stop.wait(every)
        finally:
            scheduler.shutdown(wait=True)
            if self.builder is not None:
                self.builder.shutdown()
                self.builder = None
            self.apscheduler = None
            log.info("scheduler %s stopped", self.runner)
