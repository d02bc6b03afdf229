"""isd-sync against a real server on 127.0.0.1, through the five real MDD versions.

The server runs in a thread on a free port, in front of it a small WSGI layer that can cut a
download short, hold it halfway (so that the test can kill the client mid-download) or
tamper with one record: each fault must leave the local copy as it was, and the next pull
must bring it to the server's snapshot exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from isd_service.sync import client, local
from tests.conftest import MDD_VERSIONS, database_of, make_app, publish_mdd, reset

WAIT = 60  # seconds: a bound on every wait, never a sleep


class Faults:
    """What the next snapshot or delta download suffers: None, "cut", "hold" or "tamper"."""

    def __init__(self) -> None:
        self.mode: str | None = None
        self.held = threading.Event()
        self.release = threading.Event()

    def wrap(self, app: Any) -> Any:
        def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            mode = self.mode
            if mode is None or not ("/snapshot" in path or "/deltas" in path):
                return app(environ, start_response)
            self.mode = None  # one fault per arming

            def start(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
                headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
                return start_response(status, headers, *exc)

            body = b"".join(app(environ, start))
            return self._fault(mode, body)

        return wsgi

    def _fault(self, mode: str, body: bytes) -> Iterator[bytes]:
        half = len(body) // 2
        if mode == "cut":  # the connection drops in the middle of a line
            yield body[:half]
            return
        if mode == "hold":
            yield body[:half]
            self.held.set()
            self.release.wait(WAIT)
            return
        lines = body.split(b"\n")  # tamper: change one value of the first record
        change = json.loads(lines[1])
        record = change["record"]
        field = next(k for k, v in record.items() if isinstance(v, str))
        record[field] += "X"
        lines[1] = json.dumps(change).encode()
        yield b"\n".join(lines)


@pytest.fixture(scope="module")
def served(database_url: str, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Flask, str, Faults]]:
    app = make_app(database_url, tmp_path_factory.mktemp("sync"))
    with app.app_context():
        reset(app)
    faults = Faults()
    server = make_server("127.0.0.1", 0, faults.wrap(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}", faults
    faults.release.set()
    server.shutdown()
    thread.join(WAIT)
    database_of(app).engine.dispose()


def sync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "isd_service.sync", *args],
                          capture_output=True, text=True, timeout=300, check=False)


def server_snapshot(app: Flask, version: int) -> dict[str, list[dict[str, Any]]]:
    response = app.test_client().get(f"/api/v1/versions/{version}/snapshot")
    assert response.status_code == 200
    return response.get_json()["entities"]


def assert_holds(app: Flask, root: Path, version: int) -> None:
    """The local copy is version ``version``, record for record, in the server's order."""
    state = local.read_state(root)
    assert state is not None and state["version"] == version
    assert local.read_records(root, state) == server_snapshot(app, version)
    leftovers = [p.name for p in root.iterdir() if p.name.startswith((".tmp-", ".current-"))]
    assert len([p for p in root.iterdir() if p.name.startswith("data-")]) == 1, leftovers


