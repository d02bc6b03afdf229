"""Every version as a Frictionless Data Package, checked by the `frictionless` package over
HTTP (the served bytes, not our own parser): rows, primary keys, foreign keys, bytes and hash.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from frictionless import Package, validate

from tests.conftest import serving

API = "/api/v1"

pytestmark = pytest.mark.relations


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    """The app behind a real HTTP server on a free port; its base URL."""
    with serving(app) as base:
        yield base


def seed(app: Flask, version: int = 20) -> None:
    result = app.test_cli_runner().invoke(args=["seed", "--version", str(version)])
    assert result.exit_code == 0, result.output


def test_a_versions_data_package_validates_with_frictionless(
        app: Flask, client: FlaskClient, served: str) -> None:
    seed(app)
    url = f"{served}{API}/versions/20/datapackage.json"
    report = validate(url)
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    package = Package(url)
    manifest = client.get(f"{API}/versions/20").get_json()
    assert len(package.resources) == len(manifest["entities"])
    llfc = package.get_resource("line_loss_factor_class")
    assert llfc.schema.primary_key == ["Market Participant ID", "Line Loss Factor Class ID",
                                       "Effective From Settlement Date (LLFC)"]
    assert llfc.schema.foreign_keys == [{
        "fields": ["Market Participant ID", "Market Participant Role Code",
                   "Effective From Date (MPR)"],
        "reference": {"resource": "market_participant_role",
                      "fields": ["Market Participant ID", "Market Participant Role Code",
                                 "Effective From Date (MPR)"]}}]
    listed = {d["entity"]: d for d in manifest["downloads"] if d["format"] == "mdd-csv"}
    assert llfc.bytes == listed["line_loss_factor_class"]["size"]
    assert llfc.hash == "sha256:" + listed["line_loss_factor_class"]["sha256"]
    rows = llfc.read_rows()
    assert rows[0]["Effective From Settlement Date (LLFC)"].isoformat() == "1996-04-01"
    # Listed, hashed and cached like the other downloads.
    entry = next(d for d in manifest["downloads"] if d["format"] == "datapackage")
    response = client.get(entry["url"])
    assert response.get_json()["name"] == "isd-20"
    assert "immutable" in response.headers["Cache-Control"]
    sums = client.get(f"{API}/versions/20/SHA256SUMS").get_data(as_text=True)
    assert f"{entry['sha256']}  datapackage.json\n" in sums


def local_copy(client: FlaskClient, folder: Path) -> Path:
    """Version 20's data package and every file it names, saved as a participant would."""
    package = client.get(f"{API}/versions/20/datapackage.json")
    (folder / "mdd").mkdir(parents=True)
    for resource in package.get_json()["resources"]:
        (folder / resource["path"]).write_bytes(
            client.get(f"{API}/versions/20/{resource['path']}").get_data())
    (folder / "datapackage.json").write_bytes(package.get_data())
    return folder / "datapackage.json"


def test_frictionless_fails_a_tampered_csv_naming_the_broken_row_and_relation(
        app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    seed(app)
    descriptor = local_copy(client, tmp_path)
    assert validate(str(descriptor)).valid
    # A measurement requirement of a time pattern regime the version does not hold, added to
    # the local copy behind the package's back.
    with next(tmp_path.glob("mdd/Measurement_Requirement_20.csv")).open("ab") as f:
        f.write(b'"0393","99999"\n')
    report = validate(str(descriptor))
    assert not report.valid
    errors = report.flatten(["type", "note"])
    types = {t for t, _note in errors}
    assert {"foreign-key", "hash-count", "byte-count"} <= types, errors
    assert any("99999" in note for t, note in errors if t == "foreign-key")
