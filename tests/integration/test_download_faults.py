"""A failing downloads folder takes nothing away: faults injected for real.

The downloads folder is a small tmpfs mounted for the test: filled up (no space), remounted
read-only, or holding a file truncated or changed behind the service's back. Every public URL
of a version must then answer as it does with a healthy folder (the same bytes, hashes and
headers), the manifest must build no file, and GET /api/v1/health must say what is wrong.
Mounting needs root (as in CI); where it is impossible the tests say so and are skipped.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import gzip
import hashlib
import logging
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, text
from werkzeug.test import TestResponse

from tests.conftest import database_of
from tests.integration import test_downloads, test_http_hygiene

# Their fixtures: two published versions (the seed, then a change), an app whose database can
# be taken away.
published_rows = test_downloads.published_rows
published = test_downloads.published
flaky_app = test_http_hygiene.flaky_app

API = "/api/v1"
# Every public URL of version 2 (and those that move with the latest version).
VERSION_URLS = [
    "/versions/2", "/versions/latest", "/versions", "/catalogue?version=2",
    "/versions/2/SHA256SUMS",
    "/versions/2/snapshot?format=json", "/versions/2/snapshot?format=ndjson",
    "/versions/2/snapshot?format=csv", "/versions/2/snapshot?format=json&entity=gsp_group",
    "/versions/2/snapshot?format=csv&entity=gsp_group",
    "/versions/2/mdd/GSP_Group.csv", "/versions/2/mdd/Market_Role_2.csv",
    "/versions/2/mdd.zip",
    "/deltas?from=1&to=2", "/deltas?from=0&to=2&format=ndjson", "/deltas?from=1",
    "/deltas?from=1&to=2&entity=gsp_group",
    "/entities/gsp_group/records?version=2",
]
PAGES = ["/", "/versions", "/versions/2", "/versions/2/entities/gsp_group",
         "/diff?from=1&to=2"]
# What a cache or a client relies on: all must be as a healthy folder gives them.
HEADERS = ("ETag", "Content-Length", "Content-Type", "Content-Encoding", "Cache-Control",
           "Last-Modified", "Content-Disposition", "Vary")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs of the test's own, unmounted afterwards."""
    point = tmp_path / "mounted"
    point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs as the downloads folder needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs",
                           str(point)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=True)


def fill(folder: Path) -> None:
    """Write until the file system has no byte left."""
    with (folder / "filler").open("wb") as out:
        block = b"\0" * 65536
        while True:
            try:
                out.write(block)
                out.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    assert os.statvfs(folder).f_bavail == 0


