"""GET /api/ISD: one entity in the ISD data store's CSV layout, for software written for it."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from isd_service.domain.catalogue import EntityDef, FieldDef
from isd_service.domain.formats import isd_csv


def seed_and_change(app: Flask, tmp_path: Path) -> None:
    """Version 1 from the seed data; version 2 renames one GSP group and nothing else."""
    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed"]).exit_code == 0
    changed = tmp_path / "gsp_group.csv"
    changed.write_text("gsp_group_id,gsp_group_name\n_A,East Anglia\n")
    result = runner.invoke(args=["load", "--format", "csv", "--mode", "upsert", str(changed)])
    assert result.exit_code == 0, result.output
    assert runner.invoke(args=["publish"]).exit_code == 0


def lines(response_text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response_text)))


def test_the_first_line_says_entity_version_and_whether_it_changed(
        app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    seed_and_change(app, tmp_path)
    latest = client.get("/api/ISD?filter=gsp_group")
    assert latest.status_code == 200
    assert latest.mimetype == "text/csv"
    rows = lines(latest.get_data(as_text=True))
    assert rows[0] == ["gsp_group", "GSP Group", "2", "Y"]
    assert rows[1] == ["Gsp Group ID", "GSP Group Name"]
    assert ["_A", "East Anglia"] in rows[2:]
    assert 'filename="gsp_group_2.csv"' in latest.headers["Content-Disposition"]

    # Unchanged in 2; every entity is "changed" in the first version (nothing before it).
    assert lines(client.get("/api/ISD?filter=profile_class").get_data(as_text=True))[0][3] == "N"
    first = lines(client.get("/api/ISD?filter=gsp_group&version=1").get_data(as_text=True))
    assert first[0] == ["gsp_group", "GSP Group", "1", "Y"]
    assert ["_A", "Eastern"] in first[2:]
    assert lines(client.get("/api/ISD?filter=profile_class&version=1")
                 .get_data(as_text=True))[0][3] == "Y"


def test_the_records_are_the_mdd_file_of_the_entity(
        app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    seed_and_change(app, tmp_path)
    # By source name (as the MDD files are named) or by id: the same file.
    # (A streamed answer is read before the next request: each holds its request context.)
    by_source = client.get("/api/ISD?filter=Line_Loss_Factor_Class&version=2")
    assert by_source.status_code == 200
    text = by_source.get_data(as_text=True)
    by_id = client.get("/api/ISD?filter=line_loss_factor_class&version=2")
    assert by_id.status_code == 200
    assert by_id.get_data(as_text=True) == text
    first, rest = text.split("\n", 1)
    assert first == '"line_loss_factor_class","Line Loss Factor Class","2","N"'
    mdd = client.get("/api/v1/versions/2/mdd/Line_Loss_Factor_Class.csv")
    assert rest == mdd.get_data(as_text=True)
    assert "/04/1996" in rest  # dates as in the MDD files


def test_bad_requests_say_what_is_wrong(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    none_yet = client.get("/api/ISD?filter=gsp_group")
    assert none_yet.status_code == 404
    assert none_yet.get_json()["detail"] == "no version has been published yet"
    seed_and_change(app, tmp_path)
    cases = {
        "/api/ISD": (400, "filter"),
        "/api/ISD?filter=": (400, "filter"),
        "/api/ISD?filter=gsp_group&version=x": (400, "version"),
        "/api/ISD?filter=gsp_group&version=0": (400, "version"),
        "/api/ISD?filter=gsp_group&colour=red": (400, "colour"),
    }
    for url, (status, field) in cases.items():
        response = client.get(url)
        assert response.status_code == status, url
        assert response.mimetype == "application/problem+json"
        assert field in [e["field"] for e in response.get_json()["errors"]], url
    missing = client.get("/api/ISD?filter=no_such_thing")
    assert missing.status_code == 404
    assert "no_such_thing" in missing.get_json()["detail"]
    later = client.get("/api/ISD?filter=gsp_group&version=3")
    assert later.status_code == 404
    assert later.get_json()["detail"] == "version 3 has not been published"


def test_changed_compares_the_entity_hash_with_the_version_before() -> None:
    now = {"a": {"records": 1, "sha256": "x"}, "b": {"records": 1, "sha256": "y"}}
    before = {"a": {"records": 1, "sha256": "x"}}
    assert isd_csv.changed("a", now, before) is False
    assert isd_csv.changed("b", now, before) is True  # new in this version
    assert isd_csv.changed("a", now, None) is True  # the first version
    assert isd_csv.changed("a", now, {"a": {"records": 1, "sha256": "z"}}) is True


def test_the_file_layout_quotes_like_mdd() -> None:
    entity = EntityDef(id="e", name='An "odd", name', source="E", key=("k",),
                       fields=(FieldDef(id="k", name="Key", type="string", required=True),
                               FieldDef(id="d", name="Day", type="date", required=False)))
    text = "".join(isd_csv.write(entity, 7, False, [{"k": "1", "d": "2026-02-03"},
                                                    {"k": "2", "d": None}]))
    assert text == ('"e","An ""odd"", name","7","N"\n"Key","Day"\n'
                    '"1","03/02/2026"\n"2",""\n')
