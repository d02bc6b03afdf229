"""The web pages, through the Flask test client: content, links, filters, paging, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from isd_service.entrypoints import web


def three_versions(app: Flask, tmp_path: Path) -> None:
    """1: the seed data; 2: GSP group _A renamed; 3: GSP group _B deleted."""
    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed"]).exit_code == 0
    renamed = tmp_path / "gsp_group.csv"
    renamed.write_text("gsp_group_id,gsp_group_name\n_A,East Anglia\n")
    assert runner.invoke(args=["load", "--format", "csv", "--mode", "upsert",
                               str(renamed)]).exit_code == 0
    assert runner.invoke(args=["publish", "--go-live", "2030-01-01"]).exit_code == 0
    gone = tmp_path / "delete" / "gsp_group.csv"
    gone.parent.mkdir()
    gone.write_text("gsp_group_id\n_B\n")
    assert runner.invoke(args=["load", "--format", "csv", "--mode", "delete",
                               str(gone)]).exit_code == 0
    assert runner.invoke(args=["publish"]).exit_code == 0


def page(client: FlaskClient, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    assert response.mimetype == "text/html"
    csp = response.headers["Content-Security-Policy"]
    # Pages load only their own style sheet, and no other site may frame them.
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, csp
    return response.get_data(as_text=True)


def links(html: str) -> list[str]:
    return [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]+)"', html)]


def test_home_before_and_after_publications(app: Flask, client: FlaskClient, tmp_path: Path,
                                            publisher_headers: dict[str, str]) -> None:
    assert "No version has been published yet." in page(client, "/")
    three_versions(app, tmp_path)
    planned = client.post("/api/v1/admin/releases", headers=publisher_headers, json={
        "change_deadline": "2099-01-05T12:00:00Z", "publish_at": "2099-01-12T12:00:00Z",
        "go_live_date": "2099-01-20", "version": 4})
    assert planned.status_code == 201
    html = page(client, "/")
    assert 'Latest version: <a href="/versions/3">3</a>' in html
    assert "isd-sync pull --server http://localhost --dir isd-data" in html
    assert "Version 4\n     publishes 2099-01-12 12:00 UTC" in html
    assert "go-live date 2099-01-20" in html
    assert '<html lang="en-GB">' in html and 'name="viewport"' in html
    css = client.get("/static/style.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    css.close()
    assert page(client, "/releases").count("2099-01-12 12:00 UTC") == 1


def test_versions_and_a_version_with_its_downloads(app: Flask, client: FlaskClient,
                                                  tmp_path: Path) -> None:
    three_versions(app, tmp_path)
    html = page(client, "/versions")
    for n in (1, 2, 3):
        assert f'href="/versions/{n}"' in html
    assert 'href="/diff?from=2&amp;to=3"' in html
    html = page(client, "/versions/2")
    manifest = client.get("/api/v1/versions/2").get_json()
    assert manifest["sha256"] in html
    for eid, info in manifest["entities"].items():
        assert info["sha256"] in html
        assert f'href="/versions/2/entities/{eid}"' in html
    # Every file of the manifest is offered with its size and hash.
    for f in manifest["downloads"]:
        assert f["sha256"] in html and f'{f["size"]:,}' in html
        assert f'href="{f["url"]}"'.replace("&", "&amp;") in html
    # Every download the page offers answers.
    downloads = [h for h in links(html) if h.startswith("/api/")]
    assert len(downloads) >= 3 * len(manifest["entities"]) + 4
    for href in downloads:
        response = client.get(href)
        assert response.status_code == 200, href
        response.close()


def test_the_entity_browser_filters_and_pages(app: Flask, client: FlaskClient, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    three_versions(app, tmp_path)
    monkeypatch.setattr(web, "PAGE_SIZE", 4)
    expected = client.get("/api/v1/entities/gsp_group/records?version=3").get_json()["records"]
    seen: list[str] = []
    url: str | None = "/versions/3/entities/gsp_group"
    while url:
        html = page(client, url)
        ids = re.findall(r"<tr><td>(_[A-Z])</td>", html)
        assert 0 < len(ids) <= 4
        seen += ids
        nxt = re.search(r'<a href="([^"]+)" rel="next">', html)
        url = nxt.group(1).replace("&amp;", "&") if nxt else None
    assert seen == [r["gsp_group_id"] for r in expected]
    assert "_B" not in seen
    one = page(client, "/versions/3/entities/gsp_group?gsp_group_name=East+Anglia")
    assert re.findall(r"<tr><td>(_[A-Z])</td>", one) == ["_A"]
    assert "No record matches." in page(client, "/versions/1/entities/gsp_group?gsp_group_id=_Z")
    bad = page(client, "/versions/3/entities/clock_interval?start_day=x", 400)
    assert 'role="alert"' in bad and "not an integer" in bad
    assert "not one this site gave out" in page(
        client, "/versions/3/entities/gsp_group?after=%%%", 400)


def test_a_record_history_says_which_version_brought_each_value(
        app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    three_versions(app, tmp_path)
    html = page(client, "/entities/gsp_group/history?gsp_group_id=_A")
    now = html.split("<h2>Every change</h2>")[0]
    assert re.search(r"Gsp Group ID</th><td>_A</td>\s*<td><a href=\"/versions/1\">1</a>", now)
    assert re.search(r"GSP Group Name</th><td>East Anglia</td>\s*"
                     r"<td><a href=\"/versions/2\">2</a>", now)
    changes = html.split("<h2>Every change</h2>")[1]
    assert 'title="brought by version 2">East Anglia</mark>' in changes
    assert re.search(r'/versions/1">1</a>–1</th>', changes)
    gone = page(client, "/entities/gsp_group/history?gsp_group_id=_B")
    assert "it was deleted in version 3" in gone
    assert "not present (deleted)" in gone
    assert "never had the record _Z" in page(
        client, "/entities/gsp_group/history?gsp_group_id=_Z", 404)
    assert "give the key field" in page(client, "/entities/gsp_group/history", 400)
    assert "no entity" in page(client, "/entities/nothing/history?x=1", 404)


def test_the_diff_page_lists_what_changed(app: Flask, client: FlaskClient,
                                          tmp_path: Path) -> None:
    three_versions(app, tmp_path)
    html = page(client, "/diff?from=1&to=3")
    assert "Changes from version 1 to 3" in html
    assert re.search(r"GSP Group</th><td class=\"num\">0</td><td class=\"num\">1</td>"
                     r"<td class=\"num\">1</td>", html)
    assert 'href="/entities/gsp_group/history?gsp_group_id=_A"' in html
    assert "2 record changes" in html
    latest = page(client, "/diff")  # the latest version against its previous one
    assert "Changes from version 2 to 3" in latest and "1 record changes" in latest
    assert "must not be after" in page(client, "/diff?from=3&to=1", 400)
    assert "version 9 has not been published" in page(client, "/diff?from=9", 404)
    assert "not a version number" in page(client, "/diff?from=x", 400)


def test_missing_pages_are_html_errors(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    assert "no version has been published yet" in page(client, "/diff", 404)
    three_versions(app, tmp_path)
    html = page(client, "/versions/99", 404)
    assert 'role="alert">version 99 has not been published' in html
    assert "has no entity &#39;nope&#39;" in page(client, "/versions/1/entities/nope", 404)


def test_the_api_page_is_rendered_from_the_openapi_document(app: Flask,
                                                            client: FlaskClient) -> None:
    if "openapi" not in app.view_functions:  # the document is optional for this page
        assert "does not publish an OpenAPI document" in page(client, "/api-docs", 404)
        return
    document = client.get("/api/v1/openapi.json").get_json()
    html = page(client, "/api-docs")
    count = 0
    for path, methods in document["paths"].items():
        for method in methods:
            assert f"<code>{method.upper()} {path}</code>" in html, (method, path)
            count += 1
    assert html.count('class="op-doc"') == count > 10
    assert "<script" not in html
    # Every asset the page uses is the service's own.
    assert all(not h.startswith(("http:", "https:", "//")) for h in links(html))
