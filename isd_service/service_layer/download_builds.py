"""Background builds of a new version's downloads: queued by its publication, built by one
builder, never in a web request.

A publication queues one ``download_build`` row in its own transaction (when
DOWNLOAD_BUILDS is "background", the default), so a version and its build job commit
together and none is lost if the publishing process stops right after. A builder (the
scheduler process, `isd downloads worker`, or the builder process that `isd serve` starts)
claims the oldest queued job with a conditional UPDATE (``FOR UPDATE SKIP LOCKED`` first on
PostgreSQL), under a lease it renews while it builds; it builds every download the
manifest lists, and SHA256SUMS, then records the job done (files, bytes) or failed (why).

While a version's job is queued or running, a request for one of its files not yet built
answers 503 with Retry-After (``DownloadsBeingBuilt``) instead of building it. A builder
that died leaves its lease to expire, and the next builder claims the job again; after
MAX_ATTEMPTS claims that never finished, the job is failed. A failed job, a job that no
builder claimed within DOWNLOAD_BUILD_WAIT_SECONDS, or a version without a job (published
before builds were queued, or with DOWNLOAD_BUILDS "on-request") is served as before: its
files are built on their first request, or streamed from the database when the folder fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from isd_service.adapters import repository
from isd_service.adapters.download_files import FolderUnusable
from isd_service.adapters.orm import DownloadBuild, DownloadBuilder
from isd_service.config import DEFAULTS
from isd_service.domain.errors import DomainError
from isd_service.domain.moments import iso_utc, iso_utc_or_none
from isd_service.service_layer.downloads import Downloads
from isd_service.service_layer.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
# Claims of one job that never finished (a builder killed each time, say by the kernel for
# its memory) before the job is failed and its files left to their first request.
MAX_ATTEMPTS = 3
# What a 503 for a file being built asks the client to wait (seconds) before asking again.
RETRY_AFTER = 10


def _setting(settings: Mapping[str, Any], name: str) -> Any:
    return settings.get(name, DEFAULTS[name])


def now_utc() -> datetime:
    return datetime.now(UTC)


class DownloadsBeingBuilt(DomainError):
    """A file of a version whose downloads a builder is building: asked again shortly, it
    will be there."""

    status = 503
    slug = "download-being-built"

    def __init__(self, number: int, state: str, since: datetime):
        self.retry_after = RETRY_AFTER
        self.extra = {"version": number, "build": state, "since": iso_utc(since)}
        what = "queued to be built" if state == QUEUED else "being built"
        super().__init__(f"version {number}'s downloads are {what} in the background "
                         f"(since {iso_utc(since)}); try again in {RETRY_AFTER} seconds")


# --- queueing ------------------------------------------------------------------------------

def queue(session: Session, number: int, settings: Mapping[str, Any]) -> bool:
    """Queue the build of a just-published version's downloads, in the publication's own
    transaction; True if queued (DOWNLOAD_BUILDS "background")."""
    if _setting(settings, "DOWNLOAD_BUILDS") != "background":
        return False
    session.add(DownloadBuild(version=number, state=QUEUED, queued_at=now_utc(), attempts=0))
    return True


_stalled: set[int] = set()


def being_built(session: Session, number: int,
                settings: Mapping[str, Any]) -> DownloadsBeingBuilt | None:
    """What to answer for a file of version ``number`` not yet built: the 503 to raise while
    a builder has its job in hand, or None (build it on request, as without a job)."""
    row = session.execute(select(DownloadBuild.state, DownloadBuild.queued_at,
                                 DownloadBuild.started_at, DownloadBuild.lease_until)
                          .where(DownloadBuild.version == number)).first()
    if row is None or row.state not in (QUEUED, RUNNING):
        return None
    if row.state == QUEUED and not builder_alive(session, settings):
        # Nobody is there to take the job (a deployment without `isd scheduler`, `isd serve`
        # or `isd downloads worker`): serve as without a job rather than answer 503.
        return None
    wait = timedelta(seconds=int(_setting(settings, "DOWNLOAD_BUILD_WAIT_SECONDS")))
    # The last sign that a builder has it in hand: queued (a builder should claim it within
    # seconds), or a lease that its builder renews while it builds.
    alive = row.queued_at if row.state == QUEUED else (row.lease_until or row.queued_at)
    if alive + wait < now_utc():
        if number not in _stalled:  # once per version and process, not once per request
            _stalled.add(number)
            log.warning("version %s: no builder has had its downloads in hand for %ss (is "
                        "`isd scheduler` or `isd downloads worker` running?): building them "
                        "on request meanwhile", number, int(wait.total_seconds()))
        return None
    since = row.queued_at if row.state == QUEUED else (row.started_at or row.queued_at)
    return DownloadsBeingBuilt(number, row.state, since)


# --- builders' signs of life ----------------------------------------------------------------

def _alive_window(settings: Mapping[str, Any]) -> timedelta:
    """How recent a builder's last sign of life must be: it gives one at every look for jobs
    (every DOWNLOAD_BUILD_POLL_SECONDS) and at every renewal of a lease while it builds."""
    poll = float(_setting(settings, "DOWNLOAD_BUILD_POLL_SECONDS"))
    lease = float(_setting(settings, "DOWNLOAD_BUILD_LEASE_SECONDS"))
    return timedelta(seconds=max(10.0, 5 * poll, lease))


def seen(session: Session, runner: str) -> None:
    """Record that builder ``runner`` is alive (it is looking for jobs or building one)."""
    moment, name = now_utc(), runner[:100]
    updated = session.execute(update(DownloadBuilder).where(DownloadBuilder.runner == name)
                              .values(seen_at=moment))
    if updated.rowcount == 0:  # type: ignore[attr-defined]
        session.add(DownloadBuilder(runner=name, seen_at=moment))


def announce(uow: UnitOfWork, runner: str) -> None:
    """A builder's sign of life, in its own short transaction."""
    with uow.transaction(lock=False) as session:
        seen(session, runner)


