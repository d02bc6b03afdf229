"""Background builds (the default): a publication queues its downloads' build, a builder (the
scheduler, `isd downloads worker`, `isd serve`'s) builds them, and a request for a file not
built yet answers 503 with Retry-After instead of building it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from isd_service.adapters.orm import DownloadBuild, DownloadBuilder
from isd_service.domain.formats import InputFile
from isd_service.entrypoints.cli.serve import start_builder, stop_builder
from isd_service.entrypoints.download_builder import Builder
from isd_service.entrypoints.flask_db import new_uow, uow
from isd_service.entrypoints.scheduler import Scheduler
from isd_service.service_layer import download_builds
from isd_service.service_layer.drafts import load
from tests.integration.test_downloads import GSP_CHANGE, fetch, sha256

API = "/api/v1"
LISTED = ["/versions/2/snapshot?format=json", "/versions/2/snapshot.ndjson",
          "/versions/2/snapshot?format=csv", "/versions/2/mdd/GSP_Group.csv",
          "/versions/2/mdd.zip", "/versions/2/datapackage.json", "/versions/2/SHA256SUMS",
          "/versions/2", "/versions/2/manifest.json"]
# Bounds a wait for another thread or process; it times nothing.
DEADLINE = 120.0


@pytest.fixture
def background(app: Flask) -> Flask:
    """The app with the service's default: publications queue their downloads' build, and a
    builder has just said it is there (with a long look-for-jobs period, its sign of life
    holds for the whole test)."""
    app.config["DOWNLOAD_BUILDS"] = "background"
    app.config["DOWNLOAD_BUILD_POLL_SECONDS"] = 120.0
    with app.app_context(), new_uow(app) as unit:
        download_builds.announce(unit, "a-builder-elsewhere")
    return app


def test_with_no_builder_there_a_queued_version_is_served_as_without_a_job(
        app: Flask, client: FlaskClient) -> None:
    app.config["DOWNLOAD_BUILDS"] = "background"
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    assert jobs(app)[1].state == "queued"
    # No builder has ever given a sign of life: nothing would take the job, so nothing waits.
    for path in ("/versions/1", "/versions/1/mdd.zip", "/versions/1/SHA256SUMS"):
        fetch(client, path)
    # A builder last seen longer ago than its period allows is gone too.
    with app.app_context(), new_uow(app) as unit:
        download_builds.announce(unit, "gone")
        unit.session.execute(update(DownloadBuilder).values(
            seen_at=datetime.now(UTC) - timedelta(hours=1)))
        unit.session.commit()
    fetch(client, "/versions/1/snapshot.ndjson")
    assert jobs(app)[1].state == "queued"  # a builder that comes later still builds it


def jobs(app: Flask) -> dict[int, DownloadBuild]:
    with app.app_context(), new_uow(app) as unit:
        return {row.version: row for row in unit.session.scalars(select(DownloadBuild))}


def seed_and_build(app: Flask) -> None:
    """Version 1 from the seed, its downloads built; the draft holding a change."""
    result = app.test_cli_runner().invoke(args=["seed"])
    assert result.exit_code == 0, result.output
    assert [o.state for o in Builder(app, runner="first").run_due()] == ["done"]
    with app.app_context():
        load(uow(), files=[InputFile("gsp_group.csv", GSP_CHANGE.encode())], fmt="csv",
             mode="upsert", actor="test", organisation="ISDA")


def folder_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


def assert_being_built(client: FlaskClient, path: str) -> None:
    response = fetch(client, path, 503)
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"] == str(download_builds.RETRY_AFTER)
    problem = response.get_json()
    assert problem["type"].endswith("/download-being-built"), problem
    assert problem["version"] == 2 and problem["build"] in ("queued", "running")
    assert "being built" in problem["detail"] or "queued to be built" in problem["detail"]


def test_a_publication_through_the_api_queues_the_build_and_requests_wait_for_it(
    background: Flask, client: FlaskClient, publisher_headers: dict[str, str], tmp_path: Path
) -> None:
    app = background
    seed_and_build(app)
    r = client.post(f"{API}/admin/publications", headers=publisher_headers, json={})
    assert r.status_code == 201 and r.get_json()["version"] == 2
    assert jobs(app)[2].state == "queued"
    # Nothing built in a request: every listed file (and the manifest, which lists their
    # hashes) is 503 with Retry-After until the builder has run.
    for path in LISTED:
        assert_being_built(client, path)
    root = Path(app.config["DOWNLOADS_DIR"])
    assert not [p for p in root.iterdir() if p.name.startswith("2-")]
    # Files no build makes are served as before; so is the version's page, without hashes.
    fetch(client, "/versions/2/snapshot?format=json&entity=gsp_group")
    fetch(client, "/deltas?from=1&to=2")
    fetch(client, "/versions/1/SHA256SUMS")
    catalog = fetch(client, "/catalog.jsonld").get_data(as_text=True)
    assert "isd_1.json" in catalog and "isd_2.json" not in catalog  # listed once built
    page = client.get("/versions/2")
    assert page.status_code == 200 and b"queued to be built in the background" in page.data
    health = fetch(client, "/health").get_json()
    assert health["status"] == "ok"
    assert health["download_builds"]["queued"] == 1
    assert health["download_builds"]["status"] == "ok"

    result = app.test_cli_runner().invoke(args=["downloads", "worker", "--once"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("version 2: done, "), result.output
    job = jobs(app)[2]
    assert (job.state, job.attempts, job.error) == ("done", 1, None)
    assert job.files and job.bytes

    manifest = fetch(client, "/versions/2").get_json()
    for entry in manifest["downloads"]:
        assert sha256(fetch(client, entry["url"]).get_data()) == entry["sha256"], entry["url"]
    # The very bytes that `isd downloads build` makes, file for file.
    built = folder_bytes(root)
    app.config["DOWNLOADS_DIR"] = str(tmp_path / "by-hand")
    result = app.test_cli_runner().invoke(args=["downloads", "build", "2"])
    assert result.exit_code == 0, result.output
    by_hand = folder_bytes(tmp_path / "by-hand")
    assert by_hand and {name: built.get(name) for name in by_hand} == by_hand
    assert fetch(client, "/health").get_json()["download_builds"]["queued"] == 0
    assert "isd_2.json" in fetch(client, "/catalog.jsonld").get_data(as_text=True)


def test_a_publication_by_the_cli_queues_the_build(background: Flask,
                                                   client: FlaskClient) -> None:
    app = background
    seed_and_build(app)
    result = app.test_cli_runner().invoke(args=["publish"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "2"
    assert "queued for the background builder" in result.output
    assert jobs(app)[2].state == "queued"
    assert_being_built(client, "/versions/2/mdd/GSP_Group.csv")
    assert_being_built(client, "/versions/2/SHA256SUMS")
    [outcome] = Builder(app, runner="worker").run_due()
    assert (outcome.version, outcome.state) == (2, "done")
    sums = fetch(client, "/versions/2/SHA256SUMS").get_data(as_text=True)
    manifest = fetch(client, "/versions/2").get_json()
    assert sums == "".join(f"{e['sha256']}  {e['name']}\n" for e in manifest["downloads"])


def test_with_build_downloads_the_publishing_process_builds_its_own_job(
        background: Flask, client: FlaskClient) -> None:
    app = background
    seed_and_build(app)
    app.config["BUILD_DOWNLOADS"] = True
    result = app.test_cli_runner().invoke(args=["publish"])
    assert result.exit_code == 0, result.output
    job = jobs(app)[2]
    assert job.state == "done" and job.claimed_by
    fetch(client, "/versions/2/mdd.zip")


def test_two_builders_never_build_the_same_job(background: Flask) -> None:
    app = background
    seed_and_build(app)
    assert app.test_cli_runner().invoke(args=["publish"]).exit_code == 0
    with app.app_context(), new_uow(app) as a, new_uow(app) as b:
        first = download_builds.claim(a, "builder-a")
        assert first is not None and first.version == 2
        assert download_builds.claim(b, "builder-b") is None  # it is taken
    # Two builders at once, each in its own thread and connection: one builds it.
    with app.app_context(), new_uow(app) as unit:
        unit.session.execute(update(DownloadBuild).where(DownloadBuild.version == 2)
                             .values(state="queued", attempts=0, claimed_by=None))
        unit.session.commit()
    outcomes: list[download_builds.Outcome] = []
    start = threading.Barrier(2)

    def run(name: str) -> None:
        start.wait()
        outcomes.extend(Builder(app, runner=name).run_due())

    threads = [threading.Thread(target=run, args=(name,)) for name in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert [(o.version, o.state) for o in outcomes] == [(2, "done")]
    assert jobs(app)[2].attempts == 1


def test_a_claim_whose_builder_died_is_claimed_again_after_its_lease(
        background: Flask, client: FlaskClient) -> None:
    app = background
    seed_and_build(app)
    assert app.test_cli_runner().invoke(args=["publish"]).exit_code == 0
    with app.app_context(), new_uow(app) as unit:
        dead = download_builds.claim(unit, "died")
        assert dead is not None
        assert download_builds.claim(unit, "other") is None  # its lease holds
        assert_being_built(client, "/versions/2/snapshot.json")
        # The builder died: nothing renews its lease, which runs out.
        unit.session.execute(update(DownloadBuild).where(DownloadBuild.version == 2).values(
            lease_until=datetime.now(UTC) - timedelta(seconds=1)))
        unit.session.commit()
        again = download_builds.claim(unit, "other")
        assert again is not None and (again.version, again.attempt) == (2, 2)
        assert not download_builds.renew(unit, dead)  # the dead claim is void
    [outcome] = Builder(app, runner="other").run_due() or [None]  # nothing left queued
    assert outcome is None
    with app.app_context(), new_uow(app) as unit, new_uow(app) as beats:
        done = download_builds.build(unit, beats, again, Path(app.config["DOWNLOADS_DIR"]))
    assert done.state == "done" and jobs(app)[2].claimed_by == "other"
    fetch(client, "/versions/2/snapshot.json")


def test_a_job_whose_builders_keep_dying_fails_and_its_files_are_built_on_request(
        background: Flask, client: FlaskClient) -> None:
    app = background
    seed_and_build(app)
    assert app.test_cli_runner().invoke(args=["publish"]).exit_code == 0
    with app.app_context(), new_uow(app) as unit:
        for _ in range(download_builds.MAX_ATTEMPTS):
            assert download_builds.claim(unit, "dies") is not None
            unit.session.execute(update(DownloadBuild).where(DownloadBuild.version == 2).values(
                lease_until=datetime.now(UTC) - timedelta(seconds=1)))
            unit.session.commit()
        assert download_builds.claim(unit, "next") is None
    job = jobs(app)[2]
    assert job.state == "failed" and "each of 3 attempts" in (job.error or "")
    fetch(client, "/versions/2/snapshot.json")  # as before builds were queued
    assert fetch(client, "/health").get_json()["download_builds"]["last_failed"]["version"] == 2


def test_a_stopping_builder_gives_its_job_back(background: Flask) -> None:
    app = background
    seed_and_build(app)
    assert app.test_cli_runner().invoke(args=["publish"]).exit_code == 0
    [outcome] = Builder(app, runner="stopping", alive=lambda: False).run_due() or [None]
    assert outcome is None  # a builder told to stop claims nothing
    with app.app_context(), new_uow(app) as unit, new_uow(app) as beats:
        got = download_builds.claim(unit, "stopping")
        assert got is not None
        stopped = download_builds.build(unit, beats, got, Path(app.config["DOWNLOADS_DIR"]),
                                        stopping=lambda: True)
    assert stopped.state == "queued"
    job = jobs(app)[2]
    assert (job.state, job.attempts, job.claimed_by) == ("queued", 0, None)


def test_a_build_that_cannot_write_fails_with_its_cause_and_files_stream(
        background: Flask, client: FlaskClient, tmp_path: Path) -> None:
    app = background
    seed_and_build(app)
    assert app.test_cli_runner().invoke(args=["publish"]).exit_code == 0
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the downloads folder should be")
    app.config["DOWNLOADS_DIR"] = str(blocked)
    [outcome] = Builder(app, runner="worker").run_due()
    assert outcome.state == "failed" and "cannot be written" in (outcome.error or "")
    assert jobs(app)[2].error == outcome.error
    response = fetch(client, "/versions/2/snapshot.json")  # sent from the database
    assert sha256(response.get_data()) == {
        e["url"]: e["sha256"] for e in fetch(client, "/versions/2").get_json()["downloads"]
    }[f"{API}/versions/2/snapshot.json"]


def test_a_job_no_builder_takes_stops_making_requests_wait(
        background: Flask, client: FlaskClient) -> None:
    app = background
    seed_and_build(app)
    assert app.test_cli_runner().invoke(args=["publish"]).exit_code == 0
    assert_being_built(client, "/versions/2/mdd.zip")
    wait = int(app.config["DOWNLOAD_BUILD_WAIT_SECONDS"])
    with app.app_context(), new_uow(app) as unit:
        unit.session.execute(update(DownloadBuild).where(DownloadBuild.version == 2).values(
            queued_at=datetime.now(UTC) - timedelta(seconds=wait + 5)))
        unit.session.commit()
    fetch(client, "/versions/2/mdd.zip")  # built on request, as without a builder
    health = fetch(client, "/health").get_json()
    assert health["status"] == "degraded"
    assert health["download_builds"]["status"] == "stalled"
    assert "isd downloads worker" in health["download_builds"]["detail"]


def test_on_request_mode_queues_nothing_and_waits_for_no_job(
        app: Flask, client: FlaskClient) -> None:
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    assert jobs(app) == {}
    fetch(client, "/versions/1/SHA256SUMS")
    # A job queued before the switch to on-request (its builders gone) holds nothing up.
    app.config["DOWNLOAD_BUILDS"] = "background"
    app.config["DOWNLOAD_BUILD_POLL_SECONDS"] = 120.0
    with app.app_context():
        download_builds.announce(uow(), "a-builder-then")
        load(uow(), files=[InputFile("gsp_group.csv", GSP_CHANGE.encode())], fmt="csv",
             mode="upsert", actor="test", organisation="ISDA")
    assert app.test_cli_runner().invoke(args=["publish"]).exit_code == 0
    assert_being_built(client, "/versions/2/SHA256SUMS")
    app.config["DOWNLOAD_BUILDS"] = "on-request"
    fetch(client, "/versions/2/SHA256SUMS")


def test_the_scheduler_process_builds_what_is_queued(background: Flask,
                                                     client: FlaskClient) -> None:
    app = background
    app.config["DOWNLOAD_BUILD_POLL_SECONDS"] = 0.2
    seed_and_build(app)
    assert app.test_cli_runner().invoke(args=["publish"]).exit_code == 0
    stop = threading.Event()
    scheduler = Scheduler(app)
    thread = threading.Thread(target=scheduler.run, args=(stop,))
    thread.start()
    try:
        waited = time.monotonic()
        while jobs(app)[2].state != "done" and time.monotonic() - waited < DEADLINE:
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(DEADLINE)
    assert jobs(app)[2].state == "done"
    fetch(client, "/versions/2/mdd.zip")


def test_the_builder_that_isd_serve_starts_builds_and_stops(
        background: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    app = background
    seed_and_build(app)
    assert app.test_cli_runner().invoke(args=["publish"]).exit_code == 0
    monkeypatch.delenv("ISD_TEST_DATABASE_URL", raising=False)
    for name, value in (("DATABASE_URL", app.config["DATABASE_URL"]),
                        ("DOWNLOADS_DIR", app.config["DOWNLOADS_DIR"]),
                        ("DOWNLOAD_BUILD_POLL_SECONDS", "0.2")):
        monkeypatch.setenv(f"ISD_{name}", value)
    child = start_builder()
    try:
        waited = time.monotonic()
        while jobs(app)[2].state != "done" and time.monotonic() - waited < DEADLINE:
            assert child.poll() is None, "the builder exited"
            time.sleep(0.1)
        assert jobs(app)[2].state == "done"
        assert jobs(app)[2].claimed_by.endswith(f":{child.pid}")  # type: ignore[union-attr]
    finally:
        stop_builder(child)
    assert child.returncode == 0
    fetch(client, "/versions/2/snapshot?format=csv")


def test_a_builder_whose_parent_has_gone_stops(background: Flask,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISD_DATABASE_URL", background.config["DATABASE_URL"])
    monkeypatch.delenv("ISD_TEST_DATABASE_URL", raising=False)
    # Its parent named as a process that is not its parent: it stops at once.
    child = subprocess.Popen([sys.executable, "-c",
                              "from isd_service.entrypoints.cli import main; main()",
                              "downloads", "worker", "--parent", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = child.communicate(timeout=DEADLINE)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, out
    assert b"download builder" in out and b"stopped" in out


def test_a_builder_renews_its_lease_and_stops_when_another_claimed_the_job(
        background: Flask, client: FlaskClient) -> None:
    app = background
    seed_and_build(app)
    assert app.test_cli_runner().invoke(args=["publish"]).exit_code == 0
    app.config["DOWNLOAD_BUILD_LEASE_SECONDS"] = 0.01  # renewed before every piece
    root = Path(app.config["DOWNLOADS_DIR"])
    with app.app_context(), new_uow(app) as unit, new_uow(app) as beats:
        first = download_builds.claim(unit, "first")
        assert first is not None
        unit.session.execute(update(DownloadBuild).where(DownloadBuild.version == 2).values(
            lease_until=datetime.now(UTC) - timedelta(seconds=1)))
        unit.session.commit()
        second = download_builds.claim(unit, "second")
        assert second is not None
        lost = download_builds.build(unit, beats, first, root)
        assert (lost.state, lost.error) == ("running", "claim lost")
        assert jobs(app)[2].claimed_by == "second"
        app.config["DOWNLOAD_BUILD_LEASE_SECONDS"] = 120
        done = download_builds.build(unit, beats, second, root)
    assert done.state == "done" and jobs(app)[2].state == "done"
    fetch(client, "/versions/2/datapackage.json")
