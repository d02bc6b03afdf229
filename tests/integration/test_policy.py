"""Ownership: with OWNERSHIP configured, a loader organisation other than the ISD agent may
only change its own records; a load touching anybody else's is refused whole, with the
offending lines, and changes nothing."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from isd_service.config import check_ownership
from isd_service.entrypoints.app import create_app
from tests.conftest import token_for

API = "/api/v1"
ADMIN = f"{API}/admin"
OWNERSHIP = {"line_loss_factor_class": "market_participant_id",
             "mtc_in_pes_area": "market_participant_id"}
HEADER = ("market_participant_id,market_participant_role_code,effective_from_date_mpr,"
          "line_loss_factor_class_id,effective_from_settlement_date_llfc,"
          "line_loss_factor_class_description,ms_specific_llf_class_indicator,"
          "effective_to_settlement_date_llfc\n")


def llfc(*rows: tuple[str, str, str]) -> str:
    """LLFC rows as (owner, class id, description)."""
    return HEADER + "".join(f"{mp},R,1996-04-01,{cls},1996-04-01,{desc},A,\n"
                            for mp, cls, desc in rows)


V1 = llfc(("EXDA", "101", "Domestic"), ("EXDA", "102", "Two rate"),
          ("EXDB", "201", "Domestic"), ("EXDB", "202", "Business"))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(client: FlaskClient, headers: dict[str, str], content: str, mode: str = "upsert",
         name: str = "line_loss_factor_class.csv") -> TestResponse:
    return client.post(f"{ADMIN}/loads", headers=headers, content_type="multipart/form-data",
                       data={"format": "csv", "mode": mode,
                             "file": (io.BytesIO(content.encode()), name)})


def records(client: FlaskClient) -> list[tuple[str, str, str]]:
    """The LLFC records as the next version would have them (publish, then read)."""
    body = client.get(f"{API}/entities/line_loss_factor_class/records").get_json()
    return [(r["market_participant_id"], r["line_loss_factor_class_id"],
             r["line_loss_factor_class_description"]) for r in body["records"]]


def draft(client: FlaskClient, headers: dict[str, str]) -> dict[str, Any]:
    return client.get(f"{ADMIN}/draft", headers=headers).get_json()["entities"]


@pytest.fixture
def governed(app: Flask, client: FlaskClient, admin_headers: dict[str, str]) -> FlaskClient:
    """Version 1 with LLFCs of two distributors; the ownership policy on."""
    app.config["OWNERSHIP"] = dict(OWNERSHIP)
    assert post(client, admin_headers, V1, "replace").status_code == 201
    assert client.post(f"{ADMIN}/publications", headers=admin_headers, json={}).status_code \
        == 201
    return client


@pytest.fixture
def exda(app: Flask) -> dict[str, str]:
    return bearer(token_for(app, "loader", org="EXDA"))


def test_a_loader_may_change_its_own_records(
    governed: FlaskClient, exda: dict[str, str], admin_headers: dict[str, str]
) -> None:
    response = post(governed, exda, llfc(("EXDA", "101", "Domestic unrestricted"),
                                         ("EXDA", "103", "Off-peak")))
    assert response.status_code == 201, response.get_data(as_text=True)
    assert (response.get_json()["inserted"], response.get_json()["updated"]) == (1, 1)
    deleted = post(governed, exda, llfc(("EXDA", "102", "Two rate")), mode="delete")
    assert deleted.status_code == 201, deleted.get_data(as_text=True)
    assert draft(governed, admin_headers) == {
        "line_loss_factor_class": {"inserts": 1, "updates": 1, "deletes": 1}}


def test_a_load_touching_someone_elses_records_is_refused_whole(
    governed: FlaskClient, exda: dict[str, str], admin_headers: dict[str, str]
) -> None:
    content = llfc(("EXDA", "101", "Changed"), ("EXDB", "201", "Hijacked"),
                   ("EXDA", "104", "New"), ("EXDB", "299", "Planted"))
    for mode in ("upsert", "replace", "delete"):
        response = post(governed, exda, content, mode=mode)
        assert response.status_code == 422, (mode, response.get_data(as_text=True))
        assert response.mimetype == "application/problem+json"
        errors = response.get_json()["errors"]
        offending = [(e["line"], e["field"], e["value"]) for e in errors]
        assert offending == [(3, "market_participant_id", "EXDB"),
                             (5, "market_participant_id", "EXDB")], mode
        assert all("EXDA may only change its own records" in e["message"] for e in errors)
    assert draft(governed, admin_headers) == {}


def test_a_loaders_replace_replaces_only_its_own_records(
    governed: FlaskClient, exda: dict[str, str], admin_headers: dict[str, str]
) -> None:
    response = post(governed, exda, llfc(("EXDA", "101", "Domestic")), mode="replace")
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["deleted"] == 1  # 102; EXDB's two records stay
    assert governed.post(f"{ADMIN}/publications", headers=admin_headers,
                         json={}).status_code == 201
    assert records(governed) == [("EXDA", "101", "Domestic"), ("EXDB", "201", "Domestic"),
                                 ("EXDB", "202", "Business")]


def test_a_loader_may_not_load_an_entity_without_an_owner(
    governed: FlaskClient, exda: dict[str, str], admin_headers: dict[str, str]
) -> None:
    response = post(governed, exda, "gsp_group_id,gsp_group_name\n_A,Eastern\n",
                    name="gsp_group.csv")
    assert response.status_code == 422
    [error] = response.get_json()["errors"]
    assert error["entity"] == "gsp_group" and "only the ISD agent" in error["message"]
    assert draft(governed, admin_headers) == {}


@pytest.mark.parametrize(("roles", "org"), [
    (("publisher",), "EXDA"), (("admin",), "EXDA"), (("loader",), "ISDA"),
    (("loader", "publisher"), "EXDC")])
def test_the_isd_agent_and_trusted_roles_are_not_restricted(
    app: Flask, governed: FlaskClient, admin_headers: dict[str, str], roles: tuple[str, ...],
    org: str,
) -> None:
    headers = bearer(token_for(app, *roles, org=org))
    response = post(governed, headers, llfc(("EXDB", "201", "Changed by the agent")))
    assert response.status_code == 201, response.get_data(as_text=True)


def test_without_a_configured_ownership_loaders_are_not_restricted(
    app: Flask, client: FlaskClient, exda: dict[str, str]
) -> None:
    app.config["OWNERSHIP"] = {}
    assert post(client, exda, llfc(("EXDB", "201", "x"))).status_code == 201


def test_ownership_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                              database_url: str) -> None:
    monkeypatch.setenv("ISD_OWNERSHIP", '{"mtc_in_pes_area": "market_participant_id"}')
    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    assert app.config["OWNERSHIP"] == {"mtc_in_pes_area": "market_participant_id"}
    app.extensions["isd_db"].engine.dispose()
    monkeypatch.setenv("ISD_OWNERSHIP", '["not", "a", "mapping"]')
    with pytest.raises(ValueError, match="OWNERSHIP"):
        create_app({"TESTING": True, "DATABASE_URL": database_url})


@pytest.mark.parametrize("value", [[], {"a": 1}, {"": "x"}, "text"])
def test_a_bad_ownership_setting_is_refused(value: Any) -> None:
    with pytest.raises(ValueError):
        check_ownership(value)