def builder_alive(session: Session, settings: Mapping[str, Any]) -> bool:
    """Whether some builder gave a sign of life recently enough to take a queued job."""
    since = now_utc() - _alive_window(settings)
    return session.scalar(select(DownloadBuilder.runner)
                          .where(DownloadBuilder.seen_at >= since).limit(1)) is not None


# --- building ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """A job this builder holds: the version, which claim of it this is, and by whom."""

    version: int
    attempt: int
    runner: str


@dataclass(frozen=True)
class Outcome:
    """What became of a claimed job."""

    version: int
    state: str  # done, failed, or queued (given back, to be claimed again)
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    error: str | None = None


class Interrupted(Exception):
    """The builder is stopping: the job is given back to the queue."""


class ClaimLost(Exception):
    """Another builder claimed the job (this one's lease ran out): it stops building."""


def _claimable(moment: datetime) -> Any:
    return or_(DownloadBuild.state == QUEUED,
               and_(DownloadBuild.state == RUNNING, DownloadBuild.lease_until < moment))


def claim(uow: UnitOfWork, runner: str) -> Claim | None:
    """Claim the oldest job that is queued, or whose builder's lease ran out; None if none.

    A job claimed MAX_ATTEMPTS times without finishing is failed instead."""
    lease = timedelta(seconds=float(_setting(uow.settings, "DOWNLOAD_BUILD_LEASE_SECONDS")))
    while True:
        with uow.transaction(lock=False) as session:
            moment = now_utc()
            found = session.execute(
                select(DownloadBuild.version, DownloadBuild.attempts, DownloadBuild.state)
                .where(_claimable(moment))
                .order_by(DownloadBuild.queued_at, DownloadBuild.version).limit(1)
                .with_for_update(skip_locked=True)).first()
            if found is None:
                return None
            number, attempts = found.version, found.attempts
            if attempts >= MAX_ATTEMPTS:
                gave_up = session.execute(update(DownloadBuild).where(
                    DownloadBuild.version == number, _claimable(moment)).values(
                    state=FAILED, finished_at=moment, lease_until=None,
                    error=f"its builder stopped before the end in each of {attempts} "
                          "attempts; its files are built on their first request"))
                if gave_up.rowcount == 1:  # type: ignore[attr-defined]
                    log.error("version %s: download build failed: its builder stopped before "
                              "the end in each of %s attempts", number, attempts)
                continue
            if found.state == RUNNING:
                log.warning("version %s: its download builder's lease ran out: claiming "
                            "the build again (attempt %s)", number, attempts + 1)
            claimed = session.execute(update(DownloadBuild).where(
                DownloadBuild.version == number, DownloadBuild.attempts == attempts,
                _claimable(moment)).values(
                state=RUNNING, claimed_by=runner[:100], lease_until=moment + lease,
                attempts=attempts + 1, started_at=moment))
        if claimed.rowcount == 1:  # type: ignore[attr-defined]
            return Claim(number, attempts + 1, runner[:100])
        # another builder took it between the two statements: look again