def read_only(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    with pytest.raises(OSError) as refused:
        (folder / "probe").write_bytes(b"x")
    assert refused.value.errno == errno.EROFS


def get(client: FlaskClient, url: str, **headers: str) -> TestResponse:
    """GET an API URL (given without /api/v1)."""
    return client.get(API + url, headers=headers, buffered=True)


def answers(client: FlaskClient) -> dict[tuple[str, str], TestResponse]:
    """Every URL of the version, without and with gzip."""
    return {(url, enc): get(client, url, **{"Accept-Encoding": enc})
            for url in VERSION_URLS for enc in ("identity", "gzip")}


def reference(app: Flask, client: FlaskClient, healthy: Path
              ) -> dict[tuple[str, str], TestResponse]:
    """What a healthy folder answers (then the app is pointed at the faulty one)."""
    app.config["DOWNLOADS_DIR"] = str(healthy)
    found = answers(client)
    assert all(r.status_code == 200 for r in found.values())
    return found


def assert_same(found: dict[tuple[str, str], TestResponse],
                expected: dict[tuple[str, str], TestResponse], manifest: dict[str, Any]) -> None:
    for key, want in expected.items():
        got = found[key]
        assert got.status_code == 200, (key, got.get_data(as_text=True)[:300])
        assert got.get_data() == want.get_data(), key
        for name in HEADERS:
            assert got.headers.get(name) == want.headers.get(name), (key, name)
        if got.headers.get("ETag") and key[0] != "/versions/2":
            # A download's ETag is the hash of the bytes sent, as the manifest lists them.
            assert got.headers["ETag"] == f'"{sha256(got.get_data())}"', key
    listed = {d["url"]: d for d in manifest["downloads"]}
    for url, entry in listed.items():
        body = found[(url.removeprefix(API), "identity")].get_data() if url.removeprefix(
            API) in VERSION_URLS else None
        if body is not None:
            assert (len(body), sha256(body)) == (entry["size"], entry["sha256"]), url
    gz = found[("/versions/2/snapshot?format=json", "gzip")]
    assert gz.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(gz.get_data()) == found[
        ("/versions/2/snapshot?format=json", "identity")].get_data()


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def streamed_warnings(caplog: pytest.LogCaptureFixture, cause: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "isd_service.service_layer.downloads" and r.levelno == logging.WARNING
            and f"({cause}:" in r.getMessage()]


def health(client: FlaskClient, status: int = 200) -> dict[str, Any]:
    response = client.get(API + "/health")
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()


# --- a full download disk -------------------------------------------------------------------

def test_a_full_download_disk_takes_no_version_nor_download_away(
    app: Flask, published: FlaskClient, mount: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture
) -> None:
    expected = reference(app, published, tmp_path / "healthy")
    fill(mount)
    app.config["DOWNLOADS_DIR"] = str(mount)
    caplog.set_level(logging.INFO)

    manifest = get(published, "/versions/2").get_json()
    found = answers(published)
    assert_same(found, expected, manifest)
    for page in PAGES:
        assert published.get(page).status_code == 200, page
    # Nothing was written (nothing could be), and nothing half-written was left behind: only
    # the builders' lock files, which take no space.
    assert [name for name in files_in(mount) if not name.endswith(".lock")] == ["filler"]
    assert all(p.stat().st_size == 0 for p in mount.rglob("*.lock"))
    # Each download's failure is logged once, with its cause, however often it is asked for.
    warned = streamed_warnings(caplog, "no-space")
    assert warned and len(warned) == len(set(warned))
    assert any("snapshot.json" in w and "No space left on device" in w for w in warned)
    assert health(published)["status"] == "degraded"


def test_a_streamed_download_answers_ranges_conditionals_and_head(
    app: Flask, published: FlaskClient, mount: Path
) -> None:
    fill(mount)
    app.config["DOWNLOADS_DIR"] = str(mount)
    url = "/versions/2/snapshot?format=ndjson"
    whole = get(published, url)
    body = whole.get_data()
    etag = whole.headers["ETag"]
    head = get(published, url, Range="bytes=0-99")
    assert head.status_code == 206
    assert head.headers["Content-Range"] == f"bytes 0-99/{len(body)}"
    tail = get(published, url, Range="bytes=100-")
    assert head.get_data() + tail.get_data() == body
    assert get(published, url, **{"If-None-Match": etag}).status_code == 304
    beyond = get(published, url, Range=f"bytes={len(body) + 10}-")
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(body)}"
    only = published.head(API + url)
    assert only.status_code == 200 and only.get_data() == b""
    assert only.headers["ETag"] == etag


def test_the_health_of_a_full_disk_is_degraded_and_it_recovers(
    app: Flask, client: FlaskClient, mount: Path
) -> None:
    app.config["DOWNLOADS_DIR"] = str(mount)
    fine = health(client)
    assert fine["status"] == "ok"
    assert fine["database"] == {"status": "ok"}
    assert fine["downloads"]["status"] == "ok" and fine["downloads"]["free_bytes"] > 0
    fill(mount)
    full = health(client)
    assert full["status"] == "degraded"
    assert full["database"] == {"status": "ok"}
    assert full["downloads"]["status"] == "no-space"
    assert full["downloads"]["free_bytes"] == 0
    assert "No space left on device" in full["downloads"]["detail"]
    (mount / "filler").unlink()
    assert health(client)["status"] == "ok"
    assert files_in(mount) == []  # the probe leaves nothing behind


