"""The scheduled steps driven by an injected clock: freeze, publication, missed runs, DST,
empty drafts, cancellation, failures, and the draft lifecycle around a frozen release."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from isd_service.adapters.orm import Release, Version
from isd_service.domain import recurrence
from isd_service.entrypoints import scheduler
from isd_service.entrypoints.flask_db import session, uow
from isd_service.service_layer import calendar, schedule

API = "/api/v1"
ADMIN = f"{API}/admin"
Headers = dict[str, str]

T0 = datetime(2027, 1, 11, 12, 0, tzinfo=UTC)  # "now" when the calendar is planned


class Clock:
    """The time the scheduler's steps take as now, and a scheduler that reads it."""

    def __init__(self, app: Flask, now: datetime):
        self.now = now
        self.runner = scheduler.Scheduler(app, clock=self)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(app: Flask) -> Iterator[Clock]:
    yield Clock(app, T0)


def load_gsp(client: FlaskClient, headers: Headers, rows: dict[str, str],
             mode: str = "upsert") -> dict[str, Any]:
    text = "gsp_group_id,gsp_group_name\n" + "".join(f"{k},{v}\n" for k, v in rows.items())
    r = client.post(f"{ADMIN}/loads", headers=headers, content_type="multipart/form-data",
                    data={"format": "csv", "mode": mode,
                          "file": (io.BytesIO(text.encode()), "gsp_group.csv")})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def gsp(client: FlaskClient, version: int) -> dict[str, str]:
    body = client.get(f"{API}/versions/{version}/snapshot?entity=gsp_group").get_json()
    return {r["gsp_group_id"]: r["gsp_group_name"] for r in body["entities"]["gsp_group"]}


def publish_first(client: FlaskClient, headers: Headers) -> None:
    load_gsp(client, headers, {"_A": "Eastern", "_B": "East Midlands"}, mode="replace")
    r = client.post(f"{ADMIN}/publications", headers=headers, json={"version": 1})
    assert r.status_code == 201, r.get_json()


def plan(app: Flask, deadline: datetime, publish_at: datetime, **kw: Any) -> int:
    with app.app_context():
        row = calendar.create_release(
            uow(), change_deadline=deadline, publish_at=publish_at,
            go_live_date=kw.pop("go_live_date", publish_at.date() + timedelta(days=14)),
            actor="test", now=T0, **kw)
        return row.id


def release(app: Flask, release_id: int) -> Release:
    with app.app_context():
        row = session().get(Release, release_id)
        assert row is not None
        return row


def versions(app: Flask) -> list[int]:
    with app.app_context():
        return sorted(session().scalars(Version.__table__.select().with_only_columns(
            Version.number)))


def draft(client: FlaskClient, headers: Headers) -> dict[str, Any]:
    return client.get(f"{ADMIN}/draft", headers=headers).get_json()["entities"]


def test_freeze_then_publish_on_time_and_later_loads_wait_for_the_next_release(
        app: Flask, client: FlaskClient, publisher_headers: Headers, clock: Clock) -> None:
    publish_first(client, publisher_headers)
    d1, p1 = T0 + timedelta(days=1), T0 + timedelta(days=2)
    r1 = plan(app, d1, p1, version=2)
    r2 = plan(app, T0 + timedelta(days=30), T0 + timedelta(days=31))
    before = load_gsp(client, publisher_headers, {"_A": "Eastern X", "_C": "London"})
    assert client.get(f"{ADMIN}/loads/{before['id']}/release",
                      headers=publisher_headers).get_json()["release"]["id"] == r1

    # Before the deadline nothing happens; there is no preview yet.
    assert client.get(f"{API}/releases/{r1}/preview").status_code == 409
    clock.now = d1 + timedelta(seconds=5)
    assert clock.runner.freeze_job(r1, d1).outcome == "frozen"
    assert release(app, r1).state == "frozen"
    assert draft(client, publisher_headers) == {}

    preview = client.get(f"{API}/releases/{r1}/preview").get_json()
    assert (preview["from"], preview["to"], preview["release"]) == (1, 2, r1)
    assert [(c["op"], c["key"], c["record"]) for c in preview["changes"]] == [
        ("update", {"gsp_group_id": "_A"}, {"gsp_group_id": "_A", "gsp_group_name": "Eastern X"}),
        ("insert", {"gsp_group_id": "_C"}, {"gsp_group_id": "_C", "gsp_group_name": "London"}),
    ]

    # A load after the freeze goes to the following release, against latest + frozen set:
    # _A back to its published value is a change there; _C as frozen is no change at all.
    after = load_gsp(client, publisher_headers,
                     {"_A": "Eastern", "_C": "London", "_D": "Merseyside"})
    assert client.get(f"{ADMIN}/loads/{after['id']}/release",
                      headers=publisher_headers).get_json()["release"]["id"] == r2
    assert (after["inserted"], after["updated"], after["unchanged"]) == (1, 1, 1)

    clock.now = p1 + timedelta(seconds=1)
    outcome = clock.runner.publish_job(r1, p1)
    assert (outcome.outcome, outcome.version) == ("published", 2)
    assert gsp(client, 2) == {"_A": "Eastern X", "_B": "East Midlands", "_C": "London"}
    manifest = client.get(f"{API}/versions/2").get_json()
    assert manifest["go_live_date"] == (p1.date() + timedelta(days=14)).isoformat()
    assert [ld["id"] for ld in manifest["loads"]] == [before["id"]]
    assert release(app, r1).state == "published"

    # The open draft is still exactly the net change against the new latest.
    assert draft(client, publisher_headers) == {
        "gsp_group": {"inserts": 1, "updates": 1, "deletes": 0}}
    r = client.post(f"{ADMIN}/publications", headers=publisher_headers, json={})
    assert r.status_code == 201
    assert gsp(client, 3) == {"_A": "Eastern", "_B": "East Midlands", "_C": "London",
                              "_D": "Merseyside"}
    delta = client.get(f"{API}/deltas?from=2&to=3").get_json()
    assert [(c["op"], c["key"]["gsp_group_id"]) for c in delta["changes"]] == [
        ("update", "_A"), ("insert", "_D")]


