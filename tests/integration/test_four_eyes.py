"""Four-eyes publication (ISD_PUBLICATION_APPROVALS): tokens name their holder, a publisher's
publication becomes a request that another holder approves; self-approval, approving your own
loads, a load after the request and the scheduler's publish step."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from isd_service.adapters.orm import ApiToken, AuditEvent, Release
from isd_service.config import SettingError, settings
from isd_service.entrypoints.flask_db import session, uow
from tests.conftest import create_token
from tests.integration.test_scheduler import T0, Clock, plan

API = "/api/v1"
ADMIN = f"{API}/admin"
Headers = dict[str, str]


def holder(app: Flask, name: str | None, *roles: str, org: str = "ISDA") -> Headers:
    with app.app_context():
        token = create_token(uow(), organisation=org, roles=list(roles), name=name)
    return {"Authorization": f"Bearer {token}"}


def load_gsp(client: FlaskClient, headers: Headers, rows: dict[str, str],
             mode: str = "upsert") -> dict[str, Any]:
    text = "gsp_group_id,gsp_group_name\n" + "".join(f"{k},{v}\n" for k, v in rows.items())
    r = client.post(f"{ADMIN}/loads", headers=headers, content_type="multipart/form-data",
                    data={"format": "csv", "mode": mode,
                          "file": (io.BytesIO(text.encode()), "gsp_group.csv")})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def latest(client: FlaskClient) -> int | None:
    r = client.get(f"{API}/versions/latest")
    return r.get_json()["version"] if r.status_code == 200 else None


def actions(app: Flask) -> list[tuple[str, str | None]]:
    with app.app_context():
        return [(e.action, e.subject) for e in session().scalars(
            select(AuditEvent).where(AuditEvent.action.like("publication%"))
            .order_by(AuditEvent.id))]


@pytest.fixture
def four_eyes(app: Flask) -> Flask:
    app.config["PUBLICATION_APPROVALS"] = 1
    return app


@pytest.fixture
def people(app: Flask) -> dict[str, Headers]:
    """alice loads, bob asks to publish, carol and dave may approve."""
    return {"alice": holder(app, "alice", "loader", org="EXDA"),
            "bob": holder(app, "bob", "publisher"),
            "carol": holder(app, "carol", "publisher"),
            "dave": holder(app, "dave", "publisher")}


def test_tokens_name_their_holder_and_unnamed_ones_still_work(
        app: Flask, client: FlaskClient, admin_headers: Headers) -> None:
    r = client.post(f"{ADMIN}/tokens", headers=admin_headers,
                    json={"organisation": "EXDA", "roles": ["loader"], "name": "Alice Smith"})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["name"] == "Alice Smith"
    listed = {t["id"]: t["name"] for t in
              client.get(f"{ADMIN}/tokens", headers=admin_headers).get_json()["tokens"]}
    assert listed[r.get_json()["id"]] == "Alice Smith"
    assert None in listed.values()  # the admin's own token: unnamed, and it works
    bad = client.post(f"{ADMIN}/tokens", headers=admin_headers,
                      json={"organisation": "EXDA", "roles": ["loader"], "name": "token:3"})
    assert bad.status_code == 422
    assert "names no person" in bad.get_json()["detail"]

    runner = app.test_cli_runner()
    out = runner.invoke(args=["token", "create", "--org", "EXDA", "--role", "publisher",
                              "--name", "Bob Jones"])
    assert out.exit_code == 0, out.output
    assert "token for Bob Jones of EXDA" in out.output
    listing = runner.invoke(args=["token", "list"]).output
    assert "Bob Jones" in listing and "(unnamed)" in listing


def test_without_approvals_a_publisher_publishes_alone(
        app: Flask, client: FlaskClient, people: dict[str, Headers]) -> None:
    load_gsp(client, people["alice"], {"_A": "Eastern"}, mode="replace")
    r = client.post(f"{ADMIN}/publications", headers=people["bob"], json={})
    assert r.status_code == 201
    assert r.get_json()["version"] == 1


def test_a_second_holder_approves_and_the_approval_publishes(
        four_eyes: Flask, client: FlaskClient, people: dict[str, Headers]) -> None:
    load_gsp(client, people["alice"], {"_A": "Eastern"}, mode="replace")
    r = client.post(f"{ADMIN}/publications", headers=people["bob"], json={})
    assert r.status_code == 202, r.get_json()
    request_id = r.get_json()["request"]
    assert r.get_json()["state"] == "awaiting-approval"
    assert latest(client) is None  # nothing is published yet

    # bob asked: he may not approve; alice loaded: her publisher token may not either.
    own = client.post(f"{ADMIN}/publication-requests/{request_id}/approvals",
                      headers=people["bob"], json={})
    assert own.status_code == 403
    assert own.get_json()["type"].endswith("self-approval")
    assert "bob asked for publication request" in own.get_json()["detail"]
    alice_publisher = holder(four_eyes, "alice", "publisher")
    loaded = client.post(f"{ADMIN}/publication-requests/{request_id}/approvals",
                         headers=alice_publisher, json={})
    assert loaded.status_code == 403
    assert "alice loaded changes" in loaded.get_json()["detail"]
    # A loader may not decide at all.
    assert client.post(f"{ADMIN}/publication-requests/{request_id}/approvals",
                       headers=people["alice"], json={}).status_code == 403
    assert latest(client) is None

    ok = client.post(f"{ADMIN}/publication-requests/{request_id}/approvals",
                     headers=people["carol"], json={"comment": "checked the diff"})
    assert ok.status_code == 201, ok.get_json()
    body = ok.get_json()
    assert (body["state"], body["approvals"], body["published_version"]) == (
        "published", 1, 1)
    assert body["manifest"]["version"] == 1
    assert latest(client) == 1
    shown = client.get(f"{ADMIN}/publication-requests/{request_id}",
                       headers=people["dave"]).get_json()
    assert [(d["decision"], d["holder"], d["comment"]) for d in shown["decisions"]] == [
        ("approve", "carol", "checked the diff")]
    assert actions(four_eyes) == [
        ("publication.request", f"publication request {request_id}"),
        ("publication.approve", f"publication request {request_id}"),
        ("publication", "version 1")]
    # Decided requests stay decided.
    again = client.post(f"{ADMIN}/publication-requests/{request_id}/approvals",
                        headers=people["dave"], json={})
    assert again.status_code == 409


def test_two_approvals_by_two_holders(four_eyes: Flask, client: FlaskClient,
                                      people: dict[str, Headers]) -> None:
    four_eyes.config["PUBLICATION_APPROVALS"] = 2
    load_gsp(client, people["alice"], {"_A": "Eastern"}, mode="replace")
    request_id = client.post(f"{ADMIN}/publications", headers=people["bob"],
                             json={}).get_json()["request"]
    first = client.post(f"{ADMIN}/publication-requests/{request_id}/approvals",
                        headers=people["carol"])
    assert (first.status_code, first.get_json()["state"], first.get_json()["manifest"]) == (
        201, "awaiting-approval", None)
    # The same holder with another token counts once.
    twice = client.post(f"{ADMIN}/publication-requests/{request_id}/approvals",
                        headers=holder(four_eyes, "carol", "publisher"))
    assert twice.status_code == 409
    assert "already approved" in twice.get_json()["detail"]
    assert latest(client) is None
    last = client.post(f"{ADMIN}/publication-requests/{request_id}/approvals",
                       headers=people["dave"])
    assert last.get_json()["state"] == "published"
    assert latest(client) == 1


def test_a_rejection_closes_the_request(four_eyes: Flask, client: FlaskClient,
                                        people: dict[str, Headers]) -> None:
    load_gsp(client, people["alice"], {"_A": "Eastern"}, mode="replace")
    request_id = client.post(f"{ADMIN}/publications", headers=people["bob"],
                             json={}).get_json()["request"]
    r = client.post(f"{ADMIN}/publication-requests/{request_id}/rejections",
                    headers=people["carol"], json={"comment": "wrong file"})
    assert r.status_code == 201
    assert (r.get_json()["state"], r.get_json()["reason"]) == (
        "rejected", "rejected by carol: wrong file")
    late = client.post(f"{ADMIN}/publication-requests/{request_id}/approvals",
                       headers=people["dave"])
    assert late.status_code == 409
    assert "rejected by carol" in late.get_json()["detail"]
    assert latest(client) is None
    assert ("publication.reject", f"publication request {request_id}") in actions(four_eyes)
    # The draft is still there: a new request may be made.
    assert client.post(f"{ADMIN}/publications", headers=people["bob"],
                       json={}).status_code == 202


def test_a_load_after_the_request_voids_it(four_eyes: Flask, client: FlaskClient,
                                           people: dict[str, Headers]) -> None:
    load_gsp(client, people["alice"], {"_A": "Eastern"}, mode="replace")
    request_id = client.post(f"{ADMIN}/publications", headers=people["bob"],
                             json={}).get_json()["request"]
    # A second request for the same draft waits for the first.
    assert client.post(f"{ADMIN}/publications", headers=people["dave"],
                       json={}).status_code == 409
    second = load_gsp(client, people["alice"], {"_B": "East Midlands"})
    shown = client.get(f"{ADMIN}/publication-requests/{request_id}",
                       headers=people["carol"]).get_json()
    assert shown["state"] == "void"
    assert shown["reason"] == f"load {second['id']} changed the set after the request"
    r = client.post(f"{ADMIN}/publication-requests/{request_id}/approvals",
                    headers=people["carol"])
    assert r.status_code == 409
    assert "void" in r.get_json()["detail"]
    assert latest(client) is None


def test_an_empty_draft_or_a_bad_number_is_refused_before_any_request(
        four_eyes: Flask, client: FlaskClient, people: dict[str, Headers]) -> None:
    r = client.post(f"{ADMIN}/publications", headers=people["bob"], json={"version": 0})
    assert r.status_code == 422
    load_gsp(client, people["alice"], {"_A": "Eastern"}, mode="replace")
    request_id = client.post(f"{ADMIN}/publications", headers=people["bob"],
                             json={}).get_json()["request"]
    client.post(f"{ADMIN}/publication-requests/{request_id}/approvals",
                headers=people["carol"])
    empty = client.post(f"{ADMIN}/publications", headers=people["bob"], json={})
    assert empty.status_code == 409
    assert "empty" in empty.get_json()["detail"]
    missing = client.post(f"{ADMIN}/publication-requests/999/approvals",
                          headers=people["carol"])
    assert missing.status_code == 404


def test_the_scheduler_publishes_a_frozen_release_only_once_approved(
        four_eyes: Flask, client: FlaskClient, people: dict[str, Headers]) -> None:
    clock = Clock(four_eyes, T0)
    load_gsp(client, people["alice"], {"_A": "Eastern"}, mode="replace")
    request_id = client.post(f"{ADMIN}/publications", headers=people["bob"],
                             json={"version": 1}).get_json()["request"]
    client.post(f"{ADMIN}/publication-requests/{request_id}/approvals",
                headers=people["carol"])
    deadline, publish_at = T0 + timedelta(days=1), T0 + timedelta(days=2)
    release_id = plan(four_eyes, deadline, publish_at, version=2)
    load_gsp(client, people["alice"], {"_A": "Eastern X"})

    clock.now = publish_at + timedelta(seconds=1)
    outcome = clock.runner.publish_job(release_id, publish_at)
    assert outcome.outcome == "awaiting-approval"
    assert latest(client) == 1
    with four_eyes.app_context():
        assert session().get(Release, release_id).state == "awaiting-approval"
    schedule = client.get(f"{ADMIN}/schedule", headers=people["bob"]).get_json()
    [waiting] = schedule["awaiting_approval"]
    assert waiting["release"] == release_id
    assert schedule["past_runs"][0]["outcome"] == "awaiting-approval"
    assert [r for r in schedule["next_runs"] if r["release"] == release_id] == []
    feed = client.get(f"{API}/feed.atom").get_data(as_text=True)
    assert f"Planned release {release_id}: version 2, awaits approval" in feed
    # The scheduler does not publish it on a later run either.
    assert clock.runner.publish_job(release_id, publish_at).outcome == "nothing-to-do"

    # alice loaded into it: she may not approve; bob may (the scheduler asked).
    refused = client.post(f"{ADMIN}/publication-requests/{waiting['request']}/approvals",
                          headers=holder(four_eyes, "alice", "publisher"))
    assert refused.status_code == 403
    ok = client.post(f"{ADMIN}/publication-requests/{waiting['request']}/approvals",
                     headers=people["bob"])
    assert ok.status_code == 201, ok.get_json()
    assert ok.get_json()["manifest"]["version"] == 2
    with four_eyes.app_context():
        row = session().get(Release, release_id)
        assert (row.state, row.published_version) == ("published", 2)
    gsp = client.get(f"{API}/versions/2/snapshot?entity=gsp_group").get_json()
    assert gsp["entities"]["gsp_group"] == [{"gsp_group_id": "_A",
                                             "gsp_group_name": "Eastern X"}]


def test_cancelling_an_awaiting_release_voids_its_request(
        four_eyes: Flask, client: FlaskClient, people: dict[str, Headers]) -> None:
    clock = Clock(four_eyes, T0)
    deadline, publish_at = T0 + timedelta(days=1), T0 + timedelta(days=2)
    release_id = plan(four_eyes, deadline, publish_at)
    load_gsp(client, people["alice"], {"_A": "Eastern"}, mode="replace")
    clock.now = publish_at + timedelta(seconds=1)
    assert clock.runner.publish_job(release_id, publish_at).outcome == "awaiting-approval"
    request_id = client.get(f"{ADMIN}/schedule", headers=people["bob"]).get_json()[
        "awaiting_approval"][0]["request"]
    r = client.delete(f"{ADMIN}/releases/{release_id}", headers=people["bob"])
    assert r.status_code == 200, r.get_json()
    shown = client.get(f"{ADMIN}/publication-requests/{request_id}",
                       headers=people["bob"]).get_json()
    assert (shown["state"], shown["reason"]) == (
        "void", f"release {release_id} was cancelled")
    # Its frozen set went back to the draft.
    draft = client.get(f"{ADMIN}/draft", headers=people["bob"]).get_json()
    assert draft["entities"] == {"gsp_group": {"inserts": 1, "updates": 0, "deletes": 0}}


def test_the_cli_asks_and_another_holder_approves(four_eyes: Flask,
                                                  client: FlaskClient,
                                                  people: dict[str, Headers]) -> None:
    load_gsp(client, people["alice"], {"_A": "Eastern"}, mode="replace")
    runner = four_eyes.test_cli_runner()
    asked = runner.invoke(args=["publish", "--by", "erin"])
    assert asked.exit_code == 0, asked.output
    request_id = asked.output.strip().splitlines()[-1]
    own = runner.invoke(args=["publication", "approve", request_id, "--by", "erin"])
    assert own.exit_code == 1
    assert "erin asked for publication request" in own.output
    assert latest(client) is None
    listing = runner.invoke(args=["publication", "list"]).output
    assert "awaiting-approval" in listing and "erin" in listing
    done = runner.invoke(args=["publication", "approve", request_id, "--by", "frank"])
    assert done.exit_code == 0, done.output
    assert done.output.strip().splitlines()[-1] == "1"
    assert latest(client) == 1


def test_a_renamed_holder_is_who_the_token_names_now(
        four_eyes: Flask, client: FlaskClient, people: dict[str, Headers]) -> None:
    """Holders are read from the tokens when deciding: a load by a token that was
    unnamed then and named since counts as that holder's."""
    unnamed = holder(four_eyes, None, "loader")
    load = load_gsp(client, unnamed, {"_A": "Eastern"}, mode="replace")
    request_id = client.post(f"{ADMIN}/publications", headers=people["bob"],
                             json={}).get_json()["request"]
    token_id = int(load["actor"].removeprefix("token:"))
    with four_eyes.app_context():
        session().execute(update(ApiToken).where(ApiToken.id == token_id)
                          .values(name="carol"))
        session().commit()
    r = client.post(f"{ADMIN}/publication-requests/{request_id}/approvals",
                    headers=people["carol"])
    assert r.status_code == 403
    assert "carol loaded changes" in r.get_json()["detail"]


@pytest.mark.parametrize("value", ["-1", "11", "two"])
def test_a_bad_approvals_setting_is_refused_naming_it(
        monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ISD_PUBLICATION_APPROVALS", value)
    with pytest.raises(SettingError, match="ISD_PUBLICATION_APPROVALS"):
        settings()


def test_a_catalogue_change_voids_every_waiting_request(
        four_eyes: Flask, client: FlaskClient, people: dict[str, Headers],
        admin_headers: Headers) -> None:
    load_gsp(client, people["alice"], {"_A": "Eastern"}, mode="replace")
    request_id = client.post(f"{ADMIN}/publications", headers=people["bob"],
                             json={}).get_json()["request"]
    r = client.post(f"{ADMIN}/catalogue/entities/gsp_group/fields", headers=admin_headers,
                    json={"id": "gsp_group_region", "name": "GSP Group Region",
                          "type": "string", "max_length": 20})
    assert r.status_code == 201, r.get_json()
    shown = client.get(f"{ADMIN}/publication-requests/{request_id}",
                       headers=people["bob"]).get_json()
    assert (shown["state"], shown["reason"]) == (
        "void", "field gsp_group.gsp_group_region was added to the catalogue")
