"""End to end on the real MDD versions 370-374: load, publish, snapshots, deltas, MDD files.

The store is built once for the module with the `isd` CLI, as an administrator would; every
check then reads it over HTTP, as a participant would, and compares with the source files.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import itertools
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from isd_service import PROJECT_ROOT
from tests import hash_rule
from tests.conftest import (
    MDD_VERSIONS,
    database_of,
    make_app,
    mdd_files,
    publish_mdd,
    reset,
    serving,
)

CATALOGUE = json.loads((PROJECT_ROOT / "seed_data" / "catalogue.json").read_text())["entities"]
BY_SOURCE = {e["source"]: e for e in CATALOGUE}
KEYS = {e["id"]: e["key"] for e in CATALOGUE}


@pytest.fixture(scope="module")
def store(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """Load 370 and publish it as 370, then load 371-374 in replace mode, publishing each."""
    # Skip (no MDD files) before an app exists: a fixture that skips has no teardown, and an
    # engine left open would close its connections at some later garbage collection.
    files = {version: [str(p) for p in mdd_files(version)] for version in MDD_VERSIONS}
    app = make_app(database_url, tmp_path_factory.mktemp("mdd"))
    try:
        with app.app_context():
            reset(app)
        for version in MDD_VERSIONS:
            publish_mdd(app, version, files[version])
        yield app
    finally:
        database_of(app).engine.dispose()
        source_rows.cache_clear()


@pytest.fixture(scope="module")
def client(store: Flask) -> FlaskClient:
    return store.test_client()


@functools.cache  # the files never change: each is read once for the module
def source_rows(version: int, stem: str) -> tuple[list[str], list[list[str]]]:
    """A source file's header and rows; none for an entity the version's files lack."""
    path = next((p for p in mdd_files(version) if p.name == f"{stem}_{version}.csv"), None)
    if path is None:  # the combination entities are not among the 370-374 files
        return [], []
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def source_by_key(version: int, stem: str) -> dict[tuple[str, ...], tuple[str, ...]]:
    """Index a source file by its key columns, read straight from the CSV (no service code)."""
    entity = BY_SOURCE[stem]
    header, rows = source_rows(version, stem)
    if not rows:
        return {}
    names = {f["id"]: f["name"] for f in entity["fields"]}
    positions = [header.index(names[k]) for k in entity["key"]]
    return {tuple(row[i] for i in positions): tuple(row) for row in rows}


_SNAPSHOTS: dict[int, dict[str, list[dict[str, Any]]]] = {}


def snapshot(client: FlaskClient, version: int) -> dict[str, list[dict[str, Any]]]:
    """Version N's JSON snapshot (fetched once: published versions never change)."""
    if version not in _SNAPSHOTS:
        _SNAPSHOTS[version] = _fetch_snapshot(client, version)
    return _SNAPSHOTS[version]


def _fetch_snapshot(client: FlaskClient, version: int) -> dict[str, list[dict[str, Any]]]:
    response = client.get(f"/api/v1/versions/{version}/snapshot?format=json")
    assert response.status_code == 200
    body = response.get_json()
    assert body["version"] == version
    return body["entities"]


def key_of(entity_id: str, record: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(record[k]) for k in KEYS[entity_id])


def test_each_version_holds_exactly_the_source_records(client: FlaskClient) -> None:
    for version in MDD_VERSIONS:
        manifest = client.get(f"/api/v1/versions/{version}").get_json()
        for stem, entity in BY_SOURCE.items():
            if entity["source"].startswith("M1"):
                continue
            _, rows = source_rows(version, stem)
            assert manifest["entities"][entity["id"]]["records"] == len(rows), (version, stem)
        assert manifest["go_live_date"] == "2026-01-01"
        assert manifest["previous_version"] == (None if version == 370 else version - 1)


@pytest.mark.parametrize("old,new", [(0, 370), *itertools.combinations(MDD_VERSIONS, 2)])
def test_snapshot_plus_delta_is_the_next_snapshot(client: FlaskClient, old: int,
                                                  new: int) -> None:
    before = snapshot(client, old) if old else {}
    response = client.get(f"/api/v1/deltas?from={old}&to={new}")
    assert response.status_code == 200
    delta = response.get_json()
    assert (delta["from"], delta["to"]) == (old, new)
    state = {eid: {key_of(eid, r): r for r in records} for eid, records in before.items()}
    for change in delta["changes"]:
        entity_records = state.setdefault(change["entity"], {})
        key = tuple(str(v) for v in change["key"].values())
        if change["op"] == "insert":
            assert key not in entity_records
            entity_records[key] = change["record"]
        elif change["op"] == "update":
            assert entity_records[key] != change["record"]
            entity_records[key] = change["record"]
        else:
            assert change["record"] is None
            del entity_records[key]
    after = snapshot(client, new)
    assert {eid for eid, recs in state.items() if recs} <= after.keys()
    for eid, records in after.items():
        applied = sorted(state.get(eid, {}).items())
        assert [r for _, r in applied] == sorted(records, key=lambda r: key_of(eid, r)), eid
    if old:
        assert delta["from_sha256"] == client.get(f"/api/v1/versions/{old}").get_json()["sha256"]
    assert delta["to_sha256"] == client.get(f"/api/v1/versions/{new}").get_json()["sha256"]