def test_a_second_run_of_a_step_finds_it_done(
        app: Flask, client: FlaskClient, publisher_headers: Headers, clock: Clock) -> None:
    publish_first(client, publisher_headers)
    d, p = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    rid = plan(app, d, p)
    load_gsp(client, publisher_headers, {"_C": "London"})
    clock.now = p
    assert clock.runner.publish_job(rid, p).outcome == "published"
    again = clock.runner.publish_job(rid, p)
    assert (again.outcome, again.detail) == ("nothing-to-do", f"release {rid} is published")
    assert clock.runner.freeze_job(rid, d).outcome == "nothing-to-do"
    assert versions(app) == [1, 2]


def test_a_missed_run_within_the_grace_period_runs_later_beyond_it_is_marked_missed(
        app: Flask, client: FlaskClient, publisher_headers: Headers, clock: Clock) -> None:
    publish_first(client, publisher_headers)
    p1, p2 = T0 + timedelta(days=1), T0 + timedelta(days=2)
    r1 = plan(app, p1 - timedelta(hours=1), p1)
    r2 = plan(app, p2 - timedelta(hours=1), p2, empty_draft="publish")
    load_gsp(client, publisher_headers, {"_C": "London"})
    clock.now = p1 + timedelta(minutes=59)  # the default grace is an hour
    assert clock.runner.publish_job(r1, p1).outcome == "published"
    load_gsp(client, publisher_headers, {"_D": "Merseyside"})
    clock.now = p2 - timedelta(hours=1)
    assert clock.runner.freeze_job(r2, clock.now).outcome == "frozen"
    clock.now = p2 + timedelta(hours=1, seconds=1)
    outcome = clock.runner.publish_job(r2, p2)
    assert outcome.outcome == "missed"
    assert release(app, r2).state == "missed"
    assert versions(app) == [1, 2]
    # The admin decides: publishing by hand publishes the missed release's frozen set.
    r = client.post(f"{ADMIN}/publications", headers=publisher_headers, json={})
    assert r.status_code == 201
    assert release(app, r2).state == "published"
    assert gsp(client, 3)["_D"] == "Merseyside"
    runs = client.get(f"{ADMIN}/schedule", headers=publisher_headers).get_json()["past_runs"]
    assert [(run["release"], run["outcome"]) for run in runs] == [
        (r2, "missed"), (r2, "frozen"), (r1, "published")]


