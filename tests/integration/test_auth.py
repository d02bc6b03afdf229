"""Who may call the admin API: 401 without a valid token, 403 for a role that may not, and a
refused request changes nothing."""

from __future__ import annotations

import hashlib
import io
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from werkzeug.test import TestResponse

from isd_service.adapters.orm import ApiToken, Base
from isd_service.entrypoints.flask_db import database, session, uow
from tests.conftest import Rows, create_token, restore, saved_rows, token_for

API = "/api/v1"
ADMIN = f"{API}/admin"

GSP_V1 = "gsp_group_id,gsp_group_name\n_A,Eastern\n_B,East Midlands\n_C,London\n"
GSP_STAGED = "gsp_group_id,gsp_group_name\n_D,Merseyside and North Wales\n"

NEW_ENTITY = {
    "id": "bsc_party",
    "name": "BSC Party",
    "source": "BSC_Party",
    "key": ["bsc_party_id"],
    "fields": [
        {"id": "bsc_party_id", "name": "BSC Party ID", "type": "string", "required": True,
         "max_length": 8},
        {"id": "bsc_party_name", "name": "BSC Party Name", "type": "string",
         "required": True, "max_length": 60},
    ],
}
NEW_FIELD = {"id": "gsp_group_region", "name": "GSP Group Region", "type": "string",
             "max_length": 20}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_csv(client: FlaskClient, headers: dict[str, str], name: str, text: str,
             mode: str = "upsert") -> TestResponse:
    return client.post(f"{ADMIN}/loads", headers=headers, content_type="multipart/form-data",
                       data={"format": "csv", "mode": mode,
                             "file": (io.BytesIO(text.encode()), name)})


# One request per admin endpoint, each a valid request that changes something when allowed.
REQUESTS: dict[str, Callable[[FlaskClient, dict[str, str]], TestResponse]] = {
    "POST /admin/loads": lambda c, h: post_csv(
        c, h, "gsp_group.csv", "gsp_group_id,gsp_group_name\n_E,Midlands\n"),
    "GET /admin/loads": lambda c, h: c.get(f"{ADMIN}/loads", headers=h),
    "GET /admin/draft": lambda c, h: c.get(f"{ADMIN}/draft", headers=h),
    "DELETE /admin/draft": lambda c, h: c.delete(f"{ADMIN}/draft", headers=h),
    "POST /admin/publications": lambda c, h: c.post(
        f"{ADMIN}/publications", headers=h, json={"go_live_date": "2026-02-26"}),
    "POST /admin/catalogue/entities": lambda c, h: c.post(
        f"{ADMIN}/catalogue/entities", headers=h, json=NEW_ENTITY),
    "POST /admin/catalogue/entities/{id}/fields": lambda c, h: c.post(
        f"{ADMIN}/catalogue/entities/gsp_group/fields", headers=h, json=NEW_FIELD),
}

ALLOWED = {
    "POST /admin/loads": {"loader", "publisher", "admin"},
    "GET /admin/loads": {"loader", "publisher", "admin"},
    "GET /admin/draft": {"loader", "publisher", "admin"},
    "DELETE /admin/draft": {"publisher", "admin"},
    "POST /admin/publications": {"publisher", "admin"},
    "POST /admin/catalogue/entities": {"admin"},
    "POST /admin/catalogue/entities/{id}/fields": {"admin"},
}
SUCCESS_STATUS = {
    "POST /admin/loads": 201,
    "GET /admin/loads": 200,
    "GET /admin/draft": 200,
    "DELETE /admin/draft": 200,
    "POST /admin/publications": 201,
    "POST /admin/catalogue/entities": 201,
    "POST /admin/catalogue/entities/{id}/fields": 201,
}
ENDPOINTS = list(REQUESTS)
ROLES = ("loader", "publisher", "admin")


@pytest.fixture(scope="module")
def populated_rows() -> list[Rows]:
    """The rows of the first populated store (tokens aside), for the next tests to write back."""
    return []


@pytest.fixture
def populated(app: Flask, client: FlaskClient, admin_headers: dict[str, str],
              populated_rows: list[Rows]) -> None:
    """Version 1 with three GSP groups, and a draft that stages a fourth one."""
    if populated_rows:  # the same loads and publication as below, without doing them again
        restore(app, populated_rows[0], keep=("api_token",))
        return
    assert post_csv(client, admin_headers, "gsp_group.csv", GSP_V1, "replace").status_code == 201
    assert client.post(f"{ADMIN}/publications", headers=admin_headers, json={}).status_code == 201
    assert post_csv(client, admin_headers, "gsp_group.csv", GSP_STAGED).status_code == 201
    populated_rows.append(saved_rows(app, keep=("api_token",)))


