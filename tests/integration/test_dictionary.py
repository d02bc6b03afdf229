"""The public data dictionary: every entity and field of a version, its relations (linked)
and the versions that introduced and changed each definition."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

API = "/api/v1"
Headers = dict[str, str]

pytestmark = pytest.mark.relations


def page(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def section(html: str, entity_id: str) -> str:
    match = re.search(rf'<section id="{entity_id}".*?</section>', html, re.S)
    assert match, entity_id
    return match.group(0)


def row(html: str, field_id: str) -> str:
    match = re.search(rf'<tr id="[a-z_]+\.{field_id}">.*?</tr>', html, re.S)
    assert match, field_id
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(0))).strip()


def test_the_dictionary_shows_definitions_relations_and_each_fields_history(
        app: Flask, client: FlaskClient, admin_headers: Headers) -> None:
    assert app.test_cli_runner().invoke(args=["seed", "--version", "40"]).exit_code == 0
    # Version 41 adds a data item to GSP groups and a relation to M18.
    assert client.post(f"{API}/admin/catalogue/entities/gsp_group/fields", headers=admin_headers,
                       json={"id": "region", "name": "Region", "type": "string",
                             "max_length": 20}).status_code == 201
    relation = [{"fields": ["market_participant_role_code"],
                 "reference": {"entity": "market_role",
                               "fields": ["market_participant_role_code"]}}]
    assert client.put(f"{API}/admin/catalogue/entities/dip_market_role/foreign-keys",
                      headers=admin_headers, json=relation).status_code == 200
    assert client.post(f"{API}/admin/publications", json={},
                       headers=admin_headers).status_code == 201

    html = page(client, "/catalogue")
    assert "Data dictionary, version 41" in html
    gsp = section(html, "gsp_group")
    assert row(gsp, "region") == "Region region string 20 no introduced in 41"
    assert row(gsp, "gsp_group_id").endswith("yes (key) introduced in 40")
    assert "Gsp Group ID" in gsp and "MDD file" in gsp
    m18 = section(html, "dip_market_role")
    assert "introduced in 40; changed in 41" in re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", m18))
    assert '<a href="#market_role">Market Role</a>' in m18
    llfc = section(html, "line_loss_factor_class")
    assert '→ <a href="#market_participant_role">' in llfc
    assert "Effective From Settlement Date (LLFC)" in llfc  # its effective-from field
    # The referenced entity names who refers to it.
    assert '<a href="#line_loss_factor_class">' in section(html, "market_participant_role")
    clock = section(html, "clock_interval")
    assert "HH:MM, up to 24:00" in clock

    old = page(client, "/versions/40/catalogue")
    assert "Data dictionary, version 40" in old
    assert 'id="gsp_group.region"' not in old
    assert "changed in" not in section(old, "dip_market_role")

    # Linked from the navigation, the version page and the entity pages.
    assert 'href="/catalogue"' in page(client, "/versions")
    assert 'href="/versions/41/catalogue"' in page(client, "/versions/41")
    assert 'href="/versions/41/catalogue#gsp_group"' in page(
        client, "/versions/41/entities/gsp_group")


def test_the_dictionary_owner_field_follows_the_ownership_policy(
        app: Flask, client: FlaskClient) -> None:
    app.config["OWNERSHIP"] = {"line_loss_factor_class": "market_participant_id"}
    html = section(page(client, "/catalogue"), "line_loss_factor_class")
    assert "Market Participant ID (a participant may only change its own records)" in html
    assert "not yet published" in html
    assert client.get("/versions/99/catalogue").status_code == 404