def test_a_later_release_s_freeze_runs_only_after_the_earlier_publication(
        app: Flask, client: FlaskClient, publisher_headers: Headers, clock: Clock) -> None:
    """Two releases close together: when release 2's freeze job fires first (its publish job
    for release 1 late), release 1 publishes first, then release 2 freezes; nothing fails."""
    publish_first(client, publisher_headers)
    d1, p1 = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    d2, p2 = p1, T0 + timedelta(hours=3)
    r1, r2 = plan(app, d1, p1), plan(app, d2, p2)
    load_gsp(client, publisher_headers, {"_C": "London"})
    clock.now = d1
    assert clock.runner.freeze_job(r1, d1).outcome == "frozen"
    load_gsp(client, publisher_headers, {"_D": "Merseyside"})
    clock.now = p1 + timedelta(seconds=1)
    assert clock.runner.freeze_job(r2, d2).outcome == "frozen"
    assert (release(app, r1).state, release(app, r2).state) == ("published", "frozen")
    assert versions(app) == [1, 2]
    assert gsp(client, 2)["_C"] == "London" and "_D" not in gsp(client, 2)
    # Release 1's own job, when it comes, finds its step done.
    assert clock.runner.publish_job(r1, p1).outcome == "nothing-to-do"
    runs = client.get(f"{ADMIN}/schedule", headers=publisher_headers).get_json()["past_runs"]
    assert [(run["release"], run["action"], run["outcome"]) for run in reversed(runs)] == [
        (r1, "freeze", "frozen"), (r1, "publish", "published"), (r2, "freeze", "frozen"),
        (r1, "publish", "nothing-to-do")]
    clock.now = p2
    assert clock.runner.publish_job(r2, p2).outcome == "published"
    assert gsp(client, 3)["_D"] == "Merseyside"


def test_the_running_scheduler_recovers_a_run_missed_while_it_was_down(
        app: Flask, client: FlaskClient, publisher_headers: Headers) -> None:
    """A real APScheduler, started after the publish time had passed, publishes at start."""
    publish_first(client, publisher_headers)
    now = datetime.now(UTC)
    with app.app_context():
        rid = calendar.create_release(
            uow(), change_deadline=now - timedelta(minutes=20),
            publish_at=now - timedelta(minutes=10), go_live_date=now.date(),
            actor="test", now=now - timedelta(hours=1)).id
    load_gsp(client, publisher_headers, {"_C": "London"})
    stop = threading.Event()
    runner = threading.Thread(target=scheduler.Scheduler(app).run, args=(stop,))
    runner.start()
    try:
        for _ in range(200):  # up to 20 s
            if release(app, rid).state != "planned":
                break
            stop.wait(0.1)
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive()
    assert release(app, rid).state == "published"
    assert versions(app) == [1, 2]
    schedule = client.get(f"{ADMIN}/schedule", headers=publisher_headers).get_json()
    assert schedule["next_runs"] == []
    assert [run["outcome"] for run in schedule["past_runs"] if run["action"] == "publish"] \
        == ["published"]


def test_the_scheduler_puts_a_rule_s_jobs_at_london_time_across_the_clock_changes(
        app: Flask) -> None:
    """The rule's instants (tests/unit/test_recurrence.py) become the jobs' run times."""
    rule = recurrence.Rule(weekday=6, nth=-1, at=time(12, 0), go_live_days=7,
                           deadline_working_days=5)
    # The scheduler puts the jobs at those instants, 12:00 London on either side.
    with app.app_context():
        rows = calendar.generate(uow(), rule, 9, actor="test",
                                 now=datetime(2027, 2, 1, tzinfo=UTC))
    runner = scheduler.Scheduler(app)
    sched = runner.build()
    sched.start(paused=True)
    try:
        runner.sync()
        for row in rows:
            job = sched.get_job(f"release-{row.id}-publish", scheduler.JOBSTORE)
            assert job is not None
            assert job.next_run_time == row.publish_at
            local = job.next_run_time.astimezone(recurrence.LONDON)
            assert (local.hour, local.minute, local.weekday()) == (12, 0, 6)
    finally:
        sched.shutdown(wait=False)


@pytest.mark.parametrize("policy", ["skip", "publish"])
def test_an_empty_draft_at_publish_time_follows_the_policy(
        app: Flask, client: FlaskClient, publisher_headers: Headers, clock: Clock,
        policy: str) -> None:
    publish_first(client, publisher_headers)
    p = T0 + timedelta(days=1)
    rid = plan(app, p - timedelta(hours=1), p, empty_draft=policy)
    clock.now = p
    outcome = clock.runner.publish_job(rid, p)
    if policy == "skip":
        assert outcome.outcome == "skipped"
        assert release(app, rid).state == "skipped"
        assert versions(app) == [1]
    else:
        assert outcome.outcome == "published"
        assert versions(app) == [1, 2]
        v1, v2 = (client.get(f"{API}/versions/{n}").get_json() for n in (1, 2))
        assert v1["sha256"] == v2["sha256"]


def test_the_global_empty_draft_policy_applies_when_a_release_has_none(
        app: Flask, client: FlaskClient, publisher_headers: Headers, clock: Clock) -> None:
    publish_first(client, publisher_headers)
    p = T0 + timedelta(days=1)
    rid = plan(app, p - timedelta(hours=1), p)
    app.config["EMPTY_RELEASE"] = "publish"
    clock.now = p
    assert clock.runner.publish_job(rid, p).outcome == "published"