def state(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the admin API can change (tokens aside), table by table."""
    names = ("load", "staged_change", "version", "record", "catalogue_entity",
             "catalogue_field")
    out = {}
    with app.app_context(), database().engine.connect() as conn:
        for name in names:
            table = Base.metadata.tables[name]
            rows = conn.execute(select(table).order_by(*table.primary_key.columns))
            out[name] = [tuple(r) for r in rows]
    return out


def assert_problem(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == status
    assert body["title"] == {401: "Unauthorized", 403: "Forbidden"}[status]
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["detail"], str) and body["detail"]
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return body


def expired_token(app: Flask, role: str = "admin") -> str:
    with app.app_context():
        return create_token(uow(), organisation="ISDA", roles=[role],
                            expires_at=datetime.now(UTC) - timedelta(minutes=1))


def revoked_token(app: Flask, role: str = "admin") -> str:
    token = token_for(app, role)
    digest = hashlib.sha256(token.encode()).hexdigest()
    with app.app_context():
        db = session()
        db.execute(update(ApiToken).where(ApiToken.token_sha256 == digest)
                   .values(revoked_at=datetime.now(UTC) - timedelta(seconds=1)))
        db.commit()
    return token


def bad_headers(app: Flask, kind: str) -> dict[str, str]:
    """An Authorization header (or none) that must not let anybody in."""
    if kind == "none":
        return {}
    if kind == "empty":
        return {"Authorization": ""}
    if kind == "basic":
        return {"Authorization": "Basic aXNkYTpzZWNyZXQ="}
    if kind == "bearer-without-token":
        return {"Authorization": "Bearer "}
    if kind == "valid-token-without-scheme":
        return {"Authorization": token_for(app, "admin")}
    if kind == "valid-token-other-scheme":
        return {"Authorization": f"Token {token_for(app, 'admin')}"}
    if kind == "wrong":
        return bearer("isd_" + secrets.token_urlsafe(32))
    if kind == "tampered":
        token = token_for(app, "admin")
        return bearer(token[:-1] + ("A" if token[-1] != "A" else "B"))
    if kind == "expired":
        return bearer(expired_token(app))
    if kind == "revoked":
        return bearer(revoked_token(app))
    raise AssertionError(kind)


BAD_KINDS = ["none", "empty", "basic", "bearer-without-token", "valid-token-without-scheme",
             "valid-token-other-scheme", "wrong", "tampered", "expired", "revoked"]


@pytest.mark.usefixtures("populated")
@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_without_a_valid_token_every_admin_endpoint_answers_401_and_changes_nothing(
    app: Flask, client: FlaskClient, endpoint: str, kind: str
) -> None:
    headers = bad_headers(app, kind)
    before = state(app)
    assert_problem(REQUESTS[endpoint](client, headers), 401)
    assert state(app) == before


@pytest.mark.usefixtures("populated")
@pytest.mark.parametrize(("endpoint", "role"), [
    (e, r) for e in ENDPOINTS for r in ROLES if r not in ALLOWED[e]])
def test_a_role_that_may_not_gets_403_and_changes_nothing(
    app: Flask, client: FlaskClient, endpoint: str, role: str
) -> None:
    headers = bearer(token_for(app, role, org="EXDA"))
    before = state(app)
    body = assert_problem(REQUESTS[endpoint](client, headers), 403)
    assert "role" in body["detail"]
    assert state(app) == before


def check_effect(client: FlaskClient, admin: dict[str, str], endpoint: str,
                 response: TestResponse) -> None:
    """What a successful call did, as a reader of the API sees it."""
    body = response.get_json()
    if endpoint == "POST /admin/loads":
        assert (body["inserted"], body["updated"], body["deleted"]) == (1, 0, 0)
        assert body["organisation"] == "EXDA"
        draft = client.get(f"{ADMIN}/draft", headers=admin)
        assert draft.get_json()["entities"]["gsp_group"]["inserts"] == 2
    elif endpoint == "GET /admin/loads":
        loads = body["loads"]
        assert len(loads) == 2
        assert loads[0]["id"] > loads[1]["id"]
        assert loads[0]["version"] is None and loads[1]["version"] == 1
    elif endpoint == "GET /admin/draft":
        assert body["base_version"] == 1 and body["next_version"] == 2
        assert body["entities"] == {"gsp_group": {"inserts": 1, "updates": 0, "deletes": 0}}
        assert body["empty"] is False
    elif endpoint == "DELETE /admin/draft":
        assert body == {"discarded": 1}
        draft = client.get(f"{ADMIN}/draft", headers=admin)
        assert draft.get_json()["entities"] == {}
    elif endpoint == "POST /admin/publications":
        assert body["version"] == 2 and body["go_live_date"] == "2026-02-26"
        assert client.get(f"{API}/versions/latest").get_json()["version"] == 2
        records = client.get(f"{API}/entities/gsp_group/records").get_json()["records"]
        assert [r["gsp_group_id"] for r in records] == ["_A", "_B", "_C", "_D"]
    elif endpoint == "POST /admin/catalogue/entities":
        assert body["id"] == "bsc_party"
        entities = client.get(f"{API}/catalogue").get_json()["entities"]
        assert "bsc_party" in [e["id"] for e in entities]
    elif endpoint == "POST /admin/catalogue/entities/{id}/fields":
        assert body["id"] == "gsp_group_region"
        entities = client.get(f"{API}/catalogue").get_json()["entities"]
        gsp = next(e for e in entities if e["id"] == "gsp_group")
        assert gsp["fields"][-1]["id"] == "gsp_group_region"
    else:
        raise AssertionError(endpoint)


@pytest.mark.usefixtures("populated")
@pytest.mark.parametrize(("endpoint", "role"), [
    (e, r) for e in ENDPOINTS for r in ROLES if r in ALLOWED[e]])
def test_a_role_that_may_succeeds(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str], endpoint: str, role: str
) -> None:
    response = REQUESTS[endpoint](client, bearer(token_for(app, role, org="EXDA")))
    assert response.status_code == SUCCESS_STATUS[endpoint], response.get_data(as_text=True)
    check_effect(client, admin_headers, endpoint, response)


@pytest.mark.usefixtures("populated")
def test_roles_of_one_token_add_up(app: Flask, client: FlaskClient) -> None:
    headers = bearer(token_for(app, "loader", "publisher", org="EXDA"))
    assert REQUESTS["POST /admin/loads"](client, headers).status_code == 201
    published = REQUESTS["POST /admin/publications"](client, headers)
    assert published.status_code == 201
    assert published.get_json()["version"] == 2
    # ... but neither role may change the catalogue
    before = state(app)
    assert_problem(REQUESTS["POST /admin/catalogue/entities"](client, headers), 403)
    assert state(app) == before


@pytest.mark.usefixtures("populated")
def test_a_token_that_has_not_expired_yet_works(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        token = create_token(uow(), organisation="ISDA", roles=["loader"],
                             expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert client.get(f"{ADMIN}/draft", headers=bearer(token)).status_code == 200


@pytest.mark.usefixtures("populated")
def test_revoking_a_token_that_worked_shuts_it_out(app: Flask, client: FlaskClient) -> None:
    token = token_for(app, "publisher")
    assert client.get(f"{ADMIN}/draft", headers=bearer(token)).status_code == 200
    digest = hashlib.sha256(token.encode()).hexdigest()
    with app.app_context():
        db = session()
        db.execute(update(ApiToken).where(ApiToken.token_sha256 == digest)
                   .values(revoked_at=datetime.now(UTC)))
        db.commit()
    before = state(app)
    assert_problem(REQUESTS["DELETE /admin/draft"](client, bearer(token)), 401)
    assert state(app) == before


def test_tokens_are_stored_only_as_their_hash(app: Flask) -> None:
    token = token_for(app, "admin")
    with app.app_context():
        rows = session().scalars(select(ApiToken)).all()
    assert len(rows) == 1
    assert rows[0].token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr([(r.token_sha256, r.description) for r in rows])


@pytest.mark.usefixtures("populated")
def test_public_reads_need_no_token(client: FlaskClient) -> None:
    for path in ("/catalogue", "/versions", "/versions/latest", "/versions/1",
                 "/versions/1/snapshot", "/deltas?from=0&to=1",
                 "/entities/gsp_group/records", "/versions/1/mdd/GSP_Group.csv"):
        response = client.get(API + path)
        body = response.get_data(as_text=True)  # read it all: a stream holds a connection
        assert response.status_code == 200, path
        assert "_A" in body or "gsp_group" in body, path


# --- governance endpoints (admin only): tokens and the audit log ---------------------------

def _a_token_id(app: Flask) -> int:
    """A token that exists to be revoked (of another organisation)."""
    token = token_for(app, "loader", org="EXDB")
    digest = hashlib.sha256(token.encode()).hexdigest()
    with app.app_context():
        row = session().scalars(select(ApiToken).where(ApiToken.token_sha256 == digest)).one()
        return row.id


GOVERNANCE: dict[str, Callable[[Flask, FlaskClient, dict[str, str]], TestResponse]] = {
    "POST /admin/tokens": lambda a, c, h: c.post(
        f"{ADMIN}/tokens", headers=h, json={"organisation": "EXDC", "roles": ["loader"],
                                            "days": 30, "description": "a distributor"}),
    "GET /admin/tokens": lambda a, c, h: c.get(f"{ADMIN}/tokens", headers=h),
    "DELETE /admin/tokens/{id}": lambda a, c, h: c.delete(
        f"{ADMIN}/tokens/{_a_token_id(a)}", headers=h),
    "GET /admin/audit": lambda a, c, h: c.get(f"{ADMIN}/audit", headers=h),
}


def token_rows(app: Flask) -> list[tuple[Any, ...]]:
    with app.app_context(), database().engine.connect() as conn:
        table = Base.metadata.tables["api_token"]
        return [tuple(r) for r in conn.execute(select(table).order_by(table.c.id))]


@pytest.mark.usefixtures("populated")
@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("endpoint", list(GOVERNANCE))
def test_governance_endpoints_need_a_valid_token(
    app: Flask, client: FlaskClient, endpoint: str, kind: str
) -> None:
    headers = bad_headers(app, kind)
    before = token_rows(app)
    response = GOVERNANCE[endpoint](app, client, headers)
    assert_problem(response, 401)
    after = token_rows(app)
    # _a_token_id made one more token for DELETE; nothing else changed
    assert after[: len(before)] == before
    assert all(r[-1] is None for r in after[len(before):])


@pytest.mark.usefixtures("populated")
@pytest.mark.parametrize("role", ["loader", "publisher"])
@pytest.mark.parametrize("endpoint", list(GOVERNANCE))
def test_governance_endpoints_are_for_admins_only(
    app: Flask, client: FlaskClient, endpoint: str, role: str
) -> None:
    headers = bearer(token_for(app, role, "loader", org="EXDA"))
    before = token_rows(app)
    body = assert_problem(GOVERNANCE[endpoint](app, client, headers), 403)
    assert "admin" in body["detail"]
    after = token_rows(app)
    assert after[: len(before)] == before
    assert all(r[-1] is None for r in after[len(before):])


def test_an_admin_creates_lists_and_revokes_tokens(app: Flask, client: FlaskClient) -> None:
    admin = bearer(token_for(app, "admin"))
    created = GOVERNANCE["POST /admin/tokens"](app, client, admin)
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    token = body["token"]
    assert token.startswith("isd_") and len(token) > 40
    assert body["organisation"] == "EXDC" and body["roles"] == ["loader"]
    assert body["expires_at"] is not None and body["revoked_at"] is None
    # the new token works, as a loader
    assert client.get(f"{ADMIN}/draft", headers=bearer(token)).status_code == 200
    assert client.get(f"{ADMIN}/tokens", headers=bearer(token)).status_code == 403

    listed = client.get(f"{ADMIN}/tokens", headers=admin)
    assert listed.status_code == 200
    assert token not in listed.get_data(as_text=True)
    assert hashlib.sha256(token.encode()).hexdigest() not in listed.get_data(as_text=True)
    mine = next(t for t in listed.get_json()["tokens"] if t["id"] == body["id"])
    assert mine == {k: v for k, v in body.items() if k != "token"}

    revoked = client.delete(f"{ADMIN}/tokens/{body['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"] is not None
    assert_problem(client.get(f"{ADMIN}/draft", headers=bearer(token)), 401)
    again = client.delete(f"{ADMIN}/tokens/{body['id']}", headers=admin)
    assert again.status_code == 409 and again.mimetype == "application/problem+json"
    missing = client.delete(f"{ADMIN}/tokens/999999", headers=admin)
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"


@pytest.mark.parametrize("body", [
    {}, {"organisation": "EXDC"}, {"organisation": "exdc", "roles": ["loader"]},
    {"organisation": "EXDC", "roles": []}, {"organisation": "EXDC", "roles": ["root"]},
    {"organisation": "EXDC", "roles": ["loader"], "days": 0},
    {"organisation": "EXDC", "roles": ["loader"], "days": "30"},
    {"organisation": "EXDC", "roles": ["loader"], "description": "x" * 201},
    {"organisation": "EXDC", "roles": ["loader"], "token": "isd_chosen"},
    ["EXDC"]])
def test_a_bad_token_request_is_refused_and_creates_nothing(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str], body: Any
) -> None:
    before = token_rows(app)
    response = client.post(f"{ADMIN}/tokens", headers=admin_headers, json=body)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["errors"]
    assert token_rows(app) == before
