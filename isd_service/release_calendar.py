"""The release calendar: planned releases, their freeze and publication, recurring rules, iCalendar.

A release moves through these states:

    planned --(change deadline)--> frozen --(publish time)--> published
       |                             |                    \\--> skipped (empty, policy skip)
       +--> cancelled                +--> cancelled (its frozen set goes back to the draft)
    planned/frozen --(too late, past the grace period)--> missed
    planned/frozen --(the run raised)--> failed

A missed or failed release keeps its frozen set; an admin reschedules it (PATCH: back to
planned or frozen), publishes it by hand (`isd publish`) or cancels it. Every state change
happens after the draft's lock, so two schedulers never both do the same step.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, delete, insert, literal, select
from sqlalchemy.orm import Session

from isd_service import events
from isd_service.catalogue import Catalogue, catalogue_changes
from isd_service.catalogue_db import working_catalogue
from isd_service.drafts import lock_draft, locked
from isd_service.models import DraftChange, FrozenChange, Release, ReleaseRun, Version
from isd_service.records import decode, key_dict, project
from isd_service.releases import PublishRefused, draft_is_empty, iso_utc, publish_locked
from isd_service.store import HOLDING_STATES, frozen_release, latest_version, live_rows

LONDON = ZoneInfo("Europe/London")
STATES = ("planned", "frozen", "published", "skipped", "cancelled", "failed", "missed")
EMPTY_POLICIES = ("skip", "publish")
# States an admin may still change (reschedule) or cancel.
CHANGEABLE = ("planned", "frozen", "failed", "missed")


class ReleaseRefused(Exception):
    """A calendar change was refused and nothing changed; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int = 409, field: str | None = None):
        self.status = status
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Outcome:
    """What a scheduled run did, as recorded in its ReleaseRun."""

    outcome: str  # frozen, published, skipped, missed, nothing-to-do
    detail: str
    version: int | None = None


def aware(moment: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite gives naive UTC back)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def london_time(day: date, at: time) -> datetime:
    """The UTC instant of a London wall-clock time on a day.

    A time in the spring gap (01:00-02:00 on the last Sunday of March) does not exist: it
    moves an hour later. A time repeated in October takes its first (BST) occurrence.
    """
    local = datetime.combine(day, at, tzinfo=LONDON)  # fold=0: the first occurrence
    return local.astimezone(UTC)


# --- planning -----------------------------------------------------------------------------

def _check_times(change_deadline: datetime, publish_at: datetime, go_live_date: date,
                 now: datetime, *, deadline_changes: bool = True) -> None:
    if change_deadline > publish_at:
        raise ReleaseRefused("the change deadline must not be after the publish time", 422,
                             "change_deadline")
    if go_live_date < publish_at.astimezone(LONDON).date():
        raise ReleaseRefused("the go-live date must not be before the publish date", 422,
                             "go_live_date")
    if publish_at <= now:
        raise ReleaseRefused("the publish time must be in the future", 422, "publish_at")
    if deadline_changes and change_deadline <= now:
        raise ReleaseRefused("the change deadline must be in the future", 422,
                             "change_deadline")


def _check_version(session: Session, version: int | None, release_id: int | None) -> None:
    if version is None:
        return
    latest = latest_version(session)
    if latest is not None and version <= latest.number:
        raise ReleaseRefused(f"version {version} is already published (the latest is "
                             f"{latest.number})", 422, "version")
    taken = session.scalars(select(Release.id).where(
        Release.version == version, Release.state.in_(CHANGEABLE),
        Release.id != (release_id or 0))).first()
    if taken is not None:
        raise ReleaseRefused(f"release {taken} already plans version {version}", 409, "version")


def create_release(
    session: Session, *, change_deadline: datetime, publish_at: datetime, go_live_date: date,
    version: int | None = None, empty_draft: str | None = None, actor: str,
    organisation: str | None = None, now: datetime | None = None,
) -> Release:
    """Plan a release; commit."""
    now = now or datetime.now(UTC)
    with locked(session):
        _check_times(change_deadline, publish_at, go_live_date, now)
        _check_version(session, version, None)
        release = Release(version=version, change_deadline=change_deadline.astimezone(UTC),
                          publish_at=publish_at.astimezone(UTC), go_live_date=go_live_date,
                          state="planned", empty_draft=empty_draft, created_by=actor,
                          created_at=now, updated_at=now)
        session.add(release)
        session.flush()
        _changed(session, release, "release.create", actor, organisation)
    return release


