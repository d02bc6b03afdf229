"""The `isd` command: what an operator types and what it prints, run through Flask's CLI runner."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import close_all_sessions

from isd_service import PROJECT_ROOT
from isd_service.entrypoints.app import create_app
from tests.conftest import TEST_SEED, database_of

API = "/api/v1"
SEED = PROJECT_ROOT / "seed_data"

GSP = "gsp_group_id,gsp_group_name\n_A,Eastern\n_B,East Midlands\n_C,London\n"
ROLES = "market_participant_role_code,market_role_description\nX,Supplier\nR,Distributor\n"
PROFILE = ('"Profile Class ID","Effective From Settlement Date (PCLA)",'
           '"Profile Class Description","Switched Load Profile Class Ind",'
           '"Effective To Settlement Date (PCLA)"\n'
           '"1","01/04/1996","Domestic Unrestricted","F",""\n'
           '"2","01/04/1996","Domestic Economy 7","T",""\n')
BSC_PARTY = {
    "id": "bsc_party", "name": "BSC Party", "source": "BSC_Party", "key": ["bsc_party_id"],
    "fields": [
        {"id": "bsc_party_id", "name": "BSC Party ID", "type": "string", "required": True,
         "max_length": 8},
        {"id": "bsc_party_name", "name": "BSC Party Name", "type": "string", "required": True,
         "max_length": 60},
    ],
}
REGION = {"id": "gsp_group_region", "name": "GSP Group Region", "type": "string",
          "max_length": 20}


def isd(app: Flask, *args: str) -> Result:
    result = app.test_cli_runner().invoke(args=list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def ok(app: Flask, *args: str) -> Result:
    result = isd(app, *args)
    assert result.exit_code == 0, result.output
    return result


def refused(app: Flask, *args: str) -> Result:
    result = isd(app, *args)
    assert result.exit_code != 0, result.output
    assert result.stderr.strip(), "a refusal must say why"
    return result


def last_line(result: Result) -> str:
    return result.stdout.strip().splitlines()[-1]


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def get(client: FlaskClient, path: str, status: int = 200) -> Any:
    response = client.get(API + path)
    body = response.get_data(as_text=True)
    assert response.status_code == status, body
    return json.loads(body)


def draft_show(app: Flask) -> dict[str, Any]:
    return json.loads(ok(app, "draft", "show").stdout)


# --- db upgrade ---------------------------------------------------------------------------------

@pytest.mark.relations
def test_db_upgrade_is_idempotent(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    ok(app, "load", "--format", "csv", write(tmp_path, "gsp_group.csv", GSP))
    ok(app, "publish")
    catalogue = get(client, "/catalogue")
    manifest = get(client, "/versions/latest")
    for _ in range(2):
        result = ok(app, "db", "upgrade")
        assert "up to date" in result.stdout and "seed" not in result.stdout
    assert get(client, "/catalogue") == catalogue
    assert get(client, "/versions/latest") == manifest


def seed_catalogue() -> list[dict[str, Any]]:
    return json.loads((SEED / "catalogue.json").read_text(encoding="utf-8"))["entities"]


def test_db_upgrade_builds_an_empty_database_with_the_seed_catalogue(tmp_path: Path) -> None:
    fresh = create_app({"TESTING": True,
                        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}"})
    try:
        client = fresh.test_client()
        first = ok(fresh, "db", "upgrade")
        assert "seed catalogue installed" in first.stdout
        entities = get(client, "/catalogue")["entities"]
        seed = seed_catalogue()
        assert [e["id"] for e in entities] == [e["id"] for e in seed]
        for got, want in zip(entities, seed, strict=True):
            assert got["key"] == want["key"]
            assert [f["id"] for f in got["fields"]] == [f["id"] for f in want["fields"]]
        second = ok(fresh, "db", "upgrade")
        assert "seed" not in second.stdout
        assert get(client, "/catalogue")["entities"] == entities
    finally:
        close_all_sessions()
        database_of(fresh).engine.dispose()


def test_db_upgrade_adds_the_seed_entities_an_older_catalogue_lacks(
        app: Flask, client: FlaskClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployment whose catalogue predates new MDD files gets their entities, which go out
    with its next version; nothing else in its catalogue changes."""
    from isd_service.entrypoints.cli import database

    seed = seed_catalogue()
    new = ["valid_mtc_llfc_combination", "valid_mtc_llfc_ssc_combination",
           "valid_mtc_llfc_ssc_pc_combination"]
    older = [e for e in seed if e["id"] not in new]
    fresh = create_app({"TESTING": True,
                        "DATABASE_URL": f"sqlite:///{tmp_path / 'older.sqlite3'}"})
    try:
        with monkeypatch.context() as patch:
            patch.setattr(database, "seed_catalogue", lambda: older)
            assert "seed catalogue installed" in ok(fresh, "db", "upgrade").stdout
        fresh_client = fresh.test_client()
        ok(fresh, "load", "--format", "csv", write(tmp_path, "gsp_group.csv", GSP))
        ok(fresh, "publish")
        before = get(fresh_client, "/catalogue")["entities"]
        result = ok(fresh, "db", "upgrade")
        assert f"added to the catalogue: {', '.join(new)}" in result.stdout
        after = get(fresh_client, "/catalogue")["entities"]
        assert after[:len(before)] == before
        assert [e["id"] for e in after[len(before):]] == new
        assert ok(fresh, "db", "upgrade").stdout.strip() == "database is up to date"
        published = last_line(ok(fresh, "publish"))
        change_set = get(fresh_client, f"/deltas?from=1&to={published}")
        assert [(c["entity"], c["op"]) for c in change_set["catalogue"]] == [
            (eid, "insert") for eid in new]
    finally:
        close_all_sessions()
        database_of(fresh).engine.dispose()


