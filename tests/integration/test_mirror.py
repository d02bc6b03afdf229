"""Path-only URLs and `isd mirror`: the same bytes, ETag and caching as the URLs with a query,
and a mirror folder that is an exact copy of what the application answers for each path."""

from __future__ import annotations

import functools
import hashlib
import http.server
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from isd_service.adapters.mirror_targets import DirectoryTarget
from isd_service.domain import delta_chain
from isd_service.domain.formats import InputFile
from isd_service.entrypoints.api.caching import downloads_root
from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer.drafts import load
from isd_service.service_layer.mirror import StaticFile, write_mirror
from isd_service.service_layer.publishing import publish
from isd_service.sync import client as sync_client
from isd_service.sync import local
from tests.conftest import http_serving

API = "/api/v1"


def publish_versions(app: Flask, count: int) -> list[int]:
    """The test seed as version 1, then ``count - 1`` versions each renaming a GSP group."""
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    with app.app_context():
        for n in range(2, count + 1):
            change = f"gsp_group_id,gsp_group_name\n_A,Eastern {n}\n_B,East Midlands {n}\n"
            load(uow(), files=[InputFile("gsp_group.csv", change.encode())], fmt="csv",
                 mode="upsert", actor="test", organisation="ISDA")
            publish(uow(), actor="test", organisation="ISDA")
    return list(range(1, count + 1))


