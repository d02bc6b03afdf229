"""Two real web processes (gunicorn, the repository's gunicorn.conf.py) on one database, each
with its own download folder as on two machines: both serve the same versions byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from isd_service import PROJECT_ROOT
from tests.integration.test_downloads import publish_seed_and_change

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(base: str, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(base + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def start(database_url: str, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "ISD_DATABASE_URL": database_url, "ISD_BIND": f"127.0.0.1:{port}",
           "ISD_WORKERS": "2", "ISD_DOWNLOADS_DIR": str(folder / "downloads")}
    log = (folder / "gunicorn.log").open("wb")
    with log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(PROJECT_ROOT / "gunicorn.conf.py")],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}/api/v1"


def wait_until_serving(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            if get(base, "/versions/latest")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer within {START_TIMEOUT}s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture
def two_servers(app: Flask, tmp_path: Path) -> Iterator[list[str]]:
    publish_seed_and_change(app)
    url = app.config["DATABASE_URL"]
    processes = []
    bases = []
    try:
        for name in ("web1", "web2"):
            folder = tmp_path / name
            folder.mkdir()
            process, base = start(url, folder)
            processes.append(process)
            bases.append(base)
        for process, base, name in zip(processes, bases, ("web1", "web2"), strict=True):
            wait_until_serving(process, base, tmp_path / name / "gunicorn.log")
        yield bases
    finally:
        for process in processes:
            stop(process)


def test_two_web_processes_serve_the_same_versions_byte_for_byte(
    two_servers: list[str]
) -> None:
    first, second = two_servers
    paths = ["/versions/latest", "/versions", "/deltas?from=1&to=2", "/deltas?from=0",
             "/deltas?from=1&format=ndjson"]
    for number in (1, 2):
        status, _headers, body = get(first, f"/versions/{number}")
        assert status == 200
        manifest = json.loads(body)
        paths += [f"/versions/{number}", f"/versions/{number}/SHA256SUMS"]
        # Every download, each from a different process than the manifest came from.
        for item in manifest["downloads"]:
            assert item["url"].startswith("/api/v1/")
            path = item["url"][len("/api/v1"):]
            other = get(second, path)
            assert other[0] == 200
            assert hashlib.sha256(other[2]).hexdigest() == item["sha256"], path
            paths.append(path)
    for path in paths:
        a = get(first, path)
        b = get(second, path)
        assert a[0] == b[0] == 200, path
        assert a[2] == b[2], path
        assert a[1].get("ETag") == b[1].get("ETag"), path
        assert a[1].get("Last-Modified") == b[1].get("Last-Modified"), path
        assert a[1].get("Cache-Control") == b[1].get("Cache-Control"), path
        # A validator from one process is honoured by the other.
        if "ETag" in a[1]:
            assert get(second, path, **{"If-None-Match": a[1]["ETag"]})[0] == 304, path
    zipped = [get(base, "/versions/2/snapshot?format=json", **{"Accept-Encoding": "gzip"})
              for base in two_servers]
    assert zipped[0][1]["Content-Encoding"] == "gzip"
    assert zipped[0][2] == zipped[1][2]
    ranged = [get(base, "/versions/2/snapshot?format=ndjson", Range="bytes=10-99")
              for base in two_servers]
    assert ranged[0][0] == ranged[1][0] == 206
    assert ranged[0][2] == ranged[1][2] and len(ranged[0][2]) == 90