def _changed(session: Session, release: Release, action: str, actor: str,
             organisation: str | None) -> None:
    """Tell the listeners (the audit log), inside the change's own transaction."""
    events.release_changing.send(release, session=session, action=action, actor=actor,
                                 organisation=organisation)


def get_release(session: Session, release_id: int) -> Release:
    release = session.get(Release, release_id) if 1 <= release_id <= 2**31 - 1 else None
    if release is None:
        raise ReleaseRefused(f"there is no release {release_id}", 404)
    return release


def update_release(session: Session, release_id: int, changes: dict[str, Any], *,
                   actor: str = "cli", organisation: str | None = None,
                   now: datetime | None = None) -> Release:
    """Change a release not yet published or cancelled (reschedules a missed or failed one)."""
    now = now or datetime.now(UTC)
    with locked(session):
        release = get_release(session, release_id)
        if release.state not in CHANGEABLE:
            raise ReleaseRefused(f"release {release_id} is {release.state}: it cannot change")
        frozen = release.frozen_at is not None
        if frozen and "change_deadline" in changes:
            raise ReleaseRefused(f"release {release_id} is already frozen: its change "
                                 "deadline has passed", 409, "change_deadline")
        deadline = changes.get("change_deadline", aware(release.change_deadline))
        publish_at = changes.get("publish_at", aware(release.publish_at))
        go_live = changes.get("go_live_date", release.go_live_date)
        _check_times(deadline, publish_at, go_live, now, deadline_changes=not frozen)
        if "version" in changes:
            _check_version(session, changes["version"], release.id)
            release.version = changes["version"]
        if "empty_draft" in changes:
            release.empty_draft = changes["empty_draft"]
        release.change_deadline = deadline.astimezone(UTC)
        release.publish_at = publish_at.astimezone(UTC)
        release.go_live_date = go_live
        release.state = "frozen" if frozen else "planned"
        release.last_error = None
        release.updated_at = now
        _changed(session, release, "release.change", actor, organisation)
    return release


def cancel_release(session: Session, release_id: int, *, actor: str = "cli",
                   organisation: str | None = None, now: datetime | None = None) -> Release:
    """Cancel a release; a frozen set goes back into the open draft; commit."""
    now = now or datetime.now(UTC)
    with locked(session):
        release = get_release(session, release_id)
        if release.state not in CHANGEABLE:
            raise ReleaseRefused(f"release {release_id} is {release.state}: it cannot be "
                                 "cancelled")
        if release.frozen_at is not None:
            _unfreeze(session, release)
        release.state = "cancelled"
        release.updated_at = now
        _changed(session, release, "release.cancel", actor, organisation)
    return release


def _unfreeze(session: Session, release: Release) -> None:
    """Merge a frozen set back under the open draft, keeping the draft net against latest."""
    frozen = session.execute(select(FrozenChange).where(
        FrozenChange.release_id == release.id)).scalars().all()
    open_keys = {(e, k) for e, k in session.execute(
        select(DraftChange.entity_id, DraftChange.key))}
    rows = [{"entity_id": f.entity_id, "key": f.key, "op": f.op, "data": f.data,
             "load_id": f.load_id} for f in frozen if (f.entity_id, f.key) not in open_keys]
    session.execute(delete(FrozenChange).where(FrozenChange.release_id == release.id))
    if rows:
        session.execute(insert(DraftChange), rows)
    # An open change that only undid a frozen one is no change against the latest version.
    for entity_id in {f.entity_id for f in frozen}:
        live = live_rows(session, entity_id)
        for key, op, data in session.execute(select(
                DraftChange.key, DraftChange.op, DraftChange.data)
                .where(DraftChange.entity_id == entity_id)).all():
            if (op == "delete" and key not in live) or (op == "upsert" and live.get(key) == data):
                session.execute(delete(DraftChange).where(
                    DraftChange.entity_id == entity_id, DraftChange.key == key))


def list_releases(session: Session) -> list[Release]:
    return list(session.scalars(select(Release).order_by(Release.publish_at, Release.id)))


