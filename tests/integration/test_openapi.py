"""The OpenAPI document covers every route, and a bounded schemathesis run against the live
app finds no 5xx and no answer that contradicts the document."""

from __future__ import annotations

import io
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from isd_service.entrypoints.api.governance import AuditQuery

API = "/api/v1"
ADMIN = f"{API}/admin"
MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def openapi_path(rule: str) -> str:
    import re

    return re.sub(r"<(?:[a-z]+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule)


def test_the_document_covers_every_api_route(app: Flask, client: FlaskClient) -> None:
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    doc = response.get_json()
    assert doc["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items()
                  for method in ops}
    routes = {(openapi_path(r.rule), m) for r in app.url_map.iter_rules()
              if r.rule.startswith("/api/") for m in (r.methods or set()) - {"HEAD", "OPTIONS"}}
    assert routes and documented == routes
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["responses"]["default"]["content"]["application/problem+json"], path
            assert ("security" in op) == path.startswith(ADMIN), (path, method)


def test_parameters_and_bodies_come_from_the_schemas_the_views_parse_with(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    doc = client.get(f"{API}/openapi.json").get_json()
    deltas = {p["name"]: p for p in doc["paths"][f"{API}/deltas"]["get"]["parameters"]}
    assert deltas["from"]["required"] is True
    assert deltas["format"]["schema"]["enum"] == ["json", "ndjson"]
    records = doc["paths"][f"{API}/entities/{{entity_id}}/records"]["get"]["parameters"]
    assert {p["name"] for p in records} >= {"entity_id", "version", "effective_on", "limit"}
    token = doc["paths"][f"{ADMIN}/tokens"]["post"]["requestBody"]["content"]
    assert set(token["application/json"]["schema"]["required"]) == {"organisation", "roles"}
    load = doc["paths"][f"{ADMIN}/loads"]["post"]["requestBody"]["content"]
    form = load["multipart/form-data"]["schema"]
    assert form["properties"]["mode"]["enum"] == ["replace", "upsert", "delete"]
    assert form["properties"]["file"]["items"] == {"type": "string", "format": "binary"}
    assert "file" in form["required"]
    # Input that does not fit its schema is documented as a problem, with its status.
    for path, method, status in [(f"{API}/deltas", "get", "400"),
                                 (f"{ADMIN}/tokens", "post", "422"),
                                 (f"{ADMIN}/loads", "post", "422")]:
        answer = doc["paths"][path][method]["responses"][status]
        assert answer["content"]["application/problem+json"]["schema"]["required"], path
    # The schema a view documents is the one it parses with: the audit's parameters are
    # AuditQuery's, with its bounds, and what AuditQuery refuses the view refuses.
    audit = {p["name"]: p for p in doc["paths"][f"{ADMIN}/audit"]["get"]["parameters"]}
    assert set(audit) == set(AuditQuery().fields) == {"limit", "cursor", "action"}
    assert (audit["limit"]["schema"]["minimum"], audit["limit"]["schema"]["maximum"]) == (1, 1000)
    for query, field in [("colour=red", "colour"), ("limit=1001", "limit")]:
        refused = client.get(f"{ADMIN}/audit?{query}", headers=admin_headers)
        assert refused.status_code == 400, query
        assert refused.mimetype == "application/problem+json"
        assert [e["field"] for e in refused.get_json()["errors"]] == [field]
    assert client.get(f"{ADMIN}/audit?limit=1000", headers=admin_headers).status_code == 200
    # flask-smorest serves no document or documentation page of its own.
    assert not any(endpoint.startswith("api-docs") for endpoint in app.view_functions)


def test_an_answer_documented_by_a_schema_is_sent_as_the_view_built_it(
    client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    """A response schema documents, never reshapes: no key dropped, added or reordered."""
    summary = ["id", "name", "organisation", "roles", "description", "created_at", "expires_at",
               "revoked_at"]
    created = client.post(f"{ADMIN}/tokens", headers=admin_headers,
                          json={"organisation": "ABCD", "roles": ["loader"]})
    assert created.status_code == 201
    assert list(created.get_json()) == [*summary, "token"]  # TokenOut declares neither last
    listed = client.get(f"{ADMIN}/tokens", headers=admin_headers).get_json()["tokens"]
    assert all(list(token) == summary for token in listed)


@pytest.fixture
def published(app: Flask, client: FlaskClient, admin_headers: dict[str, str]) -> None:
    """The seed data as version 1, and a version 2 that changes a little."""
    result = app.test_cli_runner().invoke(args=["seed"])
    assert result.exit_code == 0, result.output
    change = b"gsp_group_id,gsp_group_name\n_A,Eastern England\n"
    assert client.post(f"{ADMIN}/loads", headers=admin_headers,
                       content_type="multipart/form-data",
                       data={"format": "csv", "mode": "upsert",
                             "file": (io.BytesIO(change), "gsp_group.csv")}).status_code == 201
    assert client.post(f"{ADMIN}/publications", headers=admin_headers,
                       json={}).status_code == 201


@pytest.mark.usefixtures("published")
def test_schemathesis_finds_no_5xx_and_no_answer_against_the_document(app: Flask) -> None:
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() != "GET" or operation.path.startswith(ADMIN):
            continue
        operations += 1

        @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            case.call_and_validate(checks=CHECKS)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations >= 10
    assert not failures, "\n\n".join(failures)
