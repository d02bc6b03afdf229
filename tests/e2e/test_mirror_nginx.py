"""A static mirror served by Debian's nginx (with docs/nginx-mirror.conf): every path gives
the application's bytes and headers, and isd-sync follows the real MDD versions from nginx
alone, across a gap of several versions by skip deltas."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from isd_service.sync import client, local
from tests.conftest import MDD_VERSIONS, PROJECT_ROOT, database_of, make_app, publish_mdd, reset

WAIT = 30  # seconds: a bound on waiting for nginx to listen
SERVER_CONF = PROJECT_ROOT / "docs" / "nginx-mirror.conf"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nginx:
    """nginx in the foreground, rooted at ``root``, with the documented server block."""

    def __init__(self, root: Path, work: Path):
        binary = nginx_binary()
        if binary is None:
            pytest.skip("Debian's nginx is not installed (apt-get install nginx-light)")
        work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.access_log = work / "access.log"
        server = SERVER_CONF.read_text()
        server = server.replace("listen 8080;", f"listen 127.0.0.1:{self.port};")
        server = server.replace("root /srv/isd-mirror;", f"root {root};")
        (work / "server.conf").write_text(server)
        temps = " ".join(f"{kind}_temp_path {work / kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (work / "nginx.conf").write_text(
            f"daemon off;\nmaster_process off;\npid {work / 'nginx.pid'};\n"
            f"error_log {work / 'error.log'};\nevents {{ worker_connections 256; }}\n"
            f"http {{ access_log {self.access_log}; {temps} include {work / 'server.conf'}; }}\n")
        self.proc = subprocess.Popen([binary, "-e", str(work / "error.log"), "-p", str(work),
                                      "-c", str(work / "nginx.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + WAIT
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"nginx did not start: {(work / 'error.log').read_text()}")
                time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> tuple[bytes, dict[str, str]]:
        with urllib.request.urlopen(self.url + path, timeout=WAIT) as response:
            return response.read(), dict(response.headers)

    def requested(self) -> list[str]:
        """The paths asked for so far, in order (from the access log)."""
        text = self.access_log.read_text() if self.access_log.exists() else ""
        return re.findall(r'"GET (\S+) HTTP', text)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(WAIT)


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = make_app(database_url, tmp_path)
    with app.app_context():
        reset(app)
    yield app
    database_of(app).engine.dispose()


def sync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "isd_service.sync", *args],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})


def mirror(app: Flask, root: Path) -> None:
    result = app.test_cli_runner().invoke(args=["mirror", str(root)])
    assert result.exit_code == 0, result.output


def app_snapshot(app: Flask, version: int) -> dict[str, list[dict[str, object]]]:
    return app.test_client().get(f"/api/v1/versions/{version}/snapshot.json").get_json()[
        "entities"]


def holds(app: Flask, root: Path, version: int) -> bool:
    state = local.read_state(root)
    return (state is not None and state["version"] == version
            and local.read_records(root, state) == app_snapshot(app, version))


@pytest.mark.mdd
def test_isd_sync_follows_the_real_mdd_versions_from_nginx_alone(app: Flask,
                                                                 tmp_path: Path) -> None:
    first, second, *_rest, last = MDD_VERSIONS
    root = tmp_path / "mirror"
    copy, other = tmp_path / "copy", tmp_path / "other"
    publish_mdd(app, first)
    mirror(app, root)
    nginx = Nginx(root, tmp_path / "nginx")
    try:
        out = sync("pull", "--server", nginx.url, "--dir", str(copy))
        assert out.returncode == 0, out.stderr
        assert f"version {first}: snapshot applied" in out.stdout
        assert holds(app, copy, first)
        assert sync("pull", "--server", nginx.url, "--dir", str(other)).returncode == 0

        publish_mdd(app, second)
        out = sync("status", "--server", nginx.url, "--dir", str(copy))
        assert f"latest on the server: {first}" in out.stdout  # not mirrored yet
        mirror(app, root)
        out = sync("pull", "--server", nginx.url, "--dir", str(copy))
        assert out.returncode == 0, out.stderr
        assert f"version {second}: delta applied" in out.stdout and "1 delta file" in out.stdout
        assert holds(app, copy, second)

        for version in MDD_VERSIONS[2:]:
            publish_mdd(app, version)
        mirror(app, root)
        # 371 -> 374 (positions 1 -> 4): 371-372, then the skip delta 372-374.
        before = len(nginx.requested())
        result = client.pull(nginx.url, copy)
        assert (result.mode, result.version, result.deltas) == ("delta", last, 2)
        deltas = [p for p in nginx.requested()[before:] if p.startswith("/api/v1/deltas/")]
        assert deltas == [f"/api/v1/deltas/{second}-{second + 1}.ndjson",
                          f"/api/v1/deltas/{second + 1}-{last}.ndjson"]
        assert holds(app, copy, last)
        # 370 -> 374 (positions 0 -> 4): a single skip delta bridges the four versions.
        before = len(nginx.requested())
        result = client.pull(nginx.url, other)
        assert (result.mode, result.version, result.deltas) == ("delta", last, 1)
        deltas = [p for p in nginx.requested()[before:] if p.startswith("/api/v1/deltas/")]
        assert deltas == [f"/api/v1/deltas/{first}-{last}.ndjson"]
        assert holds(app, other, last)
        assert not any("?" in p for p in nginx.requested())

        # The mirror is an exact copy: every path, through nginx, as the application answers.
        test_client = app.test_client()
        paths = sorted("/" + p.relative_to(root).as_posix() for p in root.rglob("*")
                       if p.is_file())
        assert len(paths) > 5 * 25
        for path in paths:
            body, headers = nginx.get(path)
            answer = test_client.get(path)
            assert answer.status_code == 200, path
            assert body == answer.get_data(), path
            assert headers["Content-Type"] == answer.headers["Content-Type"], path
            assert headers["Cache-Control"] == answer.headers["Cache-Control"], path
    finally:
        nginx.stop()