def release_dict(release: Release) -> dict[str, Any]:
    """The public description of a release."""
    return {
        "id": release.id,
        "version": release.published_version or release.version,
        "state": release.state,
        "change_deadline": iso_utc(release.change_deadline),
        "publish_at": iso_utc(release.publish_at),
        "go_live_date": release.go_live_date.isoformat(),
        "empty_draft": release.empty_draft,
        "frozen_at": iso_utc(release.frozen_at) if release.frozen_at else None,
        "published_version": release.published_version,
        "last_error": release.last_error,
    }


# --- recurring rules (pure) ----------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """Monthly: publish on the nth (1-4, or -1 for the last) weekday (0 = Monday) at a London
    time; go live ``go_live_days`` later; deadline ``deadline_working_days`` working days
    (Monday to Friday) before the publish day, at the same London time."""

    weekday: int
    nth: int
    at: time
    go_live_days: int = 14
    deadline_working_days: int = 5


def nth_weekday(year: int, month: int, weekday: int, nth: int) -> date:
    if nth > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (nth - 1))
    following = date(year + month // 12, month % 12 + 1, 1)
    last = following - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def working_days_before(day: date, n: int) -> date:
    while n > 0:
        day -= timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


def occurrences(rule: Rule, after: datetime, count: int) -> list[tuple[datetime, datetime, date]]:
    """The next ``count`` (deadline, publish time, go-live date) of a rule after a moment."""
    out: list[tuple[datetime, datetime, date]] = []
    local = after.astimezone(LONDON)
    year, month = local.year, local.month
    while len(out) < count:
        day = nth_weekday(year, month, rule.weekday, rule.nth)
        publish_at = london_time(day, rule.at)
        deadline = london_time(working_days_before(day, rule.deadline_working_days), rule.at)
        if deadline > after:
            out.append((deadline, publish_at, day + timedelta(days=rule.go_live_days)))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def generate(session: Session, rule: Rule, count: int, *, actor: str,
             now: datetime | None = None) -> list[Release]:
    """Plan the next ``count`` releases of a rule after the last planned one; commit each."""
    now = now or datetime.now(UTC)
    last = session.scalars(select(Release.publish_at).where(Release.state.in_(CHANGEABLE))
                           .order_by(Release.publish_at.desc()).limit(1)).first()
    after = max(now, aware(last)) if last else now
    return [create_release(session, change_deadline=d, publish_at=p, go_live_date=g,
                           actor=actor, now=now)
            for d, p, g in occurrences(rule, after, count)]


# --- iCalendar ----------------------------------------------------------------------------

def _ical_text(value: str) -> str:
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\n", "\\n"))


def _fold(line: str) -> Iterator[str]:
    """Fold a content line at 75 octets (RFC 5545 3.1)."""
    data = line.encode("utf-8")
    first = True
    while data:
        limit = 75 if first else 74
        cut = min(limit, len(data))
        while cut < len(data) and (data[cut] & 0xC0) == 0x80:  # never split a character
            cut -= 1
        yield ("" if first else " ") + data[:cut].decode("utf-8")
        data = data[cut:]
        first = False


def _stamp(moment: datetime) -> str:
    return aware(moment).strftime("%Y%m%dT%H%M%SZ")


def ical(releases: list[Release], host: str) -> str:
    """The calendar as iCalendar: per release a change deadline, a publication and a go-live
    event; UIDs stay the same for as long as the release exists."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//isd_service//release calendar//EN",
             "CALSCALE:GREGORIAN", "METHOD:PUBLISH", "X-WR-CALNAME:ISD releases"]
    for r in releases:
        name = f"ISD release {r.published_version or r.version or r.id}"
        status = "CANCELLED" if r.state == "cancelled" else "CONFIRMED"
        stamp = _stamp(r.updated_at)
        events_ = [
            ("deadline", f"{name}: change-request deadline",
             [f"DTSTART:{_stamp(r.change_deadline)}", f"DTEND:{_stamp(r.change_deadline)}"]),
            ("publish", f"{name}: publication",
             [f"DTSTART:{_stamp(r.publish_at)}", f"DTEND:{_stamp(r.publish_at)}"]),
            ("go-live", f"{name}: go-live",
             [f"DTSTART;VALUE=DATE:{r.go_live_date:%Y%m%d}",
              f"DTEND;VALUE=DATE:{r.go_live_date + timedelta(days=1):%Y%m%d}"]),
        ]
        for kind, summary, times in events_:
            lines += ["BEGIN:VEVENT", f"UID:release-{r.id}-{kind}@{host}", f"DTSTAMP:{stamp}",
                      *times, f"SUMMARY:{_ical_text(summary)}",
                      f"DESCRIPTION:{_ical_text(f'state: {r.state}')}", f"STATUS:{status}",
                      "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return "".join(f"{part}\r\n" for line in lines for part in _fold(line))


# --- the scheduled steps ------------------------------------------------------------------

def _fresh_release(session: Session, release_id: int) -> Release | None:
    """Read the release as the holder of the draft's lock sees it (not a stale copy)."""
    return session.scalars(select(Release).where(Release.id == release_id)
                           .execution_options(populate_existing=True)).first()


def _locked_release(session: Session, release_id: int) -> Release | None:
    """Take the draft's lock, then read the release."""
    lock_draft(session)
    return _fresh_release(session, release_id)


# What a step's due time is called in the outcomes it records.
STEP_TIMES = {"change_deadline": "change deadline", "publish_at": "publish time"}


def _not_due(release: Release | None, release_id: int, states: tuple[str, ...], due: str,
             now: datetime, grace: timedelta) -> Outcome | None:
    """Why a scheduled step does nothing, or None when it should run.

    Nothing to do when the release has moved on from ``states``; missed (and so marked) when
    its ``due`` time passed more than ``grace`` ago.
    """
    if release is None or release.state not in states:
        state = release.state if release else "gone"
        return Outcome("nothing-to-do", f"release {release_id} is {state}")
    at: datetime = getattr(release, due)
    if _too_late(at, now, grace):
        release.state = "missed"
        release.updated_at = now
        return Outcome("missed", f"the {STEP_TIMES[due]} {iso_utc(at)} passed more than "
                                 f"{grace} ago")
    return None


def _freeze_locked(session: Session, release: Release, now: datetime) -> int:
    """Move the open draft into the release's frozen set; return how many changes."""
    holder = frozen_release(session)
    if holder is not None and holder.id != release.id:
        raise PublishRefused(f"release {holder.id} still holds a frozen set: release "
                             f"{release.id} cannot freeze before it publishes")
    moved = session.execute(insert(FrozenChange).from_select(
        ["release_id", "entity_id", "key", "op", "data", "load_id"],
        select(literal(release.id, Integer()), DraftChange.entity_id, DraftChange.key,
               DraftChange.op, DraftChange.data, DraftChange.load_id)))
    session.execute(delete(DraftChange))
    release.state = "frozen"
    release.frozen_at = now
    release.updated_at = now
    return moved.rowcount or 0  # type: ignore[attr-defined]


def _too_late(due: datetime, now: datetime, grace: timedelta) -> bool:
    return now > aware(due) + grace


def freeze(session: Session, release_id: int, *, now: datetime, grace: timedelta) -> Outcome:
    """The change-deadline step: freeze the release's draft; commit."""
    with locked(session):
        release = _fresh_release(session, release_id)
        refused = _not_due(release, release_id, ("planned",), "change_deadline", now, grace)
        if refused is not None:
            return refused
        assert release is not None
        n = _freeze_locked(session, release, now)
        return Outcome("frozen", f"{n} change(s) frozen")


def publish_due(session: Session, release_id: int, *, now: datetime, grace: timedelta,
                empty_default: str, actor: str, organisation: str | None) -> Outcome:
    """The publish-time step: publish the release's frozen set (freezing first if the freeze
    did not run), or skip an empty one by policy; commit."""
    with locked(session):
        release = _fresh_release(session, release_id)
        refused = _not_due(release, release_id, ("planned", "frozen"), "publish_at", now, grace)
        if refused is not None:
            return refused
        assert release is not None
        if release.state == "planned":
            _freeze_locked(session, release, now)
        policy = release.empty_draft or empty_default
        latest = latest_version(session)
        if policy == "skip" and draft_is_empty(session, latest, working_catalogue(session),
                                               release):
            release.state = "skipped"
            release.updated_at = now
            return Outcome("skipped", "nothing changed: skipped by the empty-draft policy")
        version = publish_locked(session, actor=actor, organisation=organisation,
                                 version=None, go_live_date=None, force=True, release=release)
    events.version_published.send(version)
    return Outcome("published", f"published version {version.number}", version.number)


def record_run(session: Session, *, release_id: int, action: str, scheduled_for: datetime,
               started_at: datetime, finished_at: datetime, outcome: Outcome, runner: str,
               failed: bool = False) -> None:
    """Record a run's outcome; a failure also marks the release failed (if still due); commit."""
    try:
        if failed:
            release = _locked_release(session, release_id)
            if release is not None and release.state in ("planned", "frozen"):
                release.state = "failed"
                release.last_error = outcome.detail
                release.updated_at = finished_at
        if session.get(Release, release_id) is not None:
            session.add(ReleaseRun(release_id=release_id, action=action,
                                   scheduled_for=scheduled_for, started_at=started_at,
                                   finished_at=finished_at, outcome=outcome.outcome,
                                   detail=outcome.detail, version=outcome.version,
                                   runner=runner))
        session.commit()
    except BaseException:
        session.rollback()
        raise


def next_runs(session: Session) -> list[dict[str, Any]]:
    """The steps the scheduler will take, soonest first."""
    runs = []
    for r in session.scalars(select(Release).where(Release.state.in_(("planned", "frozen")))):
        if r.state == "planned":
            runs.append({"release": r.id, "action": "freeze",
                         "run_at": iso_utc(r.change_deadline)})
        runs.append({"release": r.id, "action": "publish", "run_at": iso_utc(r.publish_at)})
    return sorted(runs, key=lambda run: (run["run_at"], run["release"]))


def past_runs(session: Session, limit: int = 100) -> list[dict[str, Any]]:
    rows = session.scalars(select(ReleaseRun).order_by(ReleaseRun.id.desc()).limit(limit))
    return [{"id": r.id, "release": r.release_id, "action": r.action,
             "scheduled_for": iso_utc(r.scheduled_for), "started_at": iso_utc(r.started_at),
             "finished_at": iso_utc(r.finished_at), "outcome": r.outcome, "detail": r.detail,
             "version": r.version, "runner": r.runner} for r in rows]


# --- preview and go-live ------------------------------------------------------------------

def preview(session: Session, release: Release) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """A frozen release's changes in the shape of a delta from the latest version."""
    if release.state not in HOLDING_STATES or release.frozen_at is None:
        raise ReleaseRefused(f"release {release.id} is {release.state}: only a frozen "
                             "release has a preview", 409)
    latest = latest_version(session)
    catalogue = working_catalogue(session)
    old = Catalogue.from_list(latest.catalogue) if latest else Catalogue([])
    head = {"from": latest.number if latest else 0,
            "to": release.version or ((latest.number + 1) if latest else 1),
            "from_sha256": latest.sha256 if latest else None, "to_sha256": None,
            "release": release.id, "catalogue": catalogue_changes(old, catalogue)}

    def changes() -> Iterator[dict[str, Any]]:
        for eid, entity in catalogue.entities.items():
            rows = session.execute(select(FrozenChange.key, FrozenChange.op, FrozenChange.data)
                                   .where(FrozenChange.release_id == release.id,
                                          FrozenChange.entity_id == eid)
                                   .order_by(FrozenChange.key)).all()
            if not rows:
                continue
            live = live_rows(session, eid)
            for key, op, data in rows:
                if op == "delete" or data is None:
                    gone = decode(live[key]) if key in live else {}
                    yield {"entity": eid, "op": "delete", "key": key_dict(entity, gone),
                           "record": None}
                else:
                    record = project(entity, decode(data))
                    yield {"entity": eid, "op": "update" if key in live else "insert",
                           "key": key_dict(entity, record), "record": record}

    return head, changes()


def live_on(session: Session, day: date) -> Version | None:
    """The version in force on a day: the newest published one gone live on or before it."""
    return session.scalars(select(Version).where(Version.go_live_date.is_not(None),
                                                 Version.go_live_date <= day)
                           .order_by(Version.number.desc()).limit(1)).first()