def test_seed_needs_the_schema_first(tmp_path: Path) -> None:
    fresh = create_app({"TESTING": True,
                        "DATABASE_URL": f"sqlite:///{tmp_path / 'bare.sqlite3'}"})
    try:
        result = refused(fresh, "seed")
        assert "db upgrade" in result.stderr
    finally:
        database_of(fresh).engine.dispose()


# --- tokens -------------------------------------------------------------------------------------

def test_token_create_prints_a_working_token_last(app: Flask, client: FlaskClient,
                                                  tmp_path: Path) -> None:
    result = ok(app, "token", "create", "--org", "EXDA", "--role", "loader", "--role",
                "publisher", "--days", "30")
    token = last_line(result)
    assert token.startswith("isd_") and " " not in token
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"{API}/admin/draft", headers=headers).status_code == 200
    response = client.post(f"{API}/admin/publications", headers=headers,
                           json={"version": 370})
    assert response.status_code == 201, response.get_data(as_text=True)
    response = client.post(f"{API}/admin/catalogue/entities", headers=headers, json=BSC_PARTY)
    assert response.status_code == 403
    other = last_line(ok(app, "token", "create", "--org", "EXDA", "--role", "admin"))
    assert other != token


@pytest.mark.parametrize("args", [
    ["--org", "exda", "--role", "loader"],
    ["--org", "EXDAX", "--role", "loader"],
    ["--org", "EXDA", "--role", "superuser"],
    ["--org", "EXDA"],
])
def test_token_create_refuses_bad_input(app: Flask, client: FlaskClient,
                                        args: list[str]) -> None:
    result = isd(app, "token", "create", *args)
    assert result.exit_code != 0
    assert "isd_" not in result.stdout
    assert result.stderr.strip()


# --- load -------------------------------------------------------------------------------------

