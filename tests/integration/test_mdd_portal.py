"""The MDD portal's zip: every version served as one (`mdd.zip`, its members the very bytes
of the single MDD files), and a zip in the portal's naming loaded wherever files are."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from isd_service.domain import formats

API = "/api/v1"
ADMIN = f"{API}/admin"
Headers = dict[str, str]


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def post_load(client: FlaskClient, headers: Headers, name: str, data: bytes,
              **form: str) -> Any:
    return client.post(f"{ADMIN}/loads", headers=headers, content_type="multipart/form-data",
                       data={"format": "mdd-csv", "mode": "replace", **form,
                             "file": (io.BytesIO(data), name)})


def test_mdd_zip_holds_each_mdd_file_byte_for_byte_and_loads_back(
        app: Flask, client: FlaskClient, publisher_headers: Headers, tmp_path: Path) -> None:
    assert app.test_cli_runner().invoke(args=["seed", "--version", "380"]).exit_code == 0
    manifest = client.get(f"{API}/versions/380").get_json()
    listed = {d["format"]: d for d in manifest["downloads"]}
    entry = listed["mdd-zip"]
    assert (entry["url"], entry["entity"], entry["name"]) == (
        f"{API}/versions/380/mdd.zip", None, "MDD_380.zip")
    response = client.get(entry["url"])
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert "immutable" in response.headers["Cache-Control"]
    body = response.get_data()
    assert hashlib.sha256(body).hexdigest() == entry["sha256"] == response.headers[
        "ETag"].strip('"')
    sums = client.get(f"{API}/versions/380/SHA256SUMS").get_data(as_text=True)
    assert f"{entry['sha256']}  MDD_380.zip\n" in sums

    catalogue = client.get(f"{API}/catalogue?version=380").get_json()["entities"]
    # ISD-only entities (M16, M18) have no MDD file.
    mdd_sources = [e["source"] for e in catalogue if not re.fullmatch(r"M[0-9]+", e["source"])]
    assert len(mdd_sources) == 18  # the 15 files of ../shared/mdd and the 3 combinations
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        names = archive.namelist()
        assert names == [f"{source}_380.csv" for source in mdd_sources]
        for name in names:
            single = client.get(f"{API}/versions/380/mdd/{name}").get_data()
            assert archive.read(name) == single, name
    # Built once: the same bytes again, from the same file.
    assert client.get(entry["url"]).get_data() == body

    # The zip, as a participant downloaded it, loads into another version unchanged.
    loaded = post_load(client, publisher_headers, "MDD_380.zip", body)
    assert loaded.status_code == 201, loaded.get_json()
    counts = loaded.get_json()
    assert (counts["inserted"], counts["updated"], counts["deleted"]) == (0, 0, 0)
    assert counts["unchanged"] == sum(
        v["records"] for k, v in manifest["entities"].items()
        if k not in ("dip_market_role", "mpid_dip_id_mapping"))
    # And through the command line, as a file or inside a folder.
    (tmp_path / "portal").mkdir()
    (tmp_path / "portal" / "MDD_380.zip").write_bytes(body)
    for path in (tmp_path / "portal" / "MDD_380.zip", tmp_path / "portal"):
        result = app.test_cli_runner().invoke(args=["load", str(path)])
        assert result.exit_code == 0, result.output
        assert "inserted 0, updated 0, deleted 0" in result.output


def test_a_portal_zip_with_a_folder_and_an_archiver_s_hidden_files_loads(
        client: FlaskClient, publisher_headers: Headers) -> None:
    data = zipped({
        "MDD_381/GSP_Group_381.csv": b'"Gsp Group ID","GSP Group Name"\n"_A","Eastern"\n',
        "MDD_381/Market_Role_381.csv": b'"Market Participant Role Code",'
                                       b'"Market Role Description"\n"X","Supplier"\n',
        "__MACOSX/MDD_381/._GSP_Group_381.csv": b"\x00\x05\x16\x07",
        "MDD_381/.DS_Store": b"\x00\x00\x00\x01Bud1",
    })
    response = post_load(client, publisher_headers, "MDD_381.zip", data)
    assert response.status_code == 201, response.get_json()
    assert set(response.get_json()["entities"]) == {"gsp_group", "market_role"}
    assert response.get_json()["files"][0]["name"] == "MDD_381.zip"


@pytest.mark.parametrize(("name", "data", "message"), [
    ("MDD_382.zip", b"PK\x03\x04 not really a zip", "not a readable zip file"),
    ("MDD_382.zip", zipped({}), "holds no file"),
    ("MDD_382.zip", zipped({"GSP_Group_382.csv": b'"Gsp Group ID","GSP Group Name"\n',
                            "notes.txt": b"release notes"}), "'notes.txt' in the zip is not"),
    ("MDD_382.zip", zipped({"Unknown_Stem_382.csv": b'"A"\n"1"\n'}),
     "cannot tell which entity"),
])
def test_a_bad_zip_is_refused_whole_saying_why(
        client: FlaskClient, publisher_headers: Headers, name: str, data: bytes,
        message: str) -> None:
    response = post_load(client, publisher_headers, name, data)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert any(message in e["message"] for e in response.get_json()["errors"]), \
        response.get_json()
    assert client.get(f"{ADMIN}/loads", headers=publisher_headers).get_json()["loads"] == []


def test_a_zip_that_would_unpack_beyond_the_limit_is_refused(
        client: FlaskClient, publisher_headers: Headers,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "MAX_UNZIPPED_BYTES", 1000)
    data = zipped({"GSP_Group_383.csv": b'"Gsp Group ID","GSP Group Name"\n'
                                        + b'"_A","' + b"x" * 2000 + b'"\n'})
    assert len(data) < 1000
    response = post_load(client, publisher_headers, "MDD_383.zip", data)
    assert response.status_code == 422
    assert "would unpack to" in response.get_json()["errors"][0]["message"]
