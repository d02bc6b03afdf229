"""Every version as a Frictionless Data Package, checked by the `frictionless` package over
HTTP (the served bytes, not our own parser): rows, primary keys, foreign keys, bytes and hash.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from frictionless import Package, validate
from werkzeug.serving import make_server

API = "/api/v1"

pytestmark = pytest.mark.relations


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    """The app behind a real HTTP server on a free port; its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


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


def tamper(app: Flask, stem: str, change: bytes) -> None:
    """Change a built MDD file (and its gzip copy) on disk, as a bad mirror would."""
    folder = Path(app.config["DOWNLOADS_DIR"])
    path = next(folder.glob(f"*/mdd/{stem}_20.csv"))
    data = path.read_bytes() + change
    path.write_bytes(data)
    path.with_name(path.name + ".gz").write_bytes(gzip.compress(data))


def test_frictionless_fails_a_tampered_csv_naming_the_broken_row_and_relation(
        app: Flask, client: FlaskClient, served: str) -> None:
    seed(app)
    assert client.get(f"{API}/versions/20").status_code == 200  # builds every download
    # A measurement requirement of a time pattern regime the version does not hold.
    tamper(app, "Measurement_Requirement", b'"0393","99999"\n')
    report = validate(f"{served}{API}/versions/20/datapackage.json")
    assert not report.valid
    errors = report.flatten(["type", "note"])
    types = {t for t, _note in errors}
    assert {"foreign-key", "hash-count", "byte-count"} <= types, errors
    assert any("99999" in note for t, note in errors if t == "foreign-key")
