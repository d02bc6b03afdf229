"""`isd import-archive` on the real MDD versions: numbers kept, gaps allowed, an import
killed halfway and run again, a version whose files differ from what was published."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from isd_service import PROJECT_ROOT
from isd_service.sync import client as sync_client
from isd_service.sync import local
from tests.conftest import MDD_VERSIONS, mdd_files, serving

# Real versions publish with the seed catalogue's relations declared: they must hold.
pytestmark = [pytest.mark.mdd, pytest.mark.relations]

API = "/api/v1"
RUN = "from isd_service.entrypoints.cli import main; main()"
WAIT = 300  # seconds: a bound on every wait, never a sleep


def archive_of(tmp_path: Path, versions: list[int], zipped: tuple[int, ...] = ()) -> Path:
    """An archive folder: a folder per version with its portal files (or a portal zip)."""
    root = tmp_path / "archive"
    for number in versions:
        folder = root / str(number)
        folder.mkdir(parents=True)
        if number in zipped:
            with zipfile.ZipFile(folder / f"MDD_{number}.zip", "w",
                                 zipfile.ZIP_DEFLATED) as archive:
                for path in mdd_files(number):
                    archive.write(path, path.name)
        else:
            for path in mdd_files(number):
                shutil.copyfile(path, folder / path.name)
    return root


def isd(database_url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ISD_DATABASE_URL": database_url}
    env.pop("ISD_TEST_DATABASE_URL", None)
    return subprocess.Popen([sys.executable, "-c", RUN, *args], cwd=PROJECT_ROOT, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def versions(client: FlaskClient) -> list[dict[str, Any]]:
    return list(reversed(client.get(f"{API}/versions").get_json()["versions"]))


def assert_exports_are_the_sources(client: FlaskClient, number: int) -> None:
    for path in mdd_files(number):
        served = client.get(f"{API}/versions/{number}/mdd/{path.name}")
        assert served.status_code == 200, path.name
        source = path.read_bytes().splitlines()
        lines = served.get_data().splitlines()
        assert lines[0] == source[0] and sorted(lines[1:]) == sorted(source[1:]), path.name


def test_an_archive_killed_halfway_and_run_again_ends_with_exactly_its_versions(
        app: Flask, client: FlaskClient, database_url: str, tmp_path: Path) -> None:
    archive = archive_of(tmp_path, MDD_VERSIONS, zipped=(373,))
    first = isd(database_url, "import-archive", str(archive))
    try:  # kill it once a version past the first is in (a version is all or nothing)
        deadline = time.monotonic() + WAIT
        while len(versions(client)) < 2 and first.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        first.send_signal(signal.SIGKILL)
    finally:
        first.communicate(timeout=WAIT)
    halfway = [v["version"] for v in versions(client)]
    assert halfway == MDD_VERSIONS[:len(halfway)] and len(halfway) < len(MDD_VERSIONS)

    again = isd(database_url, "import-archive", str(archive))
    out, err = again.communicate(timeout=WAIT)
    assert again.returncode == 0, err
    lines = out.strip().splitlines()
    for number in halfway:  # one line per version off a terminal
        assert f"{number}: already published with the same content, skipped" in lines
    assert any(line.startswith("374: published, ") and "records/s" in line for line in lines)
    done = versions(client)
    assert [v["version"] for v in done] == MDD_VERSIONS
    assert [v["previous_version"] for v in done] == [None, *MDD_VERSIONS[:-1]]
    for number in MDD_VERSIONS:
        assert_exports_are_the_sources(client, number)
    manifests = [client.get(f"{API}/versions/{n}").get_json()["sha256"] for n in MDD_VERSIONS]

    # Run once more: nothing to do. Then a version whose file differs is refused by name.
    third = isd(database_url, "import-archive", str(archive))
    third.communicate(timeout=WAIT)
    assert third.returncode == 0
    gsp = archive / "372" / "GSP_Group_372.csv"
    gsp.write_text(gsp.read_text(encoding="utf-8").replace("Eastern", "East Anglia"),
                   encoding="utf-8")
    refused = isd(database_url, "import-archive", str(archive))
    _out, err = refused.communicate(timeout=WAIT)
    assert refused.returncode == 1
    assert "version 372 is already published and its gsp_group differs from " \
           "GSP_Group_372.csv" in err
    assert [client.get(f"{API}/versions/{n}").get_json()["sha256"]
            for n in MDD_VERSIONS] == manifests


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    with serving(app) as base:
        yield base


def test_a_gap_in_the_numbers_works_end_to_end_including_isd_sync(
        app: Flask, client: FlaskClient, served: str, tmp_path: Path) -> None:
    """MDD has no public 375: here 373 is missing too, and 374 follows 372."""
    runner = app.test_cli_runner()
    first = runner.invoke(args=["import-archive", str(archive_of(tmp_path / "a", [370, 372]))])
    assert first.exit_code == 0, first.output
    copy = tmp_path / "copy"
    assert sync_client.pull(served, copy).version == 372
    later = runner.invoke(args=["import-archive", str(archive_of(tmp_path / "b", [374]))])
    assert later.exit_code == 0, later.output
    assert [(v["version"], v["previous_version"]) for v in versions(client)] == [
        (370, None), (372, 370), (374, 372)]
    assert client.get(f"{API}/versions/373").status_code == 404
    result = sync_client.pull(served, copy)
    assert (result.mode, result.previous, result.version) == ("delta", 372, 374)
    state = local.read_state(copy)
    assert state is not None and state["version"] == 374
    snapshot = client.get(f"{API}/versions/374/snapshot").get_json()["entities"]
    assert local.read_records(copy, state) == snapshot
    assert_exports_are_the_sources(client, 374)
    # An older version than the latest cannot come in behind it.
    older = runner.invoke(args=["import-archive", str(archive_of(tmp_path / "c", [373]))])
    assert older.exit_code == 1
    assert "version 373 is not published and is older than the latest (374)" in older.output
