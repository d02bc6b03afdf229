"""Downloads: built once, served with strong ETags, immutable caching, 304, 206 and gzip, and
listed in the manifest and SHA256SUMS with the hashes of the bytes actually served."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from isd_service.adapters.download_files import ensure, existing
from isd_service.domain.formats import InputFile
from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer.publishing import publish
from tests.conftest import Rows, restore, saved_rows

API = "/api/v1"
IMMUTABLE = "max-age=31536000"

GSP_CHANGE = "gsp_group_id,gsp_group_name\n_A,Eastern (renamed)\n_Q,A New Group\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(client: FlaskClient, path: str, status: int = 200, **headers: str) -> TestResponse:
    response = client.get(API + path if path.startswith("/") and not path.startswith(API)
                          else path, headers=headers, buffered=True)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response


def publish_seed_and_change(app: Flask) -> None:
    """Version 1 from the seed data, version 2 with a GSP group renamed and one added."""
    runner = app.test_cli_runner()
    result = runner.invoke(args=["seed"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        from isd_service.service_layer.drafts import load

        load(uow(), files=[InputFile("gsp_group.csv", GSP_CHANGE.encode())], fmt="csv",
             mode="upsert", actor="test", organisation="ISDA")
        publish(uow(), actor="test", organisation="ISDA")


@pytest.fixture(scope="module")
def published_rows() -> list[Rows]:
    """The rows of the first two versions published (tokens aside), for the next tests."""
    return []


@pytest.fixture
def published(app: Flask, client: FlaskClient, published_rows: list[Rows]) -> FlaskClient:
    if published_rows:  # the same two versions, without publishing them again
        restore(app, published_rows[0], keep=("api_token",))
        return client
    publish_seed_and_change(app)
    published_rows.append(saved_rows(app, keep=("api_token",)))
    return client


def cache_control(response: TestResponse) -> set[str]:
    return {part.strip() for part in response.headers["Cache-Control"].split(",")}


VERSIONED = ["/versions/2/snapshot?format=json", "/versions/2/snapshot?format=ndjson",
             "/versions/2/snapshot?format=csv", "/versions/2/snapshot?format=json&entity=gsp_group",
             "/versions/2/mdd/GSP_Group.csv", "/deltas?from=1&to=2",
             "/deltas?from=0&to=2&format=ndjson", "/versions/2/SHA256SUMS", "/versions/2"]


@pytest.mark.parametrize("path", VERSIONED)
def test_a_url_naming_a_version_is_immutable_with_a_strong_etag_of_its_bytes(
    published: FlaskClient, path: str
) -> None:
    response = fetch(published, path)
    body = response.get_data()
    assert response.headers["ETag"] == f'"{sha256(body)}"'
    assert cache_control(response) == {"public", IMMUTABLE, "immutable"}
    assert int(response.headers["Content-Length"]) == len(body)

    again = fetch(published, path, 304, **{"If-None-Match": response.headers["ETag"]})
    assert again.get_data() == b""
    assert again.headers["ETag"] == response.headers["ETag"]
    other = fetch(published, path, **{"If-None-Match": '"0000"'})
    assert other.get_data() == body


def test_the_same_url_serves_the_same_bytes_every_time(published: FlaskClient) -> None:
    first = fetch(published, "/versions/1/snapshot?format=ndjson").get_data()
    assert fetch(published, "/versions/1/snapshot?format=ndjson").get_data() == first
    # ...and matches the version's hash: the json snapshot carries it.
    manifest = fetch(published, "/versions/1").get_json()
    assert first.splitlines()[0].decode().startswith('{"version":1,')
    assert manifest["sha256"] in first.splitlines()[0].decode()


def test_a_range_answers_206_and_the_parts_make_the_whole(published: FlaskClient) -> None:
    path = "/versions/2/snapshot?format=json"
    whole = fetch(published, path).get_data()
    assert len(whole) > 200
    head = fetch(published, path, 206, Range="bytes=0-99")
    assert head.headers["Content-Range"] == f"bytes 0-99/{len(whole)}"
    assert head.headers["ETag"] == f'"{sha256(whole)}"'
    tail = fetch(published, path, 206, Range="bytes=100-")
    assert head.get_data() + tail.get_data() == whole
    # If-Range with a stale validator: the whole file again, not a piece of the wrong one.
    fresh = fetch(published, path, 200, Range="bytes=100-", **{"If-Range": '"stale"'})
    assert fresh.get_data() == whole


def test_an_unsatisfiable_range_answers_416_saying_the_size(published: FlaskClient) -> None:
    path = "/versions/2/mdd/GSP_Group.csv"
    size = len(fetch(published, path).get_data())
    response = fetch(published, path, 416, Range=f"bytes={size + 10}-")
    assert response.headers["Content-Range"] == f"bytes */{size}"
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == 416


@pytest.mark.parametrize("path", ["/versions/2/snapshot?format=json",
                                  "/versions/2/mdd/GSP_Group.csv", "/deltas?from=1&to=2"])
def test_gzip_is_offered_from_a_stored_copy(published: FlaskClient, path: str) -> None:
    plain = fetch(published, path)
    zipped = fetch(published, path, **{"Accept-Encoding": "gzip, br"})
    assert plain.headers.get("Content-Encoding") is None
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in plain.headers["Vary"]
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert gzip.decompress(zipped.get_data()) == plain.get_data()
    # Each representation has its own strong validator.
    assert zipped.headers["ETag"] == f'"{sha256(zipped.get_data())}"'
    assert zipped.headers["ETag"] != plain.headers["ETag"]
    assert fetch(published, path, **{"Accept-Encoding": "gzip, br"}).get_data() == \
        zipped.get_data()
    refused = fetch(published, path, **{"Accept-Encoding": "gzip;q=0, identity"})
    assert refused.headers.get("Content-Encoding") is None


def test_a_zip_is_not_gzipped_again(published: FlaskClient) -> None:
    response = fetch(published, "/versions/2/snapshot?format=csv", **{"Accept-Encoding": "gzip"})
    assert response.headers.get("Content-Encoding") is None
    assert response.get_data()[:2] == b"PK"


def test_the_manifest_lists_every_download_with_the_hash_of_the_bytes_served(
    published: FlaskClient, tmp_path: Path
) -> None:
    manifest = fetch(published, "/versions/2").get_json()
    listed = manifest["downloads"]
    formats = {(d["format"], d["entity"]) for d in listed}
    assert {("json", None), ("ndjson", None), ("csv", None),
            ("mdd-csv", "gsp_group")} <= formats
    for item in listed:
        body = fetch(published, item["url"]).get_data()
        assert (len(body), sha256(body)) == (item["size"], item["sha256"]), item["url"]
        if item["format"] == "mdd-csv":
            assert item["url"].endswith("/" + item["name"])
        (tmp_path / item["name"]).write_bytes(body)

    sums = fetch(published, "/versions/2/SHA256SUMS")
    assert sums.mimetype == "text/plain"
    lines = sums.get_data(as_text=True).splitlines()
    assert lines == [f"{d['sha256']}  {d['name']}" for d in listed]
    (tmp_path / "SHA256SUMS").write_bytes(sums.get_data())
    if shutil.which("sha256sum"):
        checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path,
                                 capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    # A byte changed is caught.
    name = listed[0]["name"]
    (tmp_path / name).write_bytes(b"x" + (tmp_path / name).read_bytes()[1:])
    if shutil.which("sha256sum"):
        checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path,
                                 capture_output=True, text=True, timeout=30)
        assert checked.returncode != 0


def test_a_delta_names_both_versions_and_their_snapshot_hashes(published: FlaskClient) -> None:
    change_set = fetch(published, "/deltas?from=1&to=2").get_json()
    one = fetch(published, "/versions/1").get_json()
    two = fetch(published, "/versions/2").get_json()
    assert (change_set["from"], change_set["to"]) == (1, 2)
    assert (change_set["from_sha256"], change_set["to_sha256"]) == (one["sha256"], two["sha256"])
    assert {c["op"] for c in change_set["changes"]} == {"insert", "update"}


def test_moving_urls_get_a_short_max_age_and_an_etag_that_changes(
    app: Flask, published: FlaskClient
) -> None:
    moving = ["/versions/latest", "/versions", "/deltas?from=1"]
    before: dict[str, Any] = {}
    for path in moving:
        response = fetch(published, path)
        assert cache_control(response) == {"public", "max-age=60"}, path
        assert response.headers["ETag"] == f'"{sha256(response.get_data())}"'
        fetch(published, path, 304, **{"If-None-Match": response.headers["ETag"]})
        before[path] = response
    with app.app_context():
        from isd_service.service_layer.drafts import load

        load(uow(), files=[InputFile("gsp_group.csv", b"gsp_group_id,gsp_group_name\n"
                                                         b"_Q,Renamed again\n")],
             fmt="csv", mode="upsert", actor="test", organisation="ISDA")
        publish(uow(), actor="test", organisation="ISDA")
    for path in moving:
        response = fetch(published, path, 200,
                         **{"If-None-Match": before[path].headers["ETag"]})
        assert response.get_data() != before[path].get_data(), path
    assert fetch(published, "/versions/latest").get_json()["version"] == 3
    # The open-ended delta now ends at 3, and carries what the closed one carries.
    assert fetch(published, "/deltas?from=1").get_data() == \
        fetch(published, "/deltas?from=1&to=3").get_data()


def test_head_gives_the_headers_without_the_body(published: FlaskClient) -> None:
    full = fetch(published, "/versions/2/snapshot?format=json")
    head = published.head(API + "/versions/2/snapshot?format=json", buffered=True)
    assert head.status_code == 200
    assert head.get_data() == b""
    assert head.headers["ETag"] == full.headers["ETag"]
    assert head.headers["Content-Length"] == full.headers["Content-Length"]


def test_files_are_stored_once_under_a_folder_named_for_the_version(
    app: Flask, published: FlaskClient
) -> None:
    root = Path(app.config["DOWNLOADS_DIR"])
    listed = fetch(published, "/versions/2").get_json()["downloads"]
    # Reading a manifest builds no file: it hashes the downloads as their bytes are made.
    assert not root.exists() or not [p for p in root.rglob("*") if p.is_file()]
    body = fetch(published, "/versions/2/snapshot?format=json").get_data()
    folders = sorted(p.name for p in root.iterdir())
    assert [f.split("-")[0] for f in folders] == ["2"]
    stored = root / folders[0] / "snapshot.json"
    assert stored.read_bytes() == body
    [entry] = [e for e in listed if e["format"] == "json"]
    assert (entry["size"], entry["sha256"]) == (len(body), sha256(body))
    assert gzip.decompress((root / folders[0] / "snapshot.json.gz").read_bytes()) == body
    assert not list(root.rglob("*.tmp"))


def test_isd_downloads_build_makes_every_listed_file_before_any_request(
    app: Flask, client: FlaskClient
) -> None:
    publish_seed_and_change(app)
    root = Path(app.config["DOWNLOADS_DIR"])
    assert not root.exists() or not any(root.rglob("snapshot*"))
    result = app.test_cli_runner().invoke(args=["downloads", "build"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("version 2: ")
    [folder] = [p for p in root.iterdir() if p.name.startswith("2-")]
    built = {p.name: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    assert {"snapshot.json", "snapshot.ndjson", "snapshot.zip", "SHA256SUMS",
            "GSP_Group_2.csv"} <= set(built)
    # Every listed download is served from those files as they are: nothing is rebuilt.
    manifest = fetch(client, "/versions/2").get_json()
    for entry in manifest["downloads"]:
        assert sha256(fetch(client, entry["url"]).get_data()) == entry["sha256"]
    sums = fetch(client, "/versions/2/SHA256SUMS").get_data()
    assert sums == (folder / "SHA256SUMS").read_bytes()
    assert {p.name: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == built
    again = app.test_cli_runner().invoke(args=["downloads", "build", "1"])
    assert again.exit_code == 0 and again.output.startswith("version 1: "), again.output
    missing = app.test_cli_runner().invoke(args=["downloads", "build", "9"])
    assert missing.exit_code != 0 and "no version 9" in missing.output


def test_publish_builds_the_downloads_when_configured(app: Flask) -> None:
    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed"]).exit_code == 0
    root = Path(app.config["DOWNLOADS_DIR"])
    assert not root.exists() or not any(root.iterdir())  # off by default
    with app.app_context():
        from isd_service.service_layer.drafts import load

        load(uow(), files=[InputFile("gsp_group.csv", GSP_CHANGE.encode())], fmt="csv",
             mode="upsert", actor="test", organisation="ISDA")
    app.config["BUILD_DOWNLOADS"] = True
    result = runner.invoke(args=["publish"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "2"
    [folder] = [p for p in root.iterdir() if p.name.startswith("2-")]
    assert (folder / "snapshot.ndjson").is_file() and (folder / "SHA256SUMS").is_file()


def test_a_second_machine_builds_the_same_bytes(
    app: Flask, published: FlaskClient, tmp_path: Path
) -> None:
    from tests.conftest import make_app

    manifest = fetch(published, "/versions/2").get_json()
    other = make_app(app.config["DATABASE_URL"], tmp_path / "other")
    try:
        assert other.config["DOWNLOADS_DIR"] != app.config["DOWNLOADS_DIR"]
        again = other.test_client().get(API + "/versions/2", buffered=True).get_json()
        assert again["downloads"] == manifest["downloads"]
    finally:
        other.extensions["isd_db"].engine.dispose()


def test_unknown_version_entity_or_file_is_a_404_problem(published: FlaskClient) -> None:
    for path in ("/versions/9/snapshot?format=json", "/versions/9/SHA256SUMS",
                 "/versions/2/mdd/No_Such.csv", "/versions/2/snapshot?entity=nope",
                 "/deltas?from=1&to=9"):
        response = fetch(published, path, 404)
        assert response.mimetype == "application/problem+json"


# --- the file store on its own (no database) ------------------------------------------------

def test_concurrent_builders_never_expose_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "v" / "big.json"
    content = b"".join(b"%08d\n" % i for i in range(200_000))
    seen: list[bytes] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def write() -> Iterator[bytes]:
        for i in range(0, len(content), 65536):
            yield content[i:i + 65536]

    def build() -> None:
        try:
            built = ensure(target, write, compress=True)
            assert built.sha256 == sha256(content)
        except BaseException as exc:  # reported by the assertions below
            errors.append(exc)

    def read() -> None:
        while not done.is_set():
            found = existing(target)
            if found is not None:
                seen.append(found.path.read_bytes())
            time.sleep(0.001)  # let the builders have the interpreter lock

    reader = threading.Thread(target=read)
    reader.start()
    builders = [threading.Thread(target=build) for _ in range(4)]
    for t in builders:
        t.start()
    for t in builders:
        t.join(timeout=60)
    done.set()
    reader.join(timeout=60)
    assert not errors
    assert all(data == content for data in seen)
    assert target.read_bytes() == content
    assert gzip.decompress(target.with_name("big.json.gz").read_bytes()) == content
    assert sorted(p.name for p in target.parent.iterdir()) == [
        ".big.json.lock", "big.json", "big.json.gz", "big.json.meta.json"]


def test_a_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "broken.json"

    def write() -> Iterator[bytes]:
        yield b"half"
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        ensure(target, write, compress=True)
    # Only the (empty) lock file stays: no temporary file, nothing that looks built.
    assert [p.name for p in tmp_path.iterdir()] == [".broken.json.lock"]
    assert existing(target) is None


# --- signed manifests -----------------------------------------------------------------------

def test_a_manifest_is_signed_with_the_configured_ed25519_key(
    app: Flask, published: FlaskClient, tmp_path: Path
) -> None:
    import base64

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    assert fetch(published, "/versions/2/manifest.sig", 404).mimetype == \
        "application/problem+json"
    assert fetch(published, "/signing-key", 404).get_json()["status"] == 404
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    app.config["SIGNING_KEY_FILE"] = str(key_file)

    public = serialization.load_pem_public_key(fetch(published, "/signing-key").get_data())
    assert isinstance(public, Ed25519PublicKey)
    manifest = fetch(published, "/versions/2").get_data()
    signed = fetch(published, "/versions/2/manifest.sig")
    assert cache_control(signed) == {"public", IMMUTABLE, "immutable"}
    signature = base64.b64decode(signed.get_data())
    public.verify(signature, manifest)  # raises if the signature does not match
    with pytest.raises(InvalidSignature):
        public.verify(signature, manifest.replace(b'"version":2', b'"version":3'))
    with pytest.raises(InvalidSignature):
        public.verify(signature, fetch(published, "/versions/1").get_data())


# --- the benchmark's synthetic versions -------------------------------------------------------

def test_bench_generate_writes_loadable_versions_shaped_like_mdd_deterministically(
    app: Flask, tmp_path: Path
) -> None:
    runner = app.test_cli_runner()
    for out in ("a", "b"):
        result = runner.invoke(args=["bench", "generate", "--records", "5000", "--versions",
                                     "2", "--out", str(tmp_path / out), "--seed", "7"])
        assert result.exit_code == 0, result.output
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.csv"))
    assert len(files) == 30
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    sizes = {p.name: len(p.read_text().splitlines()) - 1 for p in (tmp_path / "a/1").iterdir()}
    assert max(sizes, key=sizes.__getitem__) == "Line_Loss_Factor_Class_1.csv"
    assert 4900 <= sum(sizes.values()) <= 5100

    from isd_service.service_layer.drafts import load

    with app.app_context():
        first = load(uow(), files=[InputFile(p.name, p.read_bytes())
                                       for p in sorted((tmp_path / "a/1").iterdir())],
                     actor="test", organisation="ISDA")
        publish(uow(), actor="test", organisation="ISDA")
        second = load(uow(), files=[InputFile(p.name, p.read_bytes())
                                        for p in sorted((tmp_path / "a/2").iterdir())],
                      actor="test", organisation="ISDA")
    total = first.inserted
    changed = second.inserted + second.updated + second.deleted
    assert total == sum(sizes.values())
    assert 0.005 * total <= changed <= 0.02 * total, (changed, total)