def _held(claim: Claim) -> Any:
    return and_(DownloadBuild.version == claim.version, DownloadBuild.state == RUNNING,
                DownloadBuild.claimed_by == claim.runner,
                DownloadBuild.attempts == claim.attempt)


def renew(uow: UnitOfWork, claim: Claim) -> bool:
    """Extend the claim's lease; False when another builder has claimed the job since."""
    lease = timedelta(seconds=float(_setting(uow.settings, "DOWNLOAD_BUILD_LEASE_SECONDS")))
    with uow.transaction(lock=False) as session:
        result = session.execute(update(DownloadBuild).where(_held(claim)).values(
            lease_until=now_utc() + lease))
        seen(session, claim.runner)  # a builder busy building is alive too
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _finish(uow: UnitOfWork, claim: Claim, **values: Any) -> bool:
    with uow.transaction(lock=False) as session:
        result = session.execute(update(DownloadBuild).where(_held(claim)).values(
            lease_until=None, **values))
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def build(uow: UnitOfWork, beats: UnitOfWork, claim: Claim, root: Path, *,
          stopping: Callable[[], bool] = lambda: False) -> Outcome:
    """Build every listed download of the claimed job's version into ``root``, renewing the
    lease through ``beats`` (a unit of work of its own: ``uow`` reads the records for the
    whole build); record and return the outcome.

    ``stopping``: asked between pieces of the files; True gives the job back to the queue.
    """
    lease = float(_setting(uow.settings, "DOWNLOAD_BUILD_LEASE_SECONDS"))
    last_beat = time.monotonic()

    def tick() -> None:
        nonlocal last_beat
        if stopping():
            raise Interrupted
        if time.monotonic() - last_beat >= lease / 4:
            try:
                if not renew(beats, claim):
                    raise ClaimLost
            except SQLAlchemyError as exc:  # say SQLite's lock held by a long load
                log.warning("version %s: renewing the build's lease failed (%s); trying "
                            "again", claim.version, exc.__class__.__name__)
            last_beat = time.monotonic()

    started = time.perf_counter()
    log.info("version %s: building its downloads (attempt %s, %s)", claim.version,
             claim.attempt, claim.runner)
    try:
        version = repository.get_version(uow.session, claim.version)
        if version is None:  # cannot be: the job refers to it
            raise LookupError(f"version {claim.version} is not in the database")
        files = Downloads(uow.session, root).build_all(version, tick=tick)
    except Interrupted:
        uow.end_read()
        _finish(beats, claim, state=QUEUED, claimed_by=None, attempts=claim.attempt - 1,
                started_at=None)
        log.info("version %s: download build stopped with its builder; queued again",
                 claim.version)
        return Outcome(claim.version, QUEUED)
    except ClaimLost:
        uow.end_read()
        log.warning("version %s: another builder claimed its download build (this one's "
                    "lease ran out); leaving it to that one", claim.version)
        return Outcome(claim.version, RUNNING, error="claim lost")
    except FolderUnusable as exc:
        uow.end_read()
        error = (f"the downloads folder cannot be written ({exc.cause}: {exc.reason}); "
                 "its files are sent from the database meanwhile")
        _finish(beats, claim, state=FAILED, finished_at=now_utc(), error=error[:1000])
        log.error("version %s: download build failed: %s", claim.version, error)
        return Outcome(claim.version, FAILED, error=error)
    except Exception as exc:  # the database lost mid-build, a bug: try again, up to a point
        uow.end_read()
        error = f"{exc.__class__.__name__}: {exc}"[:1000]
        again = claim.attempt < MAX_ATTEMPTS
        log.exception("version %s: download build failed (attempt %s of %s)%s",
                      claim.version, claim.attempt, MAX_ATTEMPTS,
                      ": queued again" if again else "")
        values: dict[str, Any] = ({"state": QUEUED, "claimed_by": None} if again else
                                  {"state": FAILED, "finished_at": now_utc()})
        _finish(beats, claim, error=error, **values)
        return Outcome(claim.version, values["state"], error=error)
    uow.end_read()
    seconds = time.perf_counter() - started
    size = sum(b.size for _n, b in files)
    if _finish(beats, claim, state=DONE, finished_at=now_utc(), files=len(files), bytes=size,
               error=None):
        log.info("version %s: %s download files (%s bytes) built in %.1fs", claim.version,
                 len(files), size, seconds)
    else:
        log.warning("version %s: download files built in %.1fs, but another builder had "
                    "claimed the job meanwhile", claim.version, seconds)
    return Outcome(claim.version, DONE, len(files), size, seconds)


