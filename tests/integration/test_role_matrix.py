"""Every admin route, found in the app's URL map, against every role and every bad token.

A new admin route without an entry in ALLOWED fails here, so none goes out untested.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from isd_service.adapters.orm import ApiToken
from isd_service.entrypoints.flask_db import session, uow
from tests.conftest import create_token, token_for

EVERYONE = {"loader", "publisher", "admin"}
PUBLISHERS = {"publisher", "admin"}
ADMINS = {"admin"}

ALLOWED: dict[tuple[str, str], set[str]] = {
    ("GET", "/api/v1/admin/audit"): ADMINS,
    ("POST", "/api/v1/admin/catalogue/entities"): ADMINS,
    ("POST", "/api/v1/admin/catalogue/entities/<string:entity_id>/fields"): ADMINS,
    ("PATCH", "/api/v1/admin/catalogue/entities/<string:entity_id>/fields/<string:field_id>"):
        ADMINS,
    ("PUT", "/api/v1/admin/catalogue/entities/<string:entity_id>/foreign-keys"): ADMINS,
    ("GET", "/api/v1/admin/draft"): EVERYONE,
    ("DELETE", "/api/v1/admin/draft"): PUBLISHERS,
    ("POST", "/api/v1/admin/loads"): EVERYONE,
    ("GET", "/api/v1/admin/loads"): EVERYONE,
    ("GET", "/api/v1/admin/loads/<int(signed=True):load_id>/release"): EVERYONE,
    ("POST", "/api/v1/admin/publications"): PUBLISHERS,
    ("GET", "/api/v1/admin/publication-requests"): PUBLISHERS,
    ("GET", "/api/v1/admin/publication-requests/<int:request_id>"): PUBLISHERS,
    ("POST", "/api/v1/admin/publication-requests/<int:request_id>/approvals"): PUBLISHERS,
    ("POST", "/api/v1/admin/publication-requests/<int:request_id>/rejections"): PUBLISHERS,
    ("POST", "/api/v1/admin/releases"): PUBLISHERS,
    ("PATCH", "/api/v1/admin/releases/<int(signed=True):release_id>"): PUBLISHERS,
    ("DELETE", "/api/v1/admin/releases/<int(signed=True):release_id>"): PUBLISHERS,
    ("POST", "/api/v1/admin/releases/frozen/loads"): PUBLISHERS,
    ("GET", "/api/v1/admin/schedule"): PUBLISHERS,
    ("POST", "/api/v1/admin/tokens"): ADMINS,
    ("GET", "/api/v1/admin/tokens"): ADMINS,
    ("DELETE", "/api/v1/admin/tokens/<int:token_id>"): ADMINS,
    ("POST", "/api/v1/admin/webhooks"): ADMINS,
    ("GET", "/api/v1/admin/webhooks"): ADMINS,
    ("GET", "/api/v1/admin/webhooks/<int:subscription_id>"): ADMINS,
    ("DELETE", "/api/v1/admin/webhooks/<int:subscription_id>"): ADMINS,
    ("GET", "/api/v1/admin/webhooks/<int:subscription_id>/deliveries"): ADMINS,
}
ROUTES = sorted(ALLOWED)


def concrete(rule: str, token_id: int) -> str:
    """Fill a rule's variables: a token id that is not the caller's, 1 for other integers,
    a real entity id for strings."""
    rule = rule.replace("<int:token_id>", str(token_id))
    rule = re.sub(r"<int[^>]*>", "1", rule)
    return re.sub(r"<string:[^>]*>", "gsp_group", rule)


def call(client: FlaskClient, method: str, rule: str, token: str | None, token_id: int = 0):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.open(concrete(rule, token_id), method=method, headers=headers,
                       json={} if method in ("POST", "PATCH") else None)


def test_the_matrix_names_every_admin_route(app: Flask) -> None:
    found = {(m, r.rule) for r in app.url_map.iter_rules()
             if r.rule.startswith("/api/v1/admin")
             for m in r.methods - {"HEAD", "OPTIONS"}}
    assert found == set(ALLOWED)


def _bad_token(app: Flask, kind: str) -> str | None:
    if kind == "none":
        return None
    if kind == "wrong":
        return "isd_not-a-token-this-service-gave-out"
    with app.app_context():
        db = session()
        if kind == "expired":
            return create_token(uow(), organisation="ISDA", roles=["admin"],
                                expires_at=datetime.now(UTC) - timedelta(minutes=1))
        token = create_token(uow(), organisation="ISDA", roles=["admin"])
        db.execute(update(ApiToken).values(revoked_at=datetime.now(UTC)))
        db.commit()
        return token


@pytest.mark.parametrize("kind", ["none", "wrong", "expired", "revoked"])
def test_without_a_valid_token_every_admin_route_answers_401(app: Flask, client: FlaskClient,
                                                             kind: str) -> None:
    token = _bad_token(app, kind)
    for method, rule in ROUTES:
        response = call(client, method, rule, token)
        assert response.status_code == 401, (method, rule, response.get_json())
        assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("role", sorted(EVERYONE))
def test_each_role_gets_exactly_the_routes_it_may_use(app: Flask, client: FlaskClient,
                                                      role: str) -> None:
    token_for(app, "loader", org="EXDA")  # a token to revoke that is not the caller's
    with app.app_context():
        decoy = session().scalars(select(ApiToken.id).where(
            ApiToken.organisation == "EXDA")).one()
    token = token_for(app, role)
    for method, rule in ROUTES:
        response = call(client, method, rule, token, decoy)
        if role in ALLOWED[(method, rule)]:
            assert response.status_code not in (401, 403), (method, rule, response.get_json())
        else:
            assert response.status_code == 403, (method, rule, response.get_json())
        assert response.status_code < 500, (method, rule, response.get_json())