@pytest.mark.parametrize("old,new", [*list(itertools.pairwise(MDD_VERSIONS)), (370, 374)])
def test_delta_counts_match_an_independent_diff_of_the_files(client: FlaskClient, old: int,
                                                            new: int) -> None:
    counted: dict[str, dict[str, int]] = {}
    for change in client.get(f"/api/v1/deltas?from={old}&to={new}").get_json()["changes"]:
        ops = counted.setdefault(change["entity"], {"insert": 0, "update": 0, "delete": 0})
        ops[change["op"]] += 1
    for stem, entity in BY_SOURCE.items():
        if stem.startswith("M1"):
            continue
        a, b = source_by_key(old, stem), source_by_key(new, stem)
        expected = {"insert": len(b.keys() - a.keys()),
                    "update": sum(1 for k in a.keys() & b.keys() if a[k] != b[k]),
                    "delete": len(a.keys() - b.keys())}
        got = counted.get(entity["id"], {"insert": 0, "update": 0, "delete": 0})
        assert got == expected, stem


def test_the_loads_counted_the_same_changes(client: FlaskClient, store: Flask) -> None:
    token = _token(store)
    loads = client.get("/api/v1/admin/loads", headers=token).get_json()["loads"]
    by_version = {ld["version"]: ld for ld in loads}
    for old, new in itertools.pairwise(MDD_VERSIONS):
        ops = {"insert": 0, "update": 0, "delete": 0}
        for change in client.get(f"/api/v1/deltas?from={old}&to={new}").get_json()["changes"]:
            ops[change["op"]] += 1
        load = by_version[new]
        assert (load["inserted"], load["updated"], load["deleted"]) == (
            ops["insert"], ops["update"], ops["delete"])
        assert len(load["files"]) == 15
        digest = hashlib.sha256(mdd_files(new)[0].read_bytes()).hexdigest()
        assert digest in {f["sha256"] for f in load["files"]}


def _token(app: Flask) -> dict[str, str]:
    from tests.conftest import token_for

    return {"Authorization": f"Bearer {token_for(app, 'loader')}"}


@pytest.mark.parametrize("version", MDD_VERSIONS)
def test_mdd_csv_export_is_the_source_file(client: FlaskClient, version: int) -> None:
    """Same header line, same rows byte for byte (rows sorted: file order is not significant)."""
    for path in mdd_files(version):
        stem = path.name.rsplit("_", 1)[0]
        response = client.get(f"/api/v1/versions/{version}/mdd/{stem}.csv")
        assert response.status_code == 200, stem
        served = response.data.split(b"\n")
        source = path.read_bytes().split(b"\n")
        assert served[0] == source[0], stem
        assert sorted(served) == sorted(source), stem


def test_manifest_hashes_are_the_documented_hash_of_the_snapshot(client: FlaskClient) -> None:
    for version in (370, 374):
        manifest = client.get(f"/api/v1/versions/{version}").get_json()
        assert manifest["hash_rule"] == 2
        entities = snapshot(client, version)
        catalogue = client.get(f"/api/v1/catalogue?version={version}").get_json()["entities"]
        keys = {e["id"]: e["key"] for e in catalogue}
        hashes = {}
        for eid, records in entities.items():
            # Served in key order; rule 2 composes the sha256 of the entity's key ranges.
            assert manifest["entities"][eid] == hash_rule.entity_hash(records, keys[eid], 2), eid
            hashes[eid] = manifest["entities"][eid]["sha256"]
        assert manifest["sha256"] == hash_rule.version_hash(catalogue, hashes)


def test_other_snapshot_formats_carry_the_same_records(client: FlaskClient) -> None:
    expected = snapshot(client, 372)
    lines = client.get("/api/v1/versions/372/snapshot?format=ndjson").data.decode().splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 372
    from_ndjson: dict[str, list[dict[str, Any]]] = {}
    for line in lines[1:]:
        item = json.loads(line)
        from_ndjson.setdefault(item["entity"], []).append(item["record"])
    assert {k: v for k, v in expected.items() if v} == from_ndjson
    archive = zipfile.ZipFile(io.BytesIO(
        client.get("/api/v1/versions/372/snapshot?format=csv").data))
    rows = list(csv.DictReader(io.TextIOWrapper(
        archive.open("line_loss_factor_class.csv"), encoding="utf-8")))
    as_text = [{k: "" if v is None else str(v) for k, v in r.items()}
               for r in expected["line_loss_factor_class"]]
    assert rows == as_text


