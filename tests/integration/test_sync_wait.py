"""isd-sync waits out a 503: a version's downloads are built in the background after its
publication, and a first pull that arrives before the builder has finished is answered 503
with Retry-After. The client asks again after each Retry-After, within its --wait budget,
and fails with the server's own message once the budget is spent."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import redirect_stderr
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from flask import Flask

from isd_service.entrypoints.download_builder import Builder
from isd_service.entrypoints.flask_db import new_uow
from isd_service.service_layer import download_builds
from isd_service.sync import cli as sync_cli
from isd_service.sync import client, local
from tests.conftest import http_serving, serving

MANIFEST = {"version": 7, "sha256": "0" * 64}


class Busy(BaseHTTPRequestHandler):
    """Answers /api/v1/versions/latest.json with ``busy`` 503s (Retry-After ``retry``),
    then with MANIFEST."""

    busy = 0
    retry: str | None = "1"
    asked = 0

    def do_GET(self) -> None:
        type(self).asked += 1
        if not self.path.endswith("/versions/latest.json"):
            body = json.dumps({"status": 404, "detail": "no such file"}).encode()
            self.send_response(404)
        elif type(self).busy > 0:
            type(self).busy -= 1
            body = json.dumps({"type": "download-being-built", "status": 503,
                               "detail": "version 7's downloads are being built"}).encode()
            self.send_response(503)
            if self.retry is not None:
                self.send_header("Retry-After", self.retry)
        else:
            body = json.dumps(MANIFEST).encode()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def busy_server() -> Iterator[str]:
    Busy.busy, Busy.retry, Busy.asked = 0, "1", 0
    with http_serving(Busy) as url:
        yield url


def test_a_503_is_asked_again_after_its_retry_after(
        busy_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    Busy.busy, Busy.retry = 2, "3"
    waits: list[float] = []
    monkeypatch.setattr(client, "pause", waits.append)
    said: list[str] = []
    server = client.Server(busy_server, said.append, wait=10)
    assert server.manifest(None) == MANIFEST
    assert waits == [3.0, 3.0] and Busy.asked == 3
    assert "being built" in said[0] and "again in 3 s" in said[0]


def test_past_its_wait_budget_a_pull_fails_with_the_servers_reason(
        busy_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    Busy.busy, Busy.retry = 5, "4"
    waits: list[float] = []
    monkeypatch.setattr(client, "pause", waits.append)
    server = client.Server(busy_server, wait=10)
    with pytest.raises(client.SyncError) as failed:
        server.manifest(None)
    assert waits == [4.0, 4.0]  # a third wait would pass the 10 s budget
    assert "HTTP 503" in str(failed.value) and "being built" in str(failed.value)
    assert "--wait" in str(failed.value)
    # --wait 0: at once, and the local copy untouched.
    Busy.busy = 1
    err = io.StringIO()
    with redirect_stderr(err):
        code = sync_cli.main(["status", "--server", busy_server, "--dir", "/nonexistent",
                              "--wait", "0"])
    assert code == 1 and "HTTP 503" in err.getvalue()


def test_other_errors_are_not_asked_again(
        busy_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(client, "pause", waits.append)
    server = client.Server(busy_server, wait=100)
    with pytest.raises(client.NotFound, match="no such file"):
        server.json("/versions/9/manifest.json")
    assert waits == [] and Busy.asked == 1


@pytest.mark.parametrize(("header", "seconds"), [
    (None, client.RETRY_AFTER_DEFAULT), ("10", 10.0), ("0", 1.0), ("86400",
                                                                  client.MAX_RETRY_AFTER),
    ("soon", client.RETRY_AFTER_DEFAULT)])
def test_retry_after_in_seconds(header: str | None, seconds: float) -> None:
    assert client.retry_after(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= client.retry_after(later) <= 30
    earlier = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert client.retry_after(earlier) == 1.0


def test_a_first_pull_right_after_publication_waits_for_the_background_build(
        app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real thing: the service answers 503 for the new version's snapshot while its
    build job waits for a builder; the builder runs while the client waits; the pull ends
    with the version, verified."""
    app.config["DOWNLOAD_BUILDS"] = "background"
    app.config["DOWNLOAD_BUILD_POLL_SECONDS"] = 120.0
    with app.app_context(), new_uow(app) as unit:
        download_builds.announce(unit, "a-builder-elsewhere")
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    waits: list[float] = []

    def builder_runs_meanwhile(seconds: float) -> None:
        waits.append(seconds)
        assert [o.state for o in Builder(app, runner="test").run_due()] == ["done"]

    monkeypatch.setattr(client, "pause", builder_runs_meanwhile)
    with serving(app) as url:
        with pytest.raises(client.SyncError, match="HTTP 503"):
            next(client.Server(url, wait=0).ndjson("/versions/1/snapshot.ndjson"))
        result = client.pull(url, tmp_path / "copy", wait=60)
    assert waits == [10.0]  # the service's Retry-After
    assert result.version == 1 and result.mode == "snapshot"
    state = local.read_state(tmp_path / "copy")
    assert state is not None and state["version"] == 1
