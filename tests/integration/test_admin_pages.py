"""The admin console: sign-in for a server-side session, CSRF on every form, the same roles
as the API on every page (a walk over the URL map), and the whole story of a change: a
refused load, the fixed load, the field-level draft, a request and another's approval."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import update
from werkzeug.test import TestResponse

from isd_service.adapters.orm import AdminSession, ApiToken
from isd_service.entrypoints.flask_db import session, uow
from isd_service.entrypoints.web.admin import OPEN_PAGES, PAGE_ROLES
from tests.conftest import create_token

EVERYONE = {"loader", "publisher", "admin"}
PUBLISHERS = {"publisher", "admin"}
ADMINS = {"admin"}
# Every admin page and action, and who may use it: the same roles as the API's routes.
ALLOWED: dict[tuple[str, str], set[str]] = {
    ("GET", "/admin/"): EVERYONE,
    ("GET", "/admin/upload"): EVERYONE,
    ("POST", "/admin/upload"): EVERYONE,
    ("GET", "/admin/draft"): EVERYONE,
    ("POST", "/admin/draft/discard"): PUBLISHERS,
    ("GET", "/admin/publications"): PUBLISHERS,
    ("POST", "/admin/publications"): PUBLISHERS,
    ("POST", "/admin/publication-requests/<int:request_id>/approve"): PUBLISHERS,
    ("POST", "/admin/publication-requests/<int:request_id>/reject"): PUBLISHERS,
    ("GET", "/admin/releases"): PUBLISHERS,
    ("POST", "/admin/releases"): PUBLISHERS,
    ("POST", "/admin/releases/<int:release_id>/change"): PUBLISHERS,
    ("POST", "/admin/releases/<int:release_id>/cancel"): PUBLISHERS,
    ("GET", "/admin/catalogue"): ADMINS,
    ("POST", "/admin/catalogue/entities"): ADMINS,
    ("POST", "/admin/catalogue/fields"): ADMINS,
    ("GET", "/admin/tokens"): ADMINS,
    ("POST", "/admin/tokens"): ADMINS,
    ("POST", "/admin/tokens/<int:token_id>/revoke"): ADMINS,
    ("GET", "/admin/webhooks"): ADMINS,
    ("POST", "/admin/webhooks"): ADMINS,
    ("POST", "/admin/webhooks/<int:subscription_id>/delete"): ADMINS,
}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def token(app: Flask, *roles: str, name: str | None = None, org: str = "ISDA") -> str:
    with app.app_context():
        return create_token(uow(), organisation=org, roles=list(roles), name=name)


def csrf_of(client: FlaskClient, url: str = "/admin/sign-in") -> str:
    found = CSRF.search(client.get(url).get_data(as_text=True))
    assert found, url
    return found.group(1)


def sign_in(client: FlaskClient, text: str) -> TestResponse:
    return client.post("/admin/sign-in", data={"token": text, "csrf_token": csrf_of(client)})


def signed_in(app: Flask, *roles: str, name: str | None = None) -> FlaskClient:
    client = app.test_client()
    r = sign_in(client, token(app, *roles, name=name))
    assert r.status_code == 303, r.get_data(as_text=True)
    return client


def post(client: FlaskClient, url: str, data: dict[str, Any] | None = None,
         form_page: str = "/admin/") -> TestResponse:
    return client.post(url, data={**(data or {}), "csrf_token": csrf_of(client, form_page)},
                       content_type="multipart/form-data")


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def test_a_token_is_exchanged_for_a_session_cookie_that_is_strict(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/admin/").status_code == 303
    r = sign_in(client, token(app, "loader"))
    assert (r.status_code, r.headers["Location"]) == (303, "/admin/")
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert "Expires=" in cookie  # a fixed lifetime
    page = client.get("/admin/")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    # The cookie holds the session's secret, never the token.
    with app.app_context():
        [row] = session().query(AdminSession).all()
        assert row.expires_at - row.created_at == timedelta(minutes=480)

    over_tls = app.test_client()
    r = over_tls.post("/admin/sign-in", base_url="https://localhost",
                      data={"token": token(app, "loader"),
                            "csrf_token": CSRF.search(text(over_tls.get(
                                "/admin/sign-in", base_url="https://localhost"))).group(1)})
    assert r.status_code == 303
    assert "Secure" in r.headers["Set-Cookie"]


def test_a_bad_token_or_a_form_without_its_csrf_token_is_refused(app: Flask) -> None:
    client = app.test_client()
    r = sign_in(client, "isd_not-a-token")
    assert r.status_code == 401
    assert "not a token of this service" in text(r)
    assert client.get("/admin/").status_code == 303
    r = client.post("/admin/sign-in", data={"token": token(app, "admin")})
    assert r.status_code == 400
    assert "could not be checked" in text(r)
    client = signed_in(app, "publisher")
    r = client.post("/admin/draft/discard", data={})
    assert r.status_code == 400  # no CSRF token: nothing discarded


def test_signing_out_revoking_or_the_lifetime_ends_a_session(app: Flask) -> None:
    client = signed_in(app, "loader")
    r = post(client, "/admin/sign-out")
    assert r.status_code == 303
    assert client.get("/admin/").headers["Location"].startswith("/admin/sign-in")

    client = signed_in(app, "loader")
    with app.app_context():
        session().execute(update(AdminSession).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        session().commit()
    assert client.get("/admin/").status_code == 303

    client = signed_in(app, "loader")
    with app.app_context():
        session().execute(update(ApiToken).values(revoked_at=datetime.now(UTC)))
        session().commit()
    r = client.get("/admin/", follow_redirects=True)
    assert "this token has been revoked" in text(r)


def concrete(rule: str) -> str:
    """A rule's URL, with ids that name nothing (so no client's own token is revoked)."""
    return re.sub(r"<int:[^>]*>", "999999", rule)


def test_every_admin_page_checks_the_roles_as_the_api_does(app: Flask) -> None:
    rules = {(method, rule.rule) for rule in app.url_map.iter_rules()
             if rule.rule.startswith("/admin") and rule.endpoint not in OPEN_PAGES
             for method in rule.methods or () if method in ("GET", "POST")}
    assert rules == set(ALLOWED)
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()
                 if rule.rule.startswith("/admin") and rule.endpoint not in OPEN_PAGES}
    assert endpoints <= set(PAGE_ROLES)
    anonymous = app.test_client()
    clients = {role: signed_in(app, role) for role in ("loader", "publisher", "admin")}
    for (method, rule), allowed in sorted(ALLOWED.items()):
        url = concrete(rule)
        r = (anonymous.get(url) if method == "GET"
             else anonymous.post(url, data={"csrf_token": csrf_of(anonymous)}))
        assert r.status_code == 303, url
        assert r.headers["Location"].startswith("/admin/sign-in"), url
        for role, client in clients.items():
            r = client.get(url) if method == "GET" else post(client, url)
            if role in allowed:
                assert r.status_code not in (403, 500), (method, url, role)
                assert not r.headers.get("Location", "").startswith("/admin/sign-in"), url
            else:
                assert r.status_code == 403, (method, url, role, r.status_code)
                assert "needs the role" in text(r)


BROKEN = ("gsp_group_id,gsp_group_name\n_A,Eastern\n_B,\n_TOO_LONG_ID,x\n")
FIXED = "gsp_group_id,gsp_group_name\n_A,East Anglia\n_B,East Midlands\n"


def upload(client: FlaskClient, content: str, mode: str = "upsert") -> TestResponse:
    return client.post("/admin/upload", content_type="multipart/form-data", data={
        "csrf_token": csrf_of(client, "/admin/upload"), "format": "csv", "mode": mode,
        "files": (io.BytesIO(content.encode()), "gsp_group.csv")}, follow_redirects=True)


def test_the_story_refused_load_fixed_load_diff_request_and_approval(
        app: Flask, client: FlaskClient) -> None:
    app.config["PUBLICATION_APPROVALS"] = 1
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    seeded = client.get("/api/v1/versions/latest").get_json()["version"]
    alice = signed_in(app, "publisher", name="alice")

    refused = upload(alice, BROKEN)
    page = text(refused)
    assert "Refused: nothing was loaded" in page
    rows = re.findall(r"<tr><td>gsp_group</td><td>gsp_group\.csv</td><td class=\"num\">(\d+)"
                      r"</td><td>(\w+)</td>", page)
    assert [int(line) for line, _field in rows] == sorted(int(line) for line, _ in rows)
    assert {(int(line), field) for line, field in rows} >= {(3, "gsp_group_name"),
                                                           (4, "gsp_group_id")}
    by_line = text(alice.get("/admin/upload?refused=1&sort=line"))
    assert "Refused: nothing was loaded" in by_line

    accepted = upload(alice, FIXED)
    page = text(accepted)
    assert "accepted" in page
    assert "<del>Eastern</del>" in page and "<ins>East Anglia</ins>" in page
    # The per-entity counts: GSP Group has 0 inserts, 1 update, 0 deletes.
    counts = re.search(r'GSP Group</th><td class="num">(\w+)</td><td class="num">(\w+)</td>'
                       r'<td class="num">(\w+)</td>', page)
    assert counts is not None and counts.groups() == ("0", "1", "0"), page

    r = post(alice, "/admin/publications", form_page="/admin/publications")
    assert r.status_code == 303
    page = text(alice.get("/admin/publications"))
    request_id = int(re.search(r'id="approve-(\d+)"', page).group(1))
    own = post(alice, f"/admin/publication-requests/{request_id}/approve",
               form_page="/admin/publications")
    assert own.status_code == 403
    assert "alice asked for publication request" in text(own)

    bob = signed_in(app, "publisher", name="bob")
    assert f"#request-{request_id}" in text(bob.get("/admin/"))  # awaiting, on the dashboard
    r = post(bob, f"/admin/publication-requests/{request_id}/approve",
             {"comment": "looks right"}, form_page="/admin/publications")
    assert r.status_code == 303
    done = text(bob.get(r.headers["Location"]))
    published = re.search(r"approved: version (\d+) is published", done)
    assert published, done
    assert int(published.group(1)) == seeded + 1
    home = text(client.get("/"))
    assert f'Latest version: <a href="/versions/{seeded + 1}">{seeded + 1}</a>' in home


def test_hostile_values_are_text_on_the_admin_pages(app: Flask) -> None:
    hostile = '"><img src=x onerror=alert(1)><script>alert(1)</script>'
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    admin = signed_in(app, "admin", name=hostile)
    csv = ('gsp_group_id,gsp_group_name\n_A,"' + hostile.replace('"', '""') + '"\n'
           '"' + hostile.replace('"', '""') + '",x\n')
    refused = text(upload(admin, csv))
    assert "Refused" in refused
    upload(admin, 'gsp_group_id,gsp_group_name\n_A,"' + hostile.replace('"', '""') + '"\n')
    post(admin, "/admin/tokens", {"organisation": "EXDA", "roles": "loader", "name": hostile},
         form_page="/admin/tokens")
    for url in ("/admin/", "/admin/upload?refused=1", "/admin/draft", "/admin/tokens",
                "/admin/publications", "/admin/catalogue"):
        page = text(admin.get(url))
        assert "<script>alert" not in page and "<img src=x" not in page, url
    assert str(escape(hostile)) in text(admin.get("/admin/draft"))
    assert str(escape(hostile)) in text(admin.get("/admin/tokens"))


@pytest.mark.parametrize("next_page", ["https://elsewhere.example/", "//elsewhere.example/"])
def test_sign_in_never_sends_the_browser_elsewhere(app: Flask, next_page: str) -> None:
    client = app.test_client()
    r = client.post("/admin/sign-in", data={"token": token(app, "loader"), "next": next_page,
                                            "csrf_token": csrf_of(client)})
    assert (r.status_code, r.headers["Location"]) == (303, "/admin/")
