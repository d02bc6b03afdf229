"""The release calendar's contract over HTTP and the CLI: plan, change, cancel, read as JSON
and iCalendar, refuse bad input, and the version live on a day."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from isd_service.adapters import repository
from isd_service.domain import recurrence
from tests.conftest import database_of

API = "/api/v1"
ADMIN = f"{API}/admin"
Headers = dict[str, str]


def future(days: int, hour: int = 12) -> datetime:
    day = datetime.now(UTC).date() + timedelta(days=days)
    return datetime.combine(day, time(hour), tzinfo=UTC)


def body(days: int = 10, **extra: Any) -> dict[str, Any]:
    return {"change_deadline": future(days - 5).isoformat(),
            "publish_at": future(days).isoformat(),
            "go_live_date": (future(days).date() + timedelta(days=14)).isoformat(), **extra}


def test_plan_change_and_cancel_a_release(
        client: FlaskClient, publisher_headers: Headers) -> None:
    r = client.post(f"{ADMIN}/releases", headers=publisher_headers, json=body(version=375))
    assert r.status_code == 201
    created = r.get_json()
    assert (created["state"], created["version"]) == ("planned", 375)
    rid = created["id"]
    assert created["publish_at"] == future(10).isoformat().replace("+00:00", "Z")

    listed = client.get(f"{API}/releases").get_json()["releases"]
    assert [(x["id"], x["state"]) for x in listed] == [(rid, "planned")]

    later = (future(11) + timedelta(hours=1)).astimezone(recurrence.LONDON)
    r = client.patch(f"{ADMIN}/releases/{rid}", headers=publisher_headers,
                     json={"publish_at": later.isoformat(), "empty_draft": "publish"})
    assert r.status_code == 200
    assert r.get_json()["publish_at"] == later.astimezone(UTC).isoformat().replace(
        "+00:00", "Z")
    assert r.get_json()["empty_draft"] == "publish"

    r = client.delete(f"{ADMIN}/releases/{rid}", headers=publisher_headers)
    assert r.status_code == 200 and r.get_json()["state"] == "cancelled"
    r = client.patch(f"{ADMIN}/releases/{rid}", headers=publisher_headers,
                     json={"version": 376})
    assert r.status_code == 409
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.get_json()["type"].endswith("/release-refused")
    assert r.get_json()["detail"] == f"release {rid} is cancelled: it cannot become planned"
    assert client.delete(f"{ADMIN}/releases/{rid}", headers=publisher_headers).status_code == 409
    assert client.get(f"{API}/releases/{rid}").get_json()["state"] == "cancelled"


def test_bad_release_input_is_refused_and_changes_nothing(
        client: FlaskClient, publisher_headers: Headers, loader_headers: Headers) -> None:
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**body(), "publish_at": future(10).replace(tzinfo=None).isoformat()}, 422,
         "publish_at"),
        ({**body(), "change_deadline": future(11).isoformat()}, 422, "change_deadline"),
        ({**body(), "go_live_date": (future(10).date() - timedelta(days=1)).isoformat()}, 422,
         "go_live_date"),
        (body(days=-1), 422, "publish_at"),
        ({**body(), "colour": "red"}, 422, "colour"),
        ({**body(), "version": "375"}, 422, "version"),
        ({**body(), "empty_draft": "maybe"}, 422, "empty_draft"),
        ({k: v for k, v in body().items() if k != "go_live_date"}, 422, "go_live_date"),
    ]
    for data, status, field in cases:
        r = client.post(f"{ADMIN}/releases", headers=publisher_headers, json=data)
        assert r.status_code == status, (data, r.get_json())
        assert r.headers["Content-Type"] == "application/problem+json"
        assert field in {e["field"] for e in r.get_json()["errors"]}, r.get_json()
    assert client.post(f"{ADMIN}/releases", headers=loader_headers, json=body()).status_code \
        == 403
    assert client.post(f"{ADMIN}/releases", json=body()).status_code == 401
    assert client.post(f"{ADMIN}/releases", headers=publisher_headers,
                       data="x", content_type="text/plain").status_code == 415
    assert client.patch(f"{ADMIN}/releases/99", headers=publisher_headers,
                        json={"version": 3}).status_code == 404
    assert client.get(f"{API}/releases/0").status_code == 404
    assert client.get(f"{API}/releases").get_json() == {"releases": []}

    rid = client.post(f"{ADMIN}/releases", headers=publisher_headers,
                      json=body(version=5)).get_json()["id"]
    r = client.post(f"{ADMIN}/releases", headers=publisher_headers, json=body(20, version=5))
    assert r.status_code == 409
    r = client.patch(f"{ADMIN}/releases/{rid}", headers=publisher_headers, json={})
    assert r.status_code == 422
    r = client.patch(f"{ADMIN}/releases/{rid}", headers=publisher_headers,
                     json={"change_deadline": future(12).isoformat()})
    assert r.status_code == 422
    assert client.get(f"{API}/releases/{rid}").get_json()["change_deadline"] == \
        future(5).isoformat().replace("+00:00", "Z")


def test_planning_keeps_one_frozen_set_at_a_time(
        client: FlaskClient, publisher_headers: Headers) -> None:
    """A release's change deadline may not fall before the publication of the release
    before it, nor its publication after the change deadline of the one after it."""
    first = client.post(f"{ADMIN}/releases", headers=publisher_headers, json=body(10))
    assert first.status_code == 201
    # Deadline day 8, before the first's publication on day 10.
    r = client.post(f"{ADMIN}/releases", headers=publisher_headers,
                    json={**body(20), "change_deadline": future(8).isoformat()})
    assert r.status_code == 409, r.get_json()
    assert r.get_json()["type"].endswith("/release-refused")
    assert [e["field"] for e in r.get_json()["errors"]] == ["change_deadline"]
    assert f"release {first.get_json()['id']}" in r.get_json()["detail"]
    # Publication day 12, after the second's deadline on day 11.
    second = client.post(f"{ADMIN}/releases", headers=publisher_headers,
                         json={**body(20), "change_deadline": future(11).isoformat()})
    assert second.status_code == 201
    r = client.patch(f"{ADMIN}/releases/{first.get_json()['id']}", headers=publisher_headers,
                     json={"publish_at": future(12).isoformat()})
    assert r.status_code == 409
    assert [e["field"] for e in r.get_json()["errors"]] == ["publish_at"]
    assert len(client.get(f"{API}/releases").get_json()["releases"]) == 2
    # Right after the first publishes, the second may freeze.
    assert client.patch(f"{ADMIN}/releases/{second.get_json()['id']}",
                        headers=publisher_headers,
                        json={"change_deadline": future(10).isoformat()}).status_code == 200


def unfold(text: str) -> list[str]:
    return text.replace("\r\n ", "").split("\r\n")


def test_the_calendar_as_icalendar(client: FlaskClient, publisher_headers: Headers) -> None:
    first = client.post(f"{ADMIN}/releases", headers=publisher_headers,
                        json=body(version=375)).get_json()
    client.post(f"{ADMIN}/releases", headers=publisher_headers, json=body(40))
    r = client.get(f"{API}/releases.ics")
    assert r.status_code == 200 and r.mimetype == "text/calendar"
    text = r.get_data(as_text=True)
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    lines = unfold(text)
    assert lines[0] == "BEGIN:VCALENDAR" and lines[-2] == "END:VCALENDAR"
    assert lines.count("BEGIN:VEVENT") == lines.count("END:VEVENT") == 6
    uids = [line for line in lines if line.startswith("UID:")]
    assert len(set(uids)) == 6
    assert f"DTSTART:{future(10):%Y%m%dT%H%M%SZ}" in lines
    go_live = future(10).date() + timedelta(days=14)
    assert f"DTSTART;VALUE=DATE:{go_live:%Y%m%d}" in lines
    assert any(re.fullmatch(r"SUMMARY:ISD release 375: publication", line) for line in lines)

    # A change keeps the UIDs; a cancellation marks the events cancelled.
    client.patch(f"{ADMIN}/releases/{first['id']}", headers=publisher_headers,
                 json={"publish_at": future(11).isoformat()})
    client.delete(f"{ADMIN}/releases/{first['id']}", headers=publisher_headers)
    again = unfold(client.get(f"{API}/releases.ics").get_data(as_text=True))
    assert [line for line in again if line.startswith("UID:")] == uids
    assert again.count("STATUS:CANCELLED") == 3


def test_the_version_live_on_a_day(client: FlaskClient, publisher_headers: Headers) -> None:
    for number, go_live in ((1, "2026-01-01"), (2, "2026-03-01"), (3, "2026-02-01")):
        r = client.post(f"{ADMIN}/publications", headers=publisher_headers,
                        json={"go_live_date": go_live, "force": True})
        assert r.status_code == 201 and r.get_json()["version"] == number
    on = {d: client.get(f"{API}/versions/live?on={d}") for d in
          ("2025-12-31", "2026-01-01", "2026-02-15", "2026-03-01")}
    assert on["2025-12-31"].status_code == 404
    assert on["2026-01-01"].get_json()["version"] == 1
    # Version 3 went live before version 2 did: the newest gone live is in force.
    assert on["2026-02-15"].get_json()["version"] == 3
    assert on["2026-03-01"].get_json()["version"] == 3
    assert client.get(f"{API}/versions/live").status_code == 400
    assert client.get(f"{API}/versions/live?on=2026-02-30").status_code == 400


def test_the_schedule_lists_the_next_runs(
        client: FlaskClient, publisher_headers: Headers, loader_headers: Headers) -> None:
    rid = client.post(f"{ADMIN}/releases", headers=publisher_headers, json=body()).get_json()["id"]
    schedule = client.get(f"{ADMIN}/schedule", headers=publisher_headers).get_json()
    assert schedule == {"next_runs": [
        {"release": rid, "action": "freeze",
         "run_at": future(5).isoformat().replace("+00:00", "Z")},
        {"release": rid, "action": "publish",
         "run_at": future(10).isoformat().replace("+00:00", "Z")}],
        "awaiting_approval": [], "past_runs": []}
    assert client.get(f"{ADMIN}/schedule", headers=loader_headers).status_code == 403


def test_the_release_commands(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["release", "create", "--deadline", future(5).isoformat(),
                                 "--publish-at", future(10).isoformat(), "--go-live",
                                 (future(10).date() + timedelta(days=1)).isoformat(),
                                 "--version", "7", "--empty", "skip"])
    assert result.exit_code == 0, result.output
    rid = int(result.output.strip().splitlines()[-1])
    result = runner.invoke(args=["release", "generate", "--count", "2", "--weekday", "tue",
                                 "--nth", "3", "--at", "12:00"])
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) == 2
    listed = runner.invoke(args=["release", "list"]).output.strip().splitlines()
    assert len(listed) == 3 and "version 7" in listed[0]
    assert runner.invoke(args=["release", "cancel", str(rid)]).exit_code == 0
    again = runner.invoke(args=["release", "cancel", str(rid)])
    assert again.exit_code == 1 and "cancelled" in again.output
    bad = runner.invoke(args=["release", "create", "--deadline", "2027-01-01T12:00",
                              "--publish-at", future(10).isoformat(), "--go-live", "2030-01-01"])
    assert bad.exit_code == 2 and "offset" in bad.output
    with database_of(app).session_factory() as db:
        rows = repository.releases(db)
    generated = [r for r in rows if r.id != rid]
    for r in generated:
        local = r.publish_at.astimezone(recurrence.LONDON)
        assert (local.weekday(), (local.day - 1) // 7 + 1, local.time()) == (1, 3, time(12))
        assert r.go_live_date == local.date() + timedelta(days=14)