def test_records_query_by_participant_and_settlement_date(client: FlaskClient) -> None:
    header, rows = source_rows(374, "Line_Loss_Factor_Class")
    col = {name: i for i, name in enumerate(header)}

    def in_force(row: list[str]) -> bool:
        start = _iso(row[col["Effective From Settlement Date (LLFC)"]])
        end = row[col["Effective To Settlement Date (LLFC)"]]
        return start <= "2026-04-01" and (not end or _iso(end) >= "2026-04-01")

    expected = sorted(row[col["Line Loss Factor Class ID"]] for row in rows
                      if row[col["Market Participant ID"]] == "EELC" and in_force(row))
    assert expected, "the check needs some records"
    got: list[str] = []
    url = ("/api/v1/entities/line_loss_factor_class/records?version=374"
           "&market_participant_id=EELC&effective_on=2026-04-01&limit=50")
    cursor = None
    while True:
        body = client.get(url + (f"&cursor={cursor}" if cursor else "")).get_json()
        got += [r["line_loss_factor_class_id"] for r in body["records"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(got) == expected


def _iso(ddmmyyyy: str) -> str:
    day, month, year = ddmmyyyy.split("/")
    return f"{year}-{month}-{day}"


def test_older_versions_are_unchanged_by_later_publications(client: FlaskClient,
                                                           store: Flask) -> None:
    first = client.get("/api/v1/versions/370/snapshot?format=ndjson").data
    token = {"Authorization": "Bearer " + _publisher(store)}
    response = client.post("/api/v1/admin/publications", json={"force": True}, headers=token)
    assert response.status_code == 201
    assert response.get_json()["version"] == 375
    assert response.get_json()["sha256"] == client.get(
        "/api/v1/versions/374").get_json()["sha256"]
    assert client.get("/api/v1/versions/370/snapshot?format=ndjson").data == first


def _publisher(app: Flask) -> str:
    from tests.conftest import token_for

    return token_for(app, "publisher")


# --- relations and the data package, checked by tools of their own -------------------------

def test_every_declared_relation_holds_in_the_source_files_of_every_version() -> None:
    """Read straight from the real CSV files (no service code): each relation the seed
    catalogue declares holds on 370-374, values compared as published."""
    declared = [(e, fk) for e in CATALOGUE for fk in e.get("foreign_keys", [])]
    assert len(declared) >= 10
    for version in MDD_VERSIONS:
        for entity, fk in declared:
            target = next(e for e in CATALOGUE if e["id"] == fk["reference"]["entity"])
            child_header, child_rows = source_rows(version, entity["source"])
            parent_header, parent_rows = source_rows(version, target["source"])
            names = {f["id"]: f["name"] for f in entity["fields"]}
            target_names = {f["id"]: f["name"] for f in target["fields"]}
            mine = [child_header.index(names[f]) for f in fk["fields"]]
            theirs = [parent_header.index(target_names[f]) for f in fk["reference"]["fields"]]
            held = {tuple(row[i] for i in theirs) for row in parent_rows}
            broken = [row for row in child_rows if any(row[i] for i in mine)
                      and tuple(row[i] for i in mine) not in held]
            assert not broken, (version, entity["id"], fk, broken[:3])


@pytest.fixture(scope="module")
def served(store: Flask) -> Iterator[str]:
    """The module's store behind a real HTTP server, for tools that fetch URLs."""
    with serving(store) as base:
        yield base


@pytest.mark.parametrize("version", MDD_VERSIONS)
def test_frictionless_validates_each_real_versions_data_package(
        client: FlaskClient, served: str, version: int) -> None:
    from frictionless import Package, validate

    url = f"{served}/api/v1/versions/{version}/datapackage.json"
    report = validate(url)
    assert report.valid, report.flatten(["resourceName", "rowNumber", "type", "note"])[:10]
    package = Package(url)
    with_keys = [r.name for r in package.resources if r.schema.foreign_keys]
    assert "line_loss_factor_class" in with_keys and "mtc_in_pes_area" in with_keys
    # Every row of every file was read.
    counts = {t.name: t.stats.get("rows") or 0 for t in report.tasks}
    manifest = client.get(f"/api/v1/versions/{version}").get_json()
    assert counts == {eid: info["records"] for eid, info in manifest["entities"].items()}