def test_load_and_publish_print_what_they_did(app: Flask, client: FlaskClient,
                                              tmp_path: Path) -> None:
    result = ok(app, "load", "--format", "csv", write(tmp_path, "gsp_group.csv", GSP),
                write(tmp_path, "market_role.csv", ROLES))
    assert "inserted 5, updated 0, deleted 0, unchanged 0" in last_line(result)
    result = ok(app, "load", write(tmp_path, "Profile_Class_370.csv", PROFILE))  # mdd-csv
    assert "inserted 2" in last_line(result)
    assert draft_show(app) == {
        "gsp_group": {"inserts": 3, "updates": 0, "deletes": 0},
        "market_role": {"inserts": 2, "updates": 0, "deletes": 0},
        "profile_class": {"inserts": 2, "updates": 0, "deletes": 0}}

    result = ok(app, "publish", "--version", "370", "--go-live", "2025-12-04")
    assert last_line(result) == "370"
    manifest = get(client, "/versions/370")
    assert manifest["go_live_date"] == "2025-12-04"
    assert manifest["record_count"] == 7
    assert manifest["entities"]["profile_class"]["records"] == 2
    assert [ld["organisation"] for ld in manifest["loads"]] == ["ISDA", "ISDA"]
    assert draft_show(app) == {}


def test_load_modes_and_an_entity_given_by_name(app: Flask, client: FlaskClient,
                                                tmp_path: Path) -> None:
    ok(app, "load", "--format", "csv", write(tmp_path, "gsp_group.csv", GSP))
    assert last_line(ok(app, "publish")) == "1"
    odd = write(tmp_path, "groups-from-elexon.csv",
                "gsp_group_id,gsp_group_name\n_B,East Midlands Region\n_D,Merseyside\n")
    refused(app, "load", "--format", "csv", odd)  # the name says no entity
    result = ok(app, "load", "--format", "csv", "--mode", "upsert", "--entity", "gsp_group",
                odd)
    assert "inserted 1, updated 1, deleted 0, unchanged 0" in last_line(result)
    result = ok(app, "load", "--format", "csv", "--mode", "delete", "--entity", "GSP_Group",
                write(tmp_path, "gone.csv", "gsp_group_id,gsp_group_name\n_A,Eastern\n"))
    assert "deleted 1" in last_line(result)
    assert last_line(ok(app, "publish")) == "2"
    names = {r["gsp_group_id"]: r["gsp_group_name"]
             for r in get(client, "/entities/gsp_group/records")["records"]}
    assert names == {"_B": "East Midlands Region", "_C": "London", "_D": "Merseyside"}