def mirror(app: Flask, where: Path | str, *extra: str) -> Any:
    return app.test_cli_runner().invoke(args=["mirror", str(where), *extra])


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_path_only_urls_answer_as_the_urls_with_a_query(app: Flask,
                                                        client: FlaskClient) -> None:
    publish_versions(app, 2)
    pairs = [("/versions/2/manifest.json", "/versions/2"),
             ("/versions/latest.json", "/versions/latest"),
             ("/versions/2/snapshot.json", "/versions/2/snapshot?format=json"),
             ("/versions/2/snapshot.ndjson", "/versions/2/snapshot?format=ndjson"),
             ("/versions/2/snapshot.csv.zip", "/versions/2/snapshot?format=csv"),
             ("/deltas/1-2.json", "/deltas?from=1&to=2&format=json"),
             ("/deltas/1-2.ndjson", "/deltas?from=1&to=2&format=ndjson"),
             ("/deltas/0-2.ndjson", "/deltas?from=0&to=2&format=ndjson")]
    for path, with_query in pairs:
        for headers in ({}, {"Accept-Encoding": "gzip"}):
            new = client.get(API + path, headers=headers)
            old = client.get(API + with_query, headers=headers)
            assert new.status_code == old.status_code == 200, path
            assert new.get_data() == old.get_data(), path
            for header in ("ETag", "Cache-Control", "Content-Type", "Content-Encoding"):
                assert new.headers.get(header) == old.headers.get(header), (path, header)
    # The catalogue a version was published with, as /catalogue?version=N lists it.
    catalogue = client.get(f"{API}/versions/2/catalogue.json")
    assert catalogue.get_json() == client.get(f"{API}/catalogue?version=2").get_json()
    assert "immutable" in catalogue.headers["Cache-Control"]
    assert client.get(f"{API}/versions/index.json").get_json() == {"versions": [1, 2]}
    # Conditional and partial requests as on every download.
    snapshot = client.get(f"{API}/versions/2/snapshot.ndjson")
    again = client.get(f"{API}/versions/2/snapshot.ndjson",
                       headers={"If-None-Match": snapshot.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""
    part = client.get(f"{API}/versions/2/snapshot.ndjson", headers={"Range": "bytes=0-9"},
                      buffered=True)
    assert part.status_code == 206 and part.get_data() == snapshot.get_data()[:10]


def test_the_manifest_lists_path_only_urls(app: Flask, client: FlaskClient) -> None:
    publish_versions(app, 1)
    listed = client.get(f"{API}/versions/1").get_json()["downloads"]
    urls = {d["url"] for d in listed}
    assert {f"{API}/versions/1/snapshot.json", f"{API}/versions/1/snapshot.ndjson",
            f"{API}/versions/1/snapshot.csv.zip", f"{API}/versions/1/mdd.zip"} <= urls
    assert all("?" not in url for url in urls)
    for entry in listed:
        body = client.get(entry["url"]).get_data()
        assert hashlib.sha256(body).hexdigest() == entry["sha256"], entry["url"]


@pytest.mark.parametrize(("path", "status", "says"), [
    ("/deltas/2-1.json", 400, "a delta goes forward"),
    ("/deltas/1-9.json", 404, "version 9 has not been published"),
    ("/deltas/1-2.xml", 404, "not a delta's name"),
    ("/deltas/01-2.json", 404, "not a delta's name"),
    ("/deltas/1_2.json", 404, "not a delta's name"),
    ("/versions/9/manifest.json", 404, "version 9 has not been published"),
    ("/versions/9/snapshot.csv.zip", 404, "version 9 has not been published"),
    ("/versions/9/catalogue.json", 404, "version 9 has not been published"),
])
def test_bad_path_only_urls_are_clear_problems(app: Flask, client: FlaskClient, path: str,
                                               status: int, says: str) -> None:
    publish_versions(app, 2)
    response = client.get(API + path)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert says in response.get_json()["detail"]


def test_nothing_published_has_no_latest_nor_index(app: Flask, client: FlaskClient,
                                                   tmp_path: Path) -> None:
    for path in ("/versions/latest.json", "/versions/index.json"):
        assert client.get(API + path).status_code == 404
    result = mirror(app, tmp_path / "m")
    assert result.exit_code == 1
    assert "nothing has been published" in result.output
    assert not (tmp_path / "m").exists()


def test_a_mirror_is_an_exact_copy_of_every_path(app: Flask, client: FlaskClient,
                                                 tmp_path: Path) -> None:
    publish_versions(app, 6)
    root = tmp_path / "mirror"
    result = mirror(app, root)
    assert result.exit_code == 0, result.output
    assert "versions 1 to 6 (6)" in result.output
    files = files_of(root)
    for path, data in files.items():
        response = client.get("/" + path)
        assert response.status_code == 200, path
        assert response.get_data() == data, path
    # Every URL of a version is there: each download the manifest lists, and the rest.
    for n in range(1, 7):
        manifest = client.get(f"{API}/versions/{n}").get_json()
        for entry in manifest["downloads"]:
            assert entry["url"].lstrip("/") in files, entry["url"]
            if entry["format"] == "mdd-csv":  # also under the stem alone
                stem_url = entry["url"].replace(f"_{n}.csv", ".csv")
                assert files[stem_url.lstrip("/")] == files[entry["url"].lstrip("/")]
        for name in ("manifest.json", "catalogue.json", "SHA256SUMS", "snapshot.json",
                     "snapshot.ndjson", "snapshot.csv.zip", "mdd.zip"):
            assert f"api/v1/versions/{n}/{name}" in files
    assert "api/v1/versions/latest.json" in files and "api/v1/versions/index.json" in files
    # Deltas: every consecutive pair, and the skip deltas of strides 2 and 4.
    deltas = sorted(p.split("/")[-1] for p in files if p.startswith("api/v1/deltas/")
                    and p.endswith(".ndjson"))
    expected = sorted(f"{a + 1}-{b + 1}.ndjson" for a, b in delta_chain.pairs(6))
    assert deltas == expected
    assert {"1-2.ndjson", "2-3.ndjson", "5-6.ndjson", "1-3.ndjson", "3-5.ndjson",
            "1-5.ndjson"} <= set(deltas) and "2-4.ndjson" not in deltas
    assert not [p for p in files if "/." in "/" + p]  # no temporary file left behind


def test_a_mirror_is_incremental_and_writes_latest_last(app: Flask, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    publish_versions(app, 3)
    root = tmp_path / "mirror"
    order: list[str] = []
    real_put = DirectoryTarget.put

    def recording_put(self: DirectoryTarget, file: StaticFile) -> None:
        order.append(file.path)
        real_put(self, file)

    monkeypatch.setattr(DirectoryTarget, "put", recording_put)
    assert mirror(app, root).exit_code == 0
    assert order[-2:] == ["api/v1/versions/index.json", "api/v1/versions/latest.json"]
    first_of_3 = order.index("api/v1/versions/3/snapshot.json")
    assert all(not p.startswith("api/v1/versions/3/") for p in order[:first_of_3])
    before = {p: (root / p).stat().st_mtime_ns for p in order}

    order.clear()
    again = mirror(app, root)
    assert again.exit_code == 0 and order == []
    assert f"0 files written (0 bytes), {len(before)} already there" in again.output

    # A file damaged in the mirror is written again; a new version adds only its own files.
    (root / "api/v1/versions/2/snapshot.json").write_text("damaged")
    with app.app_context():
        load(uow(), files=[InputFile("gsp_group.csv", b"gsp_group_id,gsp_group_name\n"
                                                      b"_A,Eastern again\n")],
             fmt="csv", mode="upsert", actor="test", organisation="ISDA")
        publish(uow(), actor="test", organisation="ISDA")
    assert mirror(app, root).exit_code == 0
    assert "api/v1/versions/2/snapshot.json" in order
    assert all(p.startswith(("api/v1/versions/4/", "api/v1/deltas/3-4.", "api/v1/deltas/1-4.",
                             "api/v1/versions/2/snapshot.json", "api/v1/versions/latest.json",
                             "api/v1/versions/index.json")) for p in order), order
    assert all((root / p).stat().st_mtime_ns == mtime for p, mtime in before.items()
               if p not in order)


def test_mirror_from_a_version(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    publish_versions(app, 5)
    root = tmp_path / "mirror"
    result = mirror(app, root, "--from", "3")
    assert result.exit_code == 0, result.output
    versions = {p.name for p in (root / "api/v1/versions").iterdir() if p.is_dir()}
    assert versions == {"3", "4", "5"}
    deltas = {p.name for p in (root / "api/v1/deltas").iterdir()}
    assert deltas == {"3-4.json", "3-4.ndjson", "4-5.json", "4-5.ndjson", "3-5.json",
                      "3-5.ndjson"}
    # index.json still lists every version: the positions skip deltas are counted in.
    assert (root / "api/v1/versions/index.json").read_bytes() == client.get(
        f"{API}/versions/index.json").get_data()


def test_mirror_refuses_bad_targets_and_changes_nothing(app: Flask, tmp_path: Path) -> None:
    publish_versions(app, 2)
    (tmp_path / "a-file").write_text("x")
    for where, says in [(tmp_path / "a-file", "exists and is not a folder"),
                        ("ftp://host/x", "a folder or an s3:// bucket"),
                        ("s3://", "not an s3://bucket")]:
        result = mirror(app, where)
        assert result.exit_code == 1 and says in result.output, result.output
    result = mirror(app, tmp_path / "m", "--from", "7")
    assert result.exit_code == 1
    assert "version 7 has not been published (published: 1 to 2)" in result.output
    assert not (tmp_path / "m").exists()


def test_the_write_mirror_use_case_reports_what_it_did(app: Flask, tmp_path: Path) -> None:
    publish_versions(app, 2)
    with app.app_context():
        report = write_mirror(uow().session, downloads_root(), DirectoryTarget(tmp_path / "m"))
    assert report.versions == [1, 2] and report.deltas == 1 and report.kept == 0
    assert report.written == len(files_of(tmp_path / "m"))
    assert report.bytes_written == sum(len(b) for b in files_of(tmp_path / "m").values())


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    """A plain static file server: the simplest web server a mirror can be put behind."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def static_server(root: Path) -> AbstractContextManager[str]:
    return http_serving(functools.partial(QuietFiles, directory=str(root)))


def test_isd_sync_from_a_mirror_written_from_a_later_version_takes_the_snapshot(
        app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    publish_versions(app, 5)
    whole, partial = tmp_path / "whole", tmp_path / "partial"
    assert mirror(app, whole).exit_code == 0
    assert mirror(app, partial, "--from", "3").exit_code == 0
    expected = client.get(f"{API}/versions/5/snapshot.json").get_json()["entities"]
    with static_server(whole) as whole_url, static_server(partial) as partial_url:
        old, recent = tmp_path / "old", tmp_path / "recent"
        assert sync_client.pull(whole_url, old, version=1).mode == "snapshot"
        assert sync_client.pull(whole_url, recent, version=3).mode == "snapshot"
        # Holding 3 (position 2): the partial mirror has the skip delta 3-5.
        result = sync_client.pull(partial_url, recent)
        assert (result.mode, result.version, result.deltas) == ("delta", 5, 1)
        # Holding 1: no delta from it there, so the snapshot of 5 (and nothing changed
        # before it verified).
        result = sync_client.pull(partial_url, old)
        assert (result.mode, result.version) == ("snapshot", 5)
        for root in (old, recent):
            state = local.read_state(root)
            assert state is not None and local.read_records(root, state) == expected
        # A mirror that lacks the version asked for is a clear error.
        with pytest.raises(sync_client.SyncError, match="HTTP 404"):
            sync_client.pull(partial_url, tmp_path / "none", version=2)


def test_isd_sync_chains_deltas_across_a_catalogue_change(app: Flask, client: FlaskClient,
                                                          tmp_path: Path) -> None:
    """Each hop is applied with its own version's catalogue: a field added in version 2
    comes through a chain 1 -> 3 -> 4 as null, then with the value version 3 gives it."""
    publish_versions(app, 1)
    region = tmp_path / "region.json"
    region.write_text('{"id": "gsp_group_region", "name": "Region", "type": "string", '
                      '"max_length": 20, "required": false}')
    runner = app.test_cli_runner()
    assert runner.invoke(args=["catalogue", "add-field", "gsp_group", str(region)]).exit_code == 0
    assert runner.invoke(args=["publish", "--force"]).exit_code == 0
    with app.app_context():
        for n, name in ((3, "South"), (4, "North")):
            change = f"gsp_group_id,gsp_group_name,gsp_group_region\n_A,Eastern,{name}\n"
            load(uow(), files=[InputFile("gsp_group.csv", change.encode())], fmt="csv",
                 mode="upsert", actor="test", organisation="ISDA")
            assert publish(uow(), actor="test", organisation="ISDA").number == n
    root = tmp_path / "mirror"
    assert mirror(app, root).exit_code == 0
    with static_server(root) as url:
        copy = tmp_path / "copy"
        assert sync_client.pull(url, copy, version=1).mode == "snapshot"
        result = sync_client.pull(url, copy)  # positions 0 -> 3: 1-3, then 3-4
        assert (result.mode, result.version, result.deltas) == ("delta", 4, 2)
    state = local.read_state(copy)
    assert state is not None
    assert local.read_records(copy, state) == client.get(
        f"{API}/versions/4/snapshot.json").get_json()["entities"]
    gsp = {r["gsp_group_id"]: r for r in local.read_records(copy, state)["gsp_group"]}
    assert gsp["_A"]["gsp_group_region"] == "North" and gsp["_B"]["gsp_group_region"] is None