def run_due(uow: UnitOfWork, beats: UnitOfWork, runner: str, root: Path, *,
            stopping: Callable[[], bool] = lambda: False,
            only: int | None = None) -> list[Outcome]:
    """Claim and build queued jobs one after another until none is left (or ``stopping``);
    ``only``: claim nothing but that version's job (a publishing process building its own)."""
    outcomes = []
    while not stopping():
        if only is not None and not _queued(uow.session, only):
            uow.end_read()
            break
        got = claim(uow, runner) if only is None else claim_version(uow, runner, only)
        if got is None:
            break
        outcomes.append(build(uow, beats, got, root, stopping=stopping))
        if only is not None:
            break
    return outcomes


def _queued(session: Session, number: int) -> bool:
    return session.scalar(select(DownloadBuild.state).where(
        DownloadBuild.version == number)) == QUEUED


def claim_version(uow: UnitOfWork, runner: str, number: int) -> Claim | None:
    """Claim the job of version ``number`` if it is queued (no other builder has it)."""
    lease = timedelta(seconds=float(_setting(uow.settings, "DOWNLOAD_BUILD_LEASE_SECONDS")))
    with uow.transaction(lock=False) as session:
        moment = now_utc()
        attempts = session.scalar(select(DownloadBuild.attempts).where(
            DownloadBuild.version == number, DownloadBuild.state == QUEUED))
        if attempts is None:
            return None
        claimed = session.execute(update(DownloadBuild).where(
            DownloadBuild.version == number, DownloadBuild.state == QUEUED,
            DownloadBuild.attempts == attempts).values(
            state=RUNNING, claimed_by=runner[:100], lease_until=moment + lease,
            attempts=attempts + 1, started_at=moment))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return Claim(number, attempts + 1, runner[:100])


# --- what admins and monitors see -----------------------------------------------------------

def job_dict(row: DownloadBuild) -> dict[str, Any]:
    return {"version": row.version, "state": row.state, "attempts": row.attempts,
            "queued_at": iso_utc(row.queued_at), "started_at": iso_utc_or_none(row.started_at),
            "finished_at": iso_utc_or_none(row.finished_at), "claimed_by": row.claimed_by,
            "files": row.files, "bytes": row.bytes, "error": row.error}


def jobs(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    """The latest jobs, newest version first."""
    return [job_dict(r) for r in session.scalars(
        select(DownloadBuild).order_by(DownloadBuild.version.desc()).limit(limit))]


def queue_summary(session: Session) -> dict[str, Any]:
    """For the health check: jobs waiting or running, the oldest waiting's age, the last
    failure."""
    counts = {state: count for state, count in session.execute(
        select(DownloadBuild.state, func.count())
        .where(DownloadBuild.state.in_((QUEUED, RUNNING))).group_by(DownloadBuild.state))}
    oldest = session.scalar(select(func.min(DownloadBuild.queued_at))
                            .where(DownloadBuild.state == QUEUED))
    failed = session.execute(select(DownloadBuild.version, DownloadBuild.error)
                             .where(DownloadBuild.state == FAILED)
                             .order_by(DownloadBuild.version.desc()).limit(1)).first()
    out: dict[str, Any] = {"queued": counts.get(QUEUED, 0), "running": counts.get(RUNNING, 0),
                           "oldest_queued_seconds": (
                               round((now_utc() - oldest).total_seconds()) if oldest else None)}
    if failed is not None:
        out["last_failed"] = {"version": failed.version, "error": failed.error}
    return out