def test_a_cancelled_release_is_not_published_and_its_frozen_set_returns_to_the_draft(
        app: Flask, client: FlaskClient, publisher_headers: Headers, clock: Clock) -> None:
    publish_first(client, publisher_headers)
    d, p = T0 + timedelta(days=1), T0 + timedelta(days=2)
    r1 = plan(app, d, p)
    load_gsp(client, publisher_headers, {"_A": "Eastern X", "_C": "London"})
    clock.now = d
    clock.runner.freeze_job(r1, d)
    # The open draft after the freeze puts _A back and adds _D.
    load_gsp(client, publisher_headers, {"_A": "Eastern", "_D": "Merseyside"})
    r = client.delete(f"{ADMIN}/releases/{r1}", headers=publisher_headers)
    assert r.status_code == 200 and r.get_json()["state"] == "cancelled"
    clock.now = p
    assert clock.runner.publish_job(r1, p).outcome == "nothing-to-do"
    assert versions(app) == [1]
    # Back in one draft, net against version 1: _A's change cancelled out.
    assert draft(client, publisher_headers) == {
        "gsp_group": {"inserts": 2, "updates": 0, "deletes": 0}}
    client.post(f"{ADMIN}/publications", headers=publisher_headers, json={})
    assert gsp(client, 2) == {"_A": "Eastern", "_B": "East Midlands", "_C": "London",
                              "_D": "Merseyside"}


def test_a_failed_publication_leaves_the_frozen_set_intact_and_is_shown(
        app: Flask, client: FlaskClient, publisher_headers: Headers, clock: Clock,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    publish_first(client, publisher_headers)
    d, p = T0 + timedelta(days=1), T0 + timedelta(days=2)
    rid = plan(app, d, p)
    load_gsp(client, publisher_headers, {"_C": "London"})
    clock.now = d
    clock.runner.freeze_job(rid, d)
    preview = client.get(f"{API}/releases/{rid}/preview").get_json()

    def broken(*_args: Any, **_kwargs: Any) -> Version:
        raise OSError("disk full")

    monkeypatch.setattr(schedule, "publish_in", broken)
    clock.now = p
    outcome = clock.runner.publish_job(rid, p)
    assert (outcome.outcome, outcome.detail) == ("failed", "OSError: disk full")
    assert "disk full" in caplog.text
    row = release(app, rid)
    assert (row.state, row.last_error) == ("failed", "OSError: disk full")
    assert versions(app) == [1]
    assert client.get(f"{API}/releases/{rid}/preview").get_json() == preview
    runs = client.get(f"{ADMIN}/schedule", headers=publisher_headers).get_json()["past_runs"]
    assert (runs[0]["outcome"], runs[0]["detail"]) == ("failed", "OSError: disk full")

    # Rescheduled by an admin, it publishes the same changes.
    monkeypatch.undo()
    later = p + timedelta(days=1)
    with app.app_context():
        calendar.update_release(uow(), rid, {"publish_at": later}, now=p)
    assert release(app, rid).state == "frozen"
    clock.now = later
    assert clock.runner.publish_job(rid, later).outcome == "published"
    assert gsp(client, 2)["_C"] == "London"


def test_an_override_loads_into_the_frozen_release(
        app: Flask, client: FlaskClient, publisher_headers: Headers, loader_headers: Headers,
        clock: Clock) -> None:
    publish_first(client, publisher_headers)
    d, p = T0 + timedelta(days=1), T0 + timedelta(days=2)
    rid = plan(app, d, p)
    csv_c = b"gsp_group_id,gsp_group_name\n_C,London\n"

    def override(headers: Headers) -> Any:
        return client.post(f"{ADMIN}/releases/frozen/loads", headers=headers,
                           content_type="multipart/form-data",
                           data={"format": "csv", "mode": "upsert",
                                 "file": (io.BytesIO(csv_c), "gsp_group.csv")})

    r = override(publisher_headers)
    assert r.status_code == 422
    assert "no release is frozen" in r.get_json()["errors"][0]["message"]
    clock.now = d
    clock.runner.freeze_job(rid, d)
    load_gsp(client, publisher_headers, {"_C": "London", "_D": "Merseyside"})
    assert override(loader_headers).status_code == 403
    r = override(publisher_headers)
    assert r.status_code == 201
    assert r.get_json()["release"]["id"] == rid
    # The open draft no longer repeats _C: the frozen set now brings it.
    assert draft(client, publisher_headers) == {
        "gsp_group": {"inserts": 1, "updates": 0, "deletes": 0}}
    clock.now = p
    assert clock.runner.publish_job(rid, p).outcome == "published"
    assert "_C" in gsp(client, 2) and "_D" not in gsp(client, 2)
    client.post(f"{ADMIN}/publications", headers=publisher_headers, json={})
    assert "_D" in gsp(client, 3)