def test_load_a_folder_and_json(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    folder = tmp_path / "v370"
    folder.mkdir()
    write(folder, "gsp_group.csv", GSP)
    write(folder, "market_role.csv", ROLES)
    write(folder, "notes.txt", "not a data file")
    result = ok(app, "load", "--format", "csv", str(folder))
    assert "inserted 5" in last_line(result)
    doc = {"entities": {"gsp_group": [{"gsp_group_id": "_E", "gsp_group_name": "Midlands"}]}}
    result = ok(app, "load", "--format", "json", "--mode", "upsert",
                write(tmp_path, "more.json", json.dumps(doc)))
    assert "inserted 1" in last_line(result)
    assert draft_show(app)["gsp_group"]["inserts"] == 4


def test_a_refused_load_exits_non_zero_says_why_and_changes_nothing(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    ok(app, "load", "--format", "csv", write(tmp_path, "market_role.csv", ROLES))
    before = draft_show(app)
    bad = write(tmp_path, "gsp_group.csv",
                "gsp_group_id,gsp_group_name\n_A,Eastern\n_TOO,Long id\n_C,\n")
    result = refused(app, "load", "--format", "csv", bad,
                     write(tmp_path, "profile_class.csv", "profile_class_id\n1\n"))
    assert "refused" in result.stderr and "nothing changed" in result.stderr
    assert "gsp_group.csv" in result.stderr and "line 3" in result.stderr
    assert "line 4" in result.stderr
    assert "profile_class" in result.stderr
    assert draft_show(app) == before
    result = refused(app, "load", "--format", "csv", str(tmp_path / "missing.csv"))
    assert "missing.csv" in result.stderr
    result = refused(app, "load", write(tmp_path, "Profile_Class.csv",
                                        PROFILE.replace("01/04/1996", "1996-04-01")))
    assert "dd/mm/yyyy" in result.stderr
    assert draft_show(app) == before


# --- publish ----------------------------------------------------------------------------------

def test_publish_refuses_an_empty_draft_unless_forced(app: Flask, client: FlaskClient,
                                                      tmp_path: Path) -> None:
    ok(app, "load", "--format", "csv", write(tmp_path, "gsp_group.csv", GSP))
    assert last_line(ok(app, "publish", "--version", "370")) == "370"
    result = refused(app, "publish")
    assert "empty" in result.stderr
    assert get(client, "/versions/latest")["version"] == 370
    result = ok(app, "publish", "--force")
    assert last_line(result) == "371"
    assert get(client, "/versions/371")["sha256"] == get(client, "/versions/370")["sha256"]


def test_publish_refuses_a_wrong_version_number(app: Flask, client: FlaskClient,
                                                tmp_path: Path) -> None:
    ok(app, "load", "--format", "csv", write(tmp_path, "gsp_group.csv", GSP))
    ok(app, "publish", "--version", "370")
    ok(app, "load", "--format", "csv", write(tmp_path, "market_role.csv", ROLES))
    result = refused(app, "publish", "--version", "369")
    assert "370" in result.stderr and "371" in result.stderr
    assert isd(app, "publish", "--go-live", "04/12/2025").exit_code != 0
    assert get(client, "/versions/latest")["version"] == 370
    assert draft_show(app)["market_role"]["inserts"] == 2
    assert last_line(ok(app, "publish", "--version", "376")) == "376"
    assert get(client, "/versions/latest")["previous_version"] == 370


# --- draft ------------------------------------------------------------------------------------

def test_draft_show_and_discard(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    assert draft_show(app) == {}
    ok(app, "load", "--format", "csv", write(tmp_path, "gsp_group.csv", GSP))
    ok(app, "publish")
    ok(app, "load", "--format", "csv", write(
        tmp_path, "gsp_group.csv", "gsp_group_id,gsp_group_name\n_A,East Anglia\n_D,Mersey\n"))
    assert draft_show(app) == {"gsp_group": {"inserts": 1, "updates": 1, "deletes": 2}}
    result = ok(app, "draft", "discard")
    assert "discarded 4" in result.stdout
    assert draft_show(app) == {}
    assert refused(app, "publish").exit_code != 0


# --- seed -------------------------------------------------------------------------------------

def seed_record_count() -> int:
    total = 0
    for path in sorted((TEST_SEED / "records").glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as f:
            total += sum(1 for row in csv.reader(f) if row) - 1
    return total


def test_seed_loads_and_publishes_the_seed_data(app: Flask, client: FlaskClient) -> None:
    """The tests' seed (ISD_SEED_DIR) has no MDD version: it publishes as version 1. The
    project's own, a real MDD version, is tests/e2e/test_seed.py's."""
    result = ok(app, "seed")
    assert last_line(result) == "1"
    manifest = get(client, "/versions/1")
    assert manifest["record_count"] == seed_record_count() > 0
    assert manifest["go_live_date"] is not None
    groups = get(client, "/entities/gsp_group/records?limit=100")["records"]
    assert {"gsp_group_id": "_A", "gsp_group_name": "Eastern"} in groups
    assert draft_show(app) == {}


def test_seed_with_a_chosen_version(app: Flask, client: FlaskClient) -> None:
    assert last_line(ok(app, "seed", "--version", "370")) == "370"
    assert get(client, "/versions/latest")["version"] == 370


def test_seed_refuses_a_database_with_versions(app: Flask, client: FlaskClient) -> None:
    ok(app, "seed")
    manifest = get(client, "/versions/latest")
    result = refused(app, "seed")
    assert "already" in result.stderr
    assert get(client, "/versions/latest") == manifest


def test_seed_refuses_a_database_with_staged_records(app: Flask, client: FlaskClient,
                                                     tmp_path: Path) -> None:
    ok(app, "load", "--format", "csv", write(tmp_path, "gsp_group.csv",
                                             "gsp_group_id,gsp_group_name\n_X,Not seed data\n"))
    before = draft_show(app)
    refused(app, "seed")
    get(client, "/versions/latest", 404)
    assert draft_show(app) == before


# --- catalogue --------------------------------------------------------------------------------

def test_catalogue_add_entity_then_load_it(app: Flask, client: FlaskClient,
                                           tmp_path: Path) -> None:
    definition = write(tmp_path, "bsc_party.json", json.dumps(BSC_PARTY))
    result = ok(app, "catalogue", "add-entity", definition)
    assert "bsc_party" in last_line(result)
    entities = {e["id"]: e for e in get(client, "/catalogue")["entities"]}
    assert entities["bsc_party"]["key"] == ["bsc_party_id"]
    result = refused(app, "catalogue", "add-entity", definition)
    assert "already exists" in result.stderr
    result = ok(app, "load", write(tmp_path, "BSC_Party_1.csv",
                                   '"BSC Party ID","BSC Party Name"\n'
                                   '"EXAMPLE1","Example Energy plc"\n'))
    assert "inserted 1" in last_line(result)
    assert last_line(ok(app, "publish")) == "1"
    records = get(client, "/entities/bsc_party/records")["records"]
    assert records == [{"bsc_party_id": "EXAMPLE1", "bsc_party_name": "Example Energy plc"}]


@pytest.mark.parametrize("content", [
    "{not json",
    json.dumps({**BSC_PARTY, "key": ["no_such_field"]}),
    json.dumps({**BSC_PARTY, "source": "GSP_Group", "id": "other"}),
])
def test_catalogue_add_entity_refuses_a_bad_definition(app: Flask, client: FlaskClient,
                                                       tmp_path: Path, content: str) -> None:
    before = get(client, "/catalogue")
    refused(app, "catalogue", "add-entity", write(tmp_path, "bad.json", content))
    assert get(client, "/catalogue") == before


def test_catalogue_add_field(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    ok(app, "load", "--format", "csv", write(tmp_path, "gsp_group.csv", GSP))
    ok(app, "publish")
    result = ok(app, "catalogue", "add-field", "gsp_group",
                write(tmp_path, "region.json", json.dumps(REGION)))
    assert "gsp_group_region" in last_line(result)
    fields = {e["id"]: e for e in get(client, "/catalogue")["entities"]}["gsp_group"]["fields"]
    assert fields[-1]["id"] == "gsp_group_region" and fields[-1]["required"] is False
    assert last_line(ok(app, "publish")) == "2"
    records = get(client, "/entities/gsp_group/records")["records"]
    assert all(r["gsp_group_region"] is None for r in records) and len(records) == 3

    before = get(client, "/catalogue")
    required = write(tmp_path, "required.json",
                     json.dumps({**REGION, "id": "gsp_group_code", "name": "Code",
                                 "required": True}))
    result = refused(app, "catalogue", "add-field", "gsp_group", required)
    assert "optional" in result.stderr
    result = refused(app, "catalogue", "add-field", "no_such_entity",
                     write(tmp_path, "x.json", json.dumps(REGION)))
    assert "no_such_entity" in result.stderr
    refused(app, "catalogue", "add-field", "gsp_group",
            write(tmp_path, "again.json", json.dumps(REGION)))
    assert get(client, "/catalogue") == before


def test_the_command_lists_only_its_own_groups(app: Flask) -> None:
    """A library the app uses (flask-smorest's `openapi` group) adds nothing to `isd`."""
    listed = {line.split()[0] for line in ok(app, "--help").output.split("Commands:")[1]
              .splitlines() if line.strip()}
    assert listed == {"bench", "catalogue", "db", "downloads", "draft", "import-archive",
                      "load", "mirror", "publication", "publish", "release", "scheduler", "seed",
                      "serve", "token", "webhooks"}
