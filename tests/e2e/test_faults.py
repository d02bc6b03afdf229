"""Faults on the real MDD data: a process killed (SIGKILL) in the middle of a large load or of
a publication leaves no partial version and the draft as it was, and the next step succeeds;
readers during a publication only ever see complete versions.

The `isd` command runs as a separate process against the test database. To kill it at the
worst moment, inside the writer's transaction with every row written but nothing committed,
a wrapper connects a receiver that SIGKILLs its own process to the signal sent just before
the commit; other runs are killed after a delay, wherever they are.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from isd_service import PROJECT_ROOT
from isd_service.adapters.orm import Base
from isd_service.entrypoints.flask_db import database
from tests import hash_rule
from tests.conftest import MDD_DIR, Rows, mdd_files, restore, saved_rows

pytestmark = pytest.mark.mdd

API = "/api/v1"
RUN = "from isd_service.entrypoints.cli import main; main()"
# Kill the process inside its transaction, at the audit record it writes just before the
# commit (a load's, a publication's).
KILL_AT = """
import os, signal, sys
from isd_service.service_layer import audit
from isd_service.entrypoints.cli import main

def die(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

setattr(audit, sys.argv.pop(1), die)
main()
"""
TABLES = ("load", "staged_change", "version", "record", "catalogue_entity", "catalogue_field",
          "audit_event")
TIMEOUT = 300


def isd(url: str, *args: str, kill_at: str | None = None, kill_after: float | None = None
        ) -> subprocess.CompletedProcess[str]:
    """Run `isd ARGS` in its own process; SIGKILL it at an audit record or after a delay."""
    env = {**os.environ, "ISD_DATABASE_URL": url}
    env.pop("ISD_TEST_DATABASE_URL", None)
    code = [sys.executable, "-c", KILL_AT, kill_at] if kill_at else [sys.executable, "-c", RUN]
    process = subprocess.Popen([*code, *args], cwd=PROJECT_ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if kill_after is not None:
        try:
            process.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
    out, err = process.communicate(timeout=TIMEOUT)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def mdd_folder(version: int) -> str:
    mdd_files(version)  # skips when the data is absent
    return str(MDD_DIR / str(version))


def state(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables a load or a publication writes."""
    out = {}
    with app.app_context(), database().engine.connect() as conn:
        for name in TABLES:
            table = Base.metadata.tables[name]
            rows = conn.execute(select(table).order_by(*table.primary_key.columns))
            out[name] = [tuple(r) for r in rows]
    return out


def verify(client: FlaskClient, number: int) -> dict[str, Any]:
    """Check version ``number``'s served snapshot against its manifest's hashes."""
    manifest = client.get(f"{API}/versions/{number}").get_json()
    snapshot = client.get(f"{API}/versions/{number}/snapshot?format=json").get_json()
    assert set(snapshot["entities"]) == set(manifest["entities"])
    catalogue = client.get(f"{API}/catalogue?version={number}").get_json()["entities"]
    keys = {e["id"]: e["key"] for e in catalogue}
    for eid, records in snapshot["entities"].items():
        assert manifest["entities"][eid] == hash_rule.entity_hash(
            records, keys[eid], manifest.get("hash_rule", 1)), (number, eid)
    return manifest


@pytest.fixture
def url(app: Flask) -> str:
    return app.config["DATABASE_URL"]


@pytest.fixture(scope="module")
def v370_rows() -> list[Rows]:
    """The rows of the first v370 built (tokens aside), for the next tests to write back."""
    return []


@pytest.fixture
def v370(app: Flask, url: str, v370_rows: list[Rows]) -> None:
    """MDD 370 published as version 370, and one file of 371 staged in the draft.

    Built with the CLI for the first test; the next ones start from its rows, written back.
    """
    if v370_rows:
        restore(app, v370_rows[0], keep=("api_token",))
        return
    runner = app.test_cli_runner()
    result = runner.invoke(args=["load", mdd_folder(370)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["publish", "--version", "370"])
    assert result.exit_code == 0, result.output
    staged = Path(mdd_folder(371)) / "Market_Participant_371.csv"
    result = runner.invoke(args=["load", str(staged)])
    assert result.exit_code == 0, result.output
    v370_rows.append(saved_rows(app, keep=("api_token",)))


@pytest.mark.usefixtures("v370")
def test_a_load_killed_before_its_commit_changes_nothing(
    app: Flask, client: FlaskClient, url: str, admin_headers: dict[str, str]
) -> None:
    before = state(app)
    draft = client.get(f"{API}/admin/draft", headers=admin_headers).get_json()
    killed = isd(url, "load", mdd_folder(371), kill_at="load_accepted")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert state(app) == before
    assert client.get(f"{API}/admin/draft", headers=admin_headers).get_json() == draft
    # ... and the same load, then a publication, go through
    assert isd(url, "load", mdd_folder(371)).returncode == 0
    published = isd(url, "publish")
    assert published.returncode == 0, published.stderr
    assert published.stdout.strip().splitlines()[-1] == "371"
    verify(client, 371)


@pytest.mark.usefixtures("v370")
def test_a_publication_killed_before_its_commit_publishes_nothing(
    app: Flask, client: FlaskClient, url: str, admin_headers: dict[str, str]
) -> None:
    assert isd(url, "load", mdd_folder(371)).returncode == 0
    before = state(app)
    draft = client.get(f"{API}/admin/draft", headers=admin_headers).get_json()
    killed = isd(url, "publish", kill_at="version_published")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert state(app) == before
    assert client.get(f"{API}/versions/latest").get_json()["version"] == 370
    assert client.get(f"{API}/versions/371").status_code == 404
    assert client.get(f"{API}/admin/draft", headers=admin_headers).get_json() == draft
    published = isd(url, "publish")
    assert published.returncode == 0, published.stderr
    assert verify(client, 371)["previous_version"] == 370


@pytest.mark.usefixtures("v370")
def test_a_load_and_a_publication_killed_anywhere_are_all_or_nothing(
    app: Flask, client: FlaskClient, url: str
) -> None:
    """Killed after a delay, wherever they are: each step happened whole or not at all."""
    before = state(app)
    killed = isd(url, "load", mdd_folder(371), kill_after=1.0)
    after = state(app)
    assert killed.returncode in (0, -signal.SIGKILL), killed.stderr
    if after != before:
        # It committed: the draft holds all of it, so the same load changes nothing more.
        assert len(after["load"]) == len(before["load"]) + 1
        again = app.test_cli_runner().invoke(args=["load", mdd_folder(371)])
        assert again.exit_code == 0, again.output
        assert "inserted 0, updated 0, deleted 0" in again.output
    else:
        assert isd(url, "load", mdd_folder(371)).returncode == 0

    before = state(app)
    killed = isd(url, "publish", kill_after=0.5)
    assert killed.returncode in (0, -signal.SIGKILL), killed.stderr
    if client.get(f"{API}/versions/latest").get_json()["version"] == 370:
        assert state(app) == before
        assert isd(url, "publish").returncode == 0
    verify(client, 371)
    assert client.get(f"{API}/versions/latest").get_json()["version"] == 371


@pytest.mark.usefixtures("v370")
def test_readers_during_a_publication_only_see_complete_versions(
    app: Flask, url: str
) -> None:
    assert isd(url, "load", mdd_folder(371)).returncode == 0
    published_event = threading.Event()
    done = threading.Event()
    seen: list[int] = []
    checked: list[tuple[int, bool]] = []  # (version, read started after the publication)
    errors: list[BaseException] = []

    def poll_latest() -> None:
        client = app.test_client()
        try:
            while not done.is_set():
                response = client.get(f"{API}/versions/latest")
                assert response.status_code == 200, response.get_data(as_text=True)
                seen.append(response.get_json()["version"])
                # A poll loop without a pause holds the interpreter's lock most of the
                # time and starves the snapshot reader beside it.
                time.sleep(0.01)
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)

    def read_snapshots() -> None:
        client = app.test_client()
        try:
            while not done.is_set():
                after = published_event.is_set()
                number = client.get(f"{API}/versions/latest").get_json()["version"]
                verify(client, number)
                checked.append((number, after))
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=poll_latest), threading.Thread(target=read_snapshots)]
    for t in readers:
        t.start()
    deadline = time.monotonic() + TIMEOUT
    try:
        while not checked and not errors:  # one complete read before the publication starts
            assert time.monotonic() < deadline, "no complete read before the publication"
            time.sleep(0.05)
        published = isd(url, "publish")
        published_event.set()
        # one more complete read, started once it is out
        while not any(after for _n, after in checked) and not errors:
            assert time.monotonic() < deadline, "no complete read after the publication"
            time.sleep(0.05)
    finally:
        done.set()
        for t in readers:
            t.join(timeout=TIMEOUT)
    assert not errors, errors
    assert published.returncode == 0, published.stderr
    assert set(seen) <= {370, 371} and seen[-1] == 371
    # once 371 was seen, never 370 again: versions only move forward
    assert seen == sorted(seen)
    assert checked[0][0] == 370
    assert {n for n, after in checked if after} == {371}