def test_a_disk_full_part_way_through_a_build_leaves_no_partial_file(
    app: Flask, published: FlaskClient, mount: Path, tmp_path: Path
) -> None:
    """Room for some files but not all: what is built is whole, the rest streams."""
    expected = reference(app, published, tmp_path / "healthy")
    big = expected[("/versions/2/snapshot?format=json", "identity")].get_data()
    # Leave a little less room than the json snapshot needs.
    with (mount / "filler").open("wb") as out:
        out.write(b"\0" * (os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
                           - len(big) // 2))
    app.config["DOWNLOADS_DIR"] = str(mount)
    found = answers(published)
    assert_same(found, expected, get(published, "/versions/2").get_json())
    for name in files_in(mount):
        assert not name.endswith(".tmp"), name
        if name.endswith(".meta.json"):  # every file that is there is whole
            stored = mount / name.removesuffix(".meta.json")
            assert stored.stat().st_size == __import__("json").loads(
                (mount / name).read_text())["size"]


# --- a read-only download folder ------------------------------------------------------------

def test_a_read_only_download_folder_takes_nothing_away(
    app: Flask, published: FlaskClient, mount: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture
) -> None:
    expected = reference(app, published, tmp_path / "healthy")
    read_only(mount)
    app.config["DOWNLOADS_DIR"] = str(mount)
    caplog.set_level(logging.INFO)
    found = answers(published)
    assert_same(found, expected, get(published, "/versions/2").get_json())
    assert files_in(mount) == []
    assert streamed_warnings(caplog, "read-only")
    state = health(published)
    assert state["status"] == "degraded"
    assert state["downloads"]["status"] == "read-only"


def test_files_built_before_the_folder_turned_read_only_are_still_served(
    app: Flask, published: FlaskClient, mount: Path, tmp_path: Path
) -> None:
    expected = reference(app, published, tmp_path / "healthy")
    app.config["DOWNLOADS_DIR"] = str(mount)
    result = app.test_cli_runner().invoke(args=["downloads", "build", "2"])
    assert result.exit_code == 0, result.output
    built = files_in(mount)
    read_only(mount)
    assert_same(answers(published), expected, get(published, "/versions/2").get_json())
    # The built files were served as they are (deltas and per-entity files stream).
    assert files_in(mount) == built
    refused = app.test_cli_runner().invoke(args=["downloads", "build", "1"])
    assert refused.exit_code == 1
    assert "read-only" in refused.output and "Traceback" not in refused.output


# --- files changed behind the service's back ------------------------------------------------

@pytest.mark.parametrize("damage", ["truncate", "overwrite", "truncate-gzip", "foreign"])
def test_a_file_that_does_not_match_its_metadata_is_never_served(
    app: Flask, published: FlaskClient, mount: Path, tmp_path: Path, damage: str,
    caplog: pytest.LogCaptureFixture
) -> None:
    expected = reference(app, published, tmp_path / "healthy")
    app.config["DOWNLOADS_DIR"] = str(mount)
    url = "/versions/2/snapshot?format=json"
    assert get(published, url).get_data() == expected[(url, "identity")].get_data()
    [stored] = mount.glob("2-*/snapshot.json")
    if damage == "truncate":
        os.truncate(stored, stored.stat().st_size // 2)
    elif damage == "overwrite":  # the same size, other bytes
        data = bytearray(stored.read_bytes())
        data[10] ^= 1
        stored.write_bytes(bytes(data))
    elif damage == "truncate-gzip":
        os.truncate(stored.with_name("snapshot.json.gz"), 20)
    else:  # a foreign file, with metadata of its own that does not fit the download
        stored.write_bytes(b'{"not":"this version"}\n')
        stored.with_name("snapshot.json.meta.json").write_text(
            f'{{"size": 23, "sha256": "{sha256(b"{}")}"}}')
    caplog.set_level(logging.INFO)
    assert_same(answers(published), expected, get(published, "/versions/2").get_json())
    assert stored.read_bytes() == expected[(url, "identity")].get_data()  # rebuilt
    assert gzip.decompress(stored.with_name("snapshot.json.gz").read_bytes()) == \
        stored.read_bytes()
    assert [r for r in caplog.records if "not the bytes its metadata names" in r.getMessage()
            and "snapshot.json" in r.getMessage()]


def test_a_truncated_file_in_a_read_only_folder_is_streamed_instead(
    app: Flask, published: FlaskClient, mount: Path, tmp_path: Path
) -> None:
    expected = reference(app, published, tmp_path / "healthy")
    app.config["DOWNLOADS_DIR"] = str(mount)
    url = "/versions/2/mdd/GSP_Group.csv"
    assert get(published, url).status_code == 200
    [stored] = mount.glob("2-*/mdd/GSP_Group_2.csv")
    os.truncate(stored, 10)
    read_only(mount)
    for enc in ("identity", "gzip"):
        got = get(published, url, **{"Accept-Encoding": enc})
        want = expected[(url, enc)]
        assert got.get_data() == want.get_data()
        assert got.headers["ETag"] == want.headers["ETag"]
    assert stored.stat().st_size == 10  # left as it was: it could not be removed


# --- when even streaming is impossible ------------------------------------------------------

@contextlib.contextmanager
def connection_lost_on_records(app: Flask) -> Iterator[None]:
    """The database connection is lost when a download's records are read.

    PostgreSQL: the server ends the connection (pg_terminate_backend, as a restart does).
    SQLite (a file, no connection to lose): the error SQLite gives when its own disk fails.
    """
    engine = database_of(app).engine

    def cut(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM record" not in statement:
            return
        if engine.dialect.name == "sqlite":
            raise sqlite3.OperationalError("disk I/O error")
        pid = conn.connection.dbapi_connection.info.backend_pid
        with engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    event.listen(engine, "before_cursor_execute", cut)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", cut)
        engine.dispose()
        # The server-side cursor the driver had opened on the lost connection can no
        # longer be closed: let it go now, within this test (see its filterwarnings).
        gc.collect()


@pytest.mark.filterwarnings(
    "ignore:Exception ignored in.*ServerCursorMixin.__del__"
    ":pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("fault", ["no-space", "read-only"])
def test_with_the_folder_failing_and_the_database_lost_a_download_is_503_never_500(
    app: Flask, published: FlaskClient, mount: Path, fault: str
) -> None:
    fill(mount) if fault == "no-space" else read_only(mount)
    app.config["DOWNLOADS_DIR"] = str(mount)
    with connection_lost_on_records(app):
        response = get(published, "/versions/2/snapshot?format=csv")
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"].isdigit()
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    if fault == "read-only":
        # The folder failed first (it cannot even be opened for writing): the problem names
        # the folder's cause. A full disk fails only once bytes come, so there the database
        # failed first, and the problem is the database's.
        assert problem["type"].endswith("/download-unavailable")
        assert problem["cause"] == "read-only"
        assert "isd_2.zip" in problem["detail"]
    else:
        assert "database" in problem["detail"]
    # Once the database is back, the same URL answers with the download.
    again = get(published, "/versions/2/snapshot?format=csv")
    assert again.status_code == 200
    assert again.headers["ETag"] == f'"{sha256(again.get_data())}"'


def test_the_health_of_a_service_without_its_database_is_down_until_it_is_back(
    flaky_app: tuple[Flask, Any], tmp_path: Path
) -> None:
    app, database = flaky_app
    app.config["DOWNLOADS_DIR"] = str(tmp_path / "downloads")
    client = app.test_client()
    response = client.get(API + "/health")
    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    body = response.get_json()
    assert body["status"] == "down"
    assert body["database"]["status"] == "down"
    assert body["downloads"]["status"] == "ok"
    for leak in ("psycopg", "sqlite", "127.0.0.1", "SELECT", "Traceback"):
        assert leak not in response.get_data(as_text=True)
    # Any other read while it is away: 503 with Retry-After too.
    away = client.get(API + "/versions/latest")
    assert away.status_code == 503 and away.headers["Retry-After"].isdigit()
    database.start()
    assert health(client)["status"] == "ok"