@pytest.mark.mdd
def test_sync_keeps_a_local_copy_through_five_mdd_versions(
        served: tuple[Flask, str, Faults], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    app, url, faults = served
    as_csv, as_sqlite = tmp_path / "csv", tmp_path / "sqlite"
    first, second, third, fourth, fifth = MDD_VERSIONS

    publish_mdd(app, first)
    out = sync("pull", "--server", url, "--dir", str(as_csv))
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # quiet when not on a terminal
    assert f"version {first}: snapshot applied" in out.stdout
    assert sync("pull", "--server", url, "--dir", str(as_sqlite),
                "--format", "sqlite").returncode == 0
    assert_holds(app, as_csv, first)
    assert_holds(app, as_sqlite, first)
    assert (as_csv / "current" / "gsp_group.csv").is_file()
    assert (as_sqlite / "current" / "isd.sqlite3").is_file()
    status = sync("status", "--server", url, "--dir", str(as_csv))
    assert status.stdout.strip() == f"held: {first}; latest on the server: {first} (up to date)"

    # A download cut off in the middle: refused, nothing changes, the next pull completes.
    publish_mdd(app, second)
    status = sync("status", "--server", url, "--dir", str(as_csv))
    assert f"version {second} is available" in status.stdout
    faults.mode = "cut"
    out = sync("pull", "--server", url, "--dir", str(as_csv))
    assert out.returncode == 1
    assert "cut off" in out.stderr and "the local copy was not changed" in out.stderr
    assert_holds(app, as_csv, first)
    out = sync("pull", "--server", url, "--dir", str(as_csv))
    assert out.returncode == 0, out.stderr
    assert f"version {second}: delta applied" in out.stdout
    assert_holds(app, as_csv, second)
    assert sync("pull", "--server", url, "--dir", str(as_sqlite)).returncode == 0
    assert_holds(app, as_sqlite, second)

    # The client killed halfway through a download: the previous version stays, then resumes.
    publish_mdd(app, third)
    faults.held.clear()
    faults.release.clear()
    faults.mode = "hold"
    proc = subprocess.Popen([sys.executable, "-m", "isd_service.sync", "pull", "--server",
                             url, "--dir", str(as_csv)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert faults.held.wait(WAIT), "the download never reached its middle"
        proc.kill()
        proc.wait(WAIT)
    finally:
        faults.release.set()
    assert_holds(app, as_csv, second)
    assert sync("pull", "--server", url, "--dir", str(as_csv)).returncode == 0
    assert_holds(app, as_csv, third)
    assert sync("pull", "--server", url, "--dir", str(as_sqlite)).returncode == 0
    assert_holds(app, as_sqlite, third)

    # One value changed on the way: it does not verify, and the copy stays as it was.
    publish_mdd(app, fourth)
    faults.mode = "tamper"
    out = sync("pull", "--server", url, "--dir", str(as_csv))
    assert out.returncode == 1
    assert "does not verify" in out.stderr, out.stderr
    assert_holds(app, as_csv, third)
    assert sync("pull", "--server", url, "--dir", str(as_csv)).returncode == 0
    assert_holds(app, as_csv, fourth)
    assert sync("pull", "--server", url, "--dir", str(as_sqlite)).returncode == 0
    assert_holds(app, as_sqlite, fourth)

    # A failure while the new version is being written (disk full, power cut before the
    # switch): the old version stays current and nothing half-written is left behind.
    publish_mdd(app, fifth)
    calls = {"n": 0}
    real_fsync_dir = local._fsync_dir

    def failing_fsync_dir(path: Path) -> None:
        calls["n"] += 1
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local, "_fsync_dir", failing_fsync_dir)
    with pytest.raises(OSError, match="No space left"):
        client.pull(url, as_sqlite)
    assert calls["n"] == 1
    monkeypatch.setattr(local, "_fsync_dir", real_fsync_dir)
    assert_holds(app, as_sqlite, fourth)
    assert client.pull(url, as_sqlite).mode == "delta"
    assert_holds(app, as_sqlite, fifth)
    out = sync("pull", "--server", url, "--dir", str(as_csv))
    assert out.returncode == 0 and "delta applied" in out.stdout
    assert_holds(app, as_csv, fifth)
    out = sync("pull", "--server", url, "--dir", str(as_csv))
    assert out.stdout.strip() == f"version {fifth}: already held"

    # Going back to an older version takes its full snapshot.
    out = sync("pull", "--server", url, "--dir", str(as_csv), "--version", str(third))
    assert out.returncode == 0 and "snapshot applied" in out.stdout
    assert_holds(app, as_csv, third)


def test_a_damaged_local_copy_is_not_built_on(served: tuple[Flask, str, Faults],
                                              tmp_path: Path) -> None:
    app, url, _faults = served
    with app.app_context():
        reset(app)
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    root = tmp_path / "copy"
    assert sync("pull", "--server", url, "--dir", str(root)).returncode == 0
    assert_holds(app, root, 1)
    target = root / "current" / "gsp_group.csv"
    target.write_text(target.read_text().replace("_A", "_Q", 1))
    app.test_cli_runner().invoke(args=["publish", "--force"])
    out = sync("pull", "--server", url, "--dir", str(root))
    assert out.returncode == 1
    assert "gsp_group does not verify" in out.stderr
    assert "is damaged" in out.stderr and "to download a full snapshot" in out.stderr
    (root / "current").unlink()  # as the message says: the next pull starts afresh
    assert sync("pull", "--server", url, "--dir", str(root)).returncode == 0
    assert_holds(app, root, 2)


def test_errors_are_clear_and_change_nothing(served: tuple[Flask, str, Faults],
                                             tmp_path: Path) -> None:
    _app, url, _faults = served
    out = sync("pull", "--server", url, "--dir", str(tmp_path / "x"), "--version", "999999")
    assert out.returncode == 1
    assert "HTTP 404" in out.stderr and "999999" in out.stderr
    assert not (tmp_path / "x" / "current").exists()
    out = sync("pull", "--server", "http://127.0.0.1:9", "--dir", str(tmp_path / "y"))
    assert out.returncode == 1 and "cannot reach the server" in out.stderr
    with local.locked(tmp_path / "z"):  # a pull already running in that folder
        out = sync("pull", "--server", url, "--dir", str(tmp_path / "z"))
    assert out.returncode == 1 and "another pull is running" in out.stderr


def test_the_client_imports_without_flask() -> None:
    code = ("import sys, isd_service.sync.cli; "
            "bad = [m for m in ('flask', 'sqlalchemy', 'werkzeug') if m in sys.modules]; "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]"
