"""GET /api/v1/feed.atom: publications and planned releases, as Atom."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from flask import Flask
from flask.testing import FlaskClient

A = "{http://www.w3.org/2005/Atom}"


def entries(client: FlaskClient) -> tuple[ET.Element, list[ET.Element]]:
    response = client.get("/api/v1/feed.atom")
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    root = ET.fromstring(response.data)
    assert root.tag == f"{A}feed"
    return root, root.findall(f"{A}entry")


def test_an_empty_service_has_an_empty_valid_feed(client: FlaskClient) -> None:
    root, items = entries(client)
    assert items == []
    assert root.findtext(f"{A}id") == "urn:isd-service:feed"
    assert root.find(f"{A}link[@rel='self']").get("href") == (  # type: ignore[union-attr]
        "http://localhost/api/v1/feed.atom")


def test_each_publication_and_planned_release_is_an_entry(
        app: Flask, client: FlaskClient, publisher_headers: dict[str, str]) -> None:
    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed"]).exit_code == 0
    assert runner.invoke(args=["publish", "--force", "--go-live", "2030-02-03"]).exit_code == 0
    planned = client.post("/api/v1/admin/releases", headers=publisher_headers, json={
        "change_deadline": "2099-01-05T12:00:00Z", "publish_at": "2099-01-12T12:00:00Z",
        "go_live_date": "2099-01-20", "version": 3})
    assert planned.status_code == 201, planned.get_json()
    root, items = entries(client)
    by_id = {e.findtext(f"{A}id"): e for e in items}
    assert set(by_id) == {"urn:isd-service:version:1", "urn:isd-service:version:2",
                          f"urn:isd-service:release:{planned.get_json()['id']}"}
    second = by_id["urn:isd-service:version:2"]
    assert second.findtext(f"{A}title") == "Version 2 published (go-live 2030-02-03)"
    assert second.find(f"{A}link").get("href") == "http://localhost/versions/2"  # type: ignore[union-attr]
    manifest = client.get("/api/v1/versions/2").get_json()
    assert manifest["sha256"] in second.findtext(f"{A}summary", "")
    assert second.find(f"{A}category").get("term") == "publication"  # type: ignore[union-attr]
    plan = by_id[f"urn:isd-service:release:{planned.get_json()['id']}"]
    assert plan.find(f"{A}category").get("term") == "planned-release"  # type: ignore[union-attr]
    assert "version 3" in plan.findtext(f"{A}title", "")
    assert "go-live date 2099-01-20" in plan.findtext(f"{A}summary", "")
    # Newest first; the feed's updated is its newest entry's.
    stamps = [e.findtext(f"{A}updated") for e in items]
    assert stamps == sorted(stamps, reverse=True)
    assert root.findtext(f"{A}updated") == stamps[0]
    # A cancelled release leaves the feed.
    cancelled = client.delete(f"/api/v1/admin/releases/{planned.get_json()['id']}",
                              headers=publisher_headers)
    assert cancelled.status_code in (200, 204)
    _root, items = entries(client)
    assert [e.findtext(f"{A}id") for e in items] == ["urn:isd-service:version:2",
                                                     "urn:isd-service:version:1"]
