"""Relations in the catalogue: declared with an entity, published with its version, and
checked over the whole version at publication (and in the draft's review)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

API = "/api/v1"
ADMIN = f"{API}/admin"
Headers = dict[str, str]

pytestmark = pytest.mark.relations

LLFC_HEADER = ("market_participant_id,market_participant_role_code,effective_from_date_mpr,"
               "line_loss_factor_class_id,effective_from_settlement_date_llfc,"
               "line_loss_factor_class_description,ms_specific_llf_class_indicator,"
               "effective_to_settlement_date_llfc\n")
LLFC_RELATION = ("line_loss_factor_class(market_participant_id, market_participant_role_code, "
                 "effective_from_date_mpr) -> market_participant_role(market_participant_id, "
                 "market_participant_role_code, effective_from_date_mpr)")


def seed(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["seed", "--version", "10"])
    assert result.exit_code == 0, result.output


def load(client: FlaskClient, headers: Headers, entity: str, text: str,
         mode: str = "upsert") -> Any:
    response = client.post(f"{ADMIN}/loads", headers=headers,
                           content_type="multipart/form-data",
                           data={"format": "csv", "mode": mode, "entity": entity,
                                 "file": (io.BytesIO(text.encode()), f"{entity}.csv")})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_the_seed_catalogue_declares_the_mdd_relations(app: Flask, client: FlaskClient) -> None:
    entities = {e["id"]: e for e in client.get(f"{API}/catalogue").get_json()["entities"]}
    assert {"fields": ["market_participant_id"],
            "reference": {"entity": "market_participant",
                          "fields": ["market_participant_id"]}} in \
        entities["market_participant_role"]["foreign_keys"]
    assert next(fk["reference"]["entity"] for fk in entities["mtc_in_pes_area"]["foreign_keys"]
            ) == "meter_timeswitch_class"
    # The 344 file is published alone: nothing it refers to is at hand to check it against.
    assert "foreign_keys" not in entities["valid_mtc_llfc_combination"]


def test_a_broken_relation_refuses_publication_naming_its_records(
        app: Flask, client: FlaskClient, publisher_headers: Headers) -> None:
    seed(app)
    before = client.get(f"{API}/versions/latest").get_json()
    # A class of a distributor role that starts on a date no role record has.
    load(client, publisher_headers, "line_loss_factor_class",
         LLFC_HEADER + "EXDA,R,2001-01-01,999,2001-01-01,Orphan class,A,\n")

    draft = client.get(f"{ADMIN}/draft", headers=publisher_headers).get_json()
    assert draft["relations"]["broken_count"] == 1
    assert draft["relations"]["broken"] == [{
        "entity": "line_loss_factor_class",
        "key": {"market_participant_id": "EXDA", "line_loss_factor_class_id": "999",
                "effective_from_settlement_date_llfc": "2001-01-01"},
        "relation": LLFC_RELATION,
        "values": {"market_participant_id": "EXDA", "market_participant_role_code": "R",
                   "effective_from_date_mpr": "2001-01-01"},
        "reference": "market_participant_role"}]

    response = client.post(f"{ADMIN}/publications", json={}, headers=publisher_headers)
    assert response.status_code == 409
    body = response.get_json()
    assert body["type"].endswith("/relations-broken") and body["error_count"] == 1
    assert body["errors"] == draft["relations"]["broken"]
    assert client.get(f"{API}/versions/latest").get_json() == before  # nothing published

    # The missing role record comes: the version holds together and publishes.
    mpr = client.get(f"{API}/entities/market_participant_role/records?version=10"
                     "&market_participant_id=EXDA").get_json()["records"][0]
    row = {**mpr, "effective_from_date_mpr": "2001-01-01"}
    load(client, publisher_headers, "market_participant_role",
         ",".join(row) + "\n" + ",".join("" if v is None else str(v)
                                         for v in row.values()) + "\n")
    assert client.get(f"{ADMIN}/draft", headers=publisher_headers).get_json()[
        "relations"]["broken_count"] == 0
    response = client.post(f"{ADMIN}/publications", json={}, headers=publisher_headers)
    assert response.status_code == 201, response.get_json()


def test_deleting_a_referenced_record_is_refused_with_the_records_referring_to_it(
        app: Flask, client: FlaskClient, publisher_headers: Headers) -> None:
    seed(app)
    load(client, publisher_headers, "time_pattern_regime",
         "time_pattern_regime_id\n00001\n", mode="delete")
    response = client.post(f"{ADMIN}/publications", json={}, headers=publisher_headers)
    assert response.status_code == 409
    errors = response.get_json()["errors"]
    assert {(e["entity"], e["reference"]) for e in errors} == {
        ("measurement_requirement", "time_pattern_regime"),
        ("clock_interval", "time_pattern_regime")}
    assert all(e["values"] == {"time_pattern_regime_id": "00001"} for e in errors)
    assert {"standard_settlement_configuration_id": "0393",
            "time_pattern_regime_id": "00001"} in [e["key"] for e in errors]


def test_relations_are_declared_by_an_admin_and_go_out_with_the_next_version(
        app: Flask, client: FlaskClient, admin_headers: Headers) -> None:
    seed(app)
    url = f"{ADMIN}/catalogue/entities/dip_market_role/foreign-keys"
    relation = {"fields": ["market_participant_role_code"],
                "reference": {"entity": "market_role",
                              "fields": ["market_participant_role_code"]}}
    for bad, says in (
            ([{"fields": ["market_participant_role_code"],
               "reference": {"entity": "widgets", "fields": ["id"]}}], "no entity 'widgets'"),
            ([{"fields": ["nope"], "reference": {"entity": "market_role",
                                                 "fields": ["market_participant_role_code"]}}],
             "'nope': not a field"),
            ([{"fields": ["market_participant_role_code"]}], "must be {"),
            ({"fields": []}, "must be a list")):
        response = client.put(url, json=bad, headers=admin_headers)
        assert response.status_code == 422, bad
        assert says in str(response.get_json()["errors"]), response.get_json()
    assert client.put(url, json=[relation], headers=admin_headers).status_code == 200
    entity = {e["id"]: e for e in client.get(f"{API}/catalogue").get_json()["entities"]}[
        "dip_market_role"]
    assert entity["foreign_keys"] == [relation]
    # The seed's M18 records name roles X and R, which market_role holds.
    response = client.post(f"{ADMIN}/publications", json={}, headers=admin_headers)
    assert response.status_code == 201, response.get_json()
    published = client.get(f"{API}/catalogue?version=11").get_json()["entities"]
    assert [e["foreign_keys"] for e in published if e["id"] == "dip_market_role"] == [[relation]]
    assert "foreign_keys" not in next(e for e in client.get(f"{API}/catalogue?version=10")
                                  .get_json()["entities"] if e["id"] == "dip_market_role")


def test_isd_catalogue_set_relations_declares_them_or_says_why_not(
        app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps([{"fields": ["market_participant_id"],
                                 "reference": {"entity": "market_participant",
                                               "fields": ["market_participant_id"]}}]))
    bad.write_text(json.dumps([{"fields": ["market_participant_id"],
                                "reference": {"entity": "market_participant",
                                              "fields": ["nope"]}}]))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["catalogue", "set-relations", "mpid_dip_id_mapping", str(bad)])
    assert result.exit_code != 0 and "market_participant has no field 'nope'" in result.output
    result = runner.invoke(args=["catalogue", "set-relations", "mpid_dip_id_mapping",
                                 str(good)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "mpid_dip_id_mapping: 1 relation(s) declared"
    entity = {e["id"]: e for e in client.get(f"{API}/catalogue").get_json()["entities"]}[
        "mpid_dip_id_mapping"]
    assert entity["foreign_keys"][0]["reference"]["entity"] == "market_participant"
