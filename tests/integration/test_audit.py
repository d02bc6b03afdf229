"""The audit log: every change leaves one event with who, organisation, when and what; the
log is append-only, paged for admins, and an event commits or rolls back with its change."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from werkzeug.test import TestResponse

from isd_service.adapters.orm import AuditEvent
from isd_service.entrypoints.flask_db import database, session
from tests.conftest import token_for

API = "/api/v1"
ADMIN = f"{API}/admin"
GSP = "gsp_group_id,gsp_group_name\n_A,Eastern\n_B,East Midlands\n"
NEW_FIELD = {"id": "gsp_group_region", "name": "GSP Group Region", "type": "string",
             "max_length": 20}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_csv(client: FlaskClient, headers: dict[str, str], content: str,
             mode: str = "upsert") -> TestResponse:
    return client.post(f"{ADMIN}/loads", headers=headers, content_type="multipart/form-data",
                       data={"format": "csv", "mode": mode,
                             "file": (io.BytesIO(content.encode()), "gsp_group.csv")})


def events(client: FlaskClient, headers: dict[str, str], **query: Any) -> list[dict[str, Any]]:
    response = client.get(f"{ADMIN}/audit", headers=headers, query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["events"]


def test_every_kind_of_change_leaves_an_event(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    loader = bearer(token_for(app, "loader", org="EXDA"))
    assert post_csv(client, loader, GSP).status_code == 201
    published = client.post(f"{ADMIN}/publications", headers=admin_headers, json={})
    assert published.status_code == 201
    assert client.post(f"{ADMIN}/catalogue/entities/gsp_group/fields", headers=admin_headers,
                       json=NEW_FIELD).status_code == 201
    assert post_csv(client, loader, "gsp_group_id,gsp_group_name\n_C,London\n").status_code \
        == 201
    assert client.delete(f"{ADMIN}/draft", headers=admin_headers).get_json() == \
        {"discarded": 1}
    created = client.post(f"{ADMIN}/tokens", headers=admin_headers,
                          json={"organisation": "EXDB", "roles": ["loader"]}).get_json()
    assert client.delete(f"{ADMIN}/tokens/{created['id']}",
                         headers=admin_headers).status_code == 200

    log = events(client, admin_headers)
    assert [e["action"] for e in log] == [
        "token.revoke", "token.create", "draft.discard", "load", "catalogue.add_field",
        "publication", "load", "token.create", "token.create"]
    assert [e["id"] for e in log] == sorted((e["id"] for e in log), reverse=True)
    first_load = log[6]
    assert first_load["organisation"] == "EXDA"
    assert first_load["actor"].startswith("token:")
    digest = hashlib.sha256(GSP.encode()).hexdigest()
    assert first_load["details"]["files"] == [
        {"name": "gsp_group.csv", "size": len(GSP.encode()), "sha256": digest}]
    assert first_load["details"]["inserted"] == 2
    publication = log[5]
    assert publication["subject"] == "version 1"
    assert publication["details"]["sha256"] == published.get_json()["sha256"]
    assert publication["details"]["loads"] == [first_load["details"]["load"]]
    assert log[4]["details"]["field"]["id"] == "gsp_group_region"
    assert log[2]["details"] == {"discarded": 1}
    assert log[1]["details"]["organisation"] == "EXDB"
    assert log[0]["details"]["revoked_at"] is not None
    for e in log:
        assert e["at"].endswith("Z")
        assert "token_sha256" not in str(e["details"])


def test_a_refused_change_leaves_no_event(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    before = events(client, admin_headers)
    bad = post_csv(client, admin_headers, "gsp_group_id,gsp_group_name\n_A,\n")
    assert bad.status_code == 422
    assert client.post(f"{ADMIN}/publications", headers=admin_headers,
                       json={"version": 0}).status_code == 422
    assert client.post(f"{ADMIN}/catalogue/entities/gsp_group/fields", headers=admin_headers,
                       json={"id": "x"}).status_code == 422
    assert events(client, admin_headers) == before


def test_the_manifest_lists_every_load_of_its_version(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    first = post_csv(client, admin_headers, GSP).get_json()
    second = post_csv(client, admin_headers, "gsp_group_id,gsp_group_name\n_C,London\n")
    assert client.post(f"{ADMIN}/publications", headers=admin_headers, json={}).status_code \
        == 201
    loads = client.get(f"{API}/versions/1").get_json()["loads"]
    assert [ld["id"] for ld in loads] == [first["id"], second.get_json()["id"]]
    assert loads[0]["sha256"] == first["sha256"]
    publication = events(client, admin_headers, action="publication")[0]
    assert publication["details"]["loads"] == [ld["id"] for ld in loads]


def test_the_log_pages_with_a_cursor(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    for i in range(5):
        assert post_csv(client, admin_headers,
                        f"gsp_group_id,gsp_group_name\n_{'ABCDE'[i]},Group {i}\n").status_code \
            == 201
    everything = events(client, admin_headers)
    seen: list[int] = []
    query: dict[str, Any] = {"limit": 2}
    while True:
        body = client.get(f"{ADMIN}/audit", headers=admin_headers, query_string=query).get_json()
        assert len(body["events"]) <= 2
        seen += [e["id"] for e in body["events"]]
        if body["next_cursor"] is None:
            break
        query["cursor"] = body["next_cursor"]
    assert seen == [e["id"] for e in everything]
    loads = events(client, admin_headers, action="load")
    assert len(loads) == 5 and {e["action"] for e in loads} == {"load"}


@pytest.mark.parametrize("query", [
    {"cursor": "not-a-cursor"}, {"cursor": "eyJiZWZvcmUiOiAtMX0="}, {"limit": 0},
    {"limit": 100000}, {"limit": "x"}, {"sort": "id"}])
def test_bad_paging_is_a_400(client: FlaskClient, admin_headers: dict[str, str],
                             query: dict[str, Any]) -> None:
    response = client.get(f"{ADMIN}/audit", headers=admin_headers, query_string=query)
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["errors"]


def test_the_database_refuses_to_change_an_event(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    assert post_csv(client, admin_headers, GSP).status_code == 201
    with app.app_context(), database().engine.connect() as conn:
        with pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text("UPDATE audit_event SET actor = 'someone else'"))
        conn.rollback()
        actors = set(conn.scalars(text("SELECT actor FROM audit_event")))
    assert "someone else" not in actors


def test_an_event_rolls_back_with_its_change(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    """A failure after the audit row was added (but before the commit) leaves neither."""
    from isd_service.service_layer import webhooks

    def explode(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("disk full")

    assert post_csv(client, admin_headers, GSP).status_code == 201
    with pytest.MonkeyPatch.context() as patch:
        # Queuing the notices comes after the publication's audit row, before the commit.
        patch.setattr(webhooks, "queue_notices", explode)
        assert client.post(f"{ADMIN}/publications", headers=admin_headers,
                           json={}).status_code == 500
    with app.app_context():
        actions = list(session().scalars(select(AuditEvent.action)))
    assert "publication" not in actions
    assert client.get(f"{API}/versions/latest").status_code == 404


def test_tokens_from_the_command_line_are_listed_revoked_and_audited(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    runner = app.test_cli_runner()
    created = runner.invoke(args=["token", "create", "--org", "EXDA", "--role", "loader",
                                  "--description", "distributor"])
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    assert client.get(f"{ADMIN}/draft", headers=bearer(token)).status_code == 200

    listed = runner.invoke(args=["token", "list"])
    assert listed.exit_code == 0, listed.output
    assert token not in listed.output
    line = next(ln for ln in listed.output.splitlines() if "EXDA" in ln)
    assert "active" in line and "distributor" in line
    token_id = int(line.split()[0])

    revoked = runner.invoke(args=["token", "revoke", str(token_id)])
    assert revoked.exit_code == 0, revoked.output
    assert client.get(f"{ADMIN}/draft", headers=bearer(token)).status_code == 401
    assert "revoked" in next(ln for ln in runner.invoke(args=["token", "list"]).output
                             .splitlines() if ln.split()[0] == str(token_id))
    again = runner.invoke(args=["token", "revoke", str(token_id)])
    assert again.exit_code == 1 and "already revoked" in again.output
    missing = runner.invoke(args=["token", "revoke", "999999"])
    assert missing.exit_code == 1 and "no token" in missing.output

    log = events(client, admin_headers, action="token.revoke")
    assert [(e["actor"], e["organisation"], e["subject"]) for e in log] == [
        ("cli", "ISDA", f"token {token_id}")]
    created_events = events(client, admin_headers, action="token.create")
    assert any(e["details"]["description"] == "distributor" for e in created_events)


def test_release_calendar_changes_leave_events(client: FlaskClient,
                                               publisher_headers: dict[str, str],
                                               admin_headers: dict[str, str]) -> None:
    planned = {"change_deadline": "2030-03-10T12:00:00+00:00",
               "publish_at": "2030-03-17T12:00:00+00:00", "go_live_date": "2030-03-31"}
    created = client.post(f"{ADMIN}/releases", json=planned, headers=publisher_headers)
    assert created.status_code == 201
    rid = created.get_json()["id"]
    assert client.patch(f"{ADMIN}/releases/{rid}", headers=publisher_headers,
                        json={"go_live_date": "2030-04-01"}).status_code == 200
    assert client.delete(f"{ADMIN}/releases/{rid}", headers=publisher_headers).status_code \
        == 200
    refused = client.patch(f"{ADMIN}/releases/{rid}", headers=publisher_headers,
                           json={"go_live_date": "2030-04-02"})
    assert refused.status_code == 409
    log = [e for e in events(client, admin_headers) if e["action"].startswith("release.")]
    assert [e["action"] for e in log] == ["release.cancel", "release.change", "release.create"]
    assert all(e["subject"] == f"release {rid}" and e["actor"].startswith("token:")
               for e in log)
    assert log[1]["details"]["go_live_date"] == "2030-04-01"
    assert log[0]["details"]["state"] == "cancelled"


def test_webhook_subscriptions_leave_events(client: FlaskClient,
                                            admin_headers: dict[str, str]) -> None:
    created = client.post(f"{ADMIN}/webhooks", headers=admin_headers,
                          json={"url": "http://127.0.0.1:9/hook"})
    assert created.status_code == 201
    wid = created.get_json()["id"]
    assert client.delete(f"{ADMIN}/webhooks/{wid}", headers=admin_headers).status_code == 204
    log = [e for e in events(client, admin_headers) if e["action"].startswith("webhook.")]
    assert [e["action"] for e in log] == ["webhook.unsubscribe", "webhook.subscribe"]
    assert log[1]["details"]["url"] == "http://127.0.0.1:9/hook"
    assert created.get_json()["secret"] not in str(log)
