"""HTTP hygiene: security headers on every answer, CORS only for public reads, no stack trace
or SQL in an error body, JSON request logs without tokens, 413 for oversized requests, and
503 while the database is away, with recovery when it is back."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from werkzeug.test import TestResponse

from isd_service.entrypoints.app import create_app
from isd_service.entrypoints.cli.database import upgrade_database
from isd_service.entrypoints.flask_db import session
from isd_service.service_layer import audit
from tests.conftest import database_of, token_for

API = "/api/v1"
ADMIN = f"{API}/admin"
GSP = b"gsp_group_id,gsp_group_name\n_A,Eastern\n"


def check_security_headers(response: TestResponse) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp


def post_gsp(client: FlaskClient, headers: dict[str, str], content: bytes = GSP) -> TestResponse:
    return client.post(f"{ADMIN}/loads", headers=headers, content_type="multipart/form-data",
                       data={"format": "csv", "mode": "upsert",
                             "file": (io.BytesIO(content), "gsp_group.csv")})


def test_every_answer_carries_the_security_headers(
    client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    answers = [
        client.get(f"{API}/catalogue"),                      # 200, public
        client.get(f"{API}/versions/latest"),                # 404 problem
        client.get(f"{API}/versions?limit=0"),               # 400 problem
        client.get(f"{ADMIN}/draft"),                        # 401
        client.get(f"{ADMIN}/draft", headers=admin_headers),  # 200, admin
        post_gsp(client, admin_headers),                     # 201
        client.post(f"{API}/catalogue"),                     # 405
        client.get("/nowhere"),                              # 404 outside the API
    ]
    assert [r.status_code for r in answers] == [200, 404, 400, 401, 200, 201, 405, 404]
    for response in answers:
        check_security_headers(response)
        assert response.headers["X-Request-Id"]


def test_cors_is_open_for_public_reads_only(
    client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    origin = {"Origin": "https://example.org"}
    public = client.get(f"{API}/catalogue", headers=origin)
    assert public.headers["Access-Control-Allow-Origin"] == "*"
    missing = client.get(f"{API}/versions/latest", headers=origin)
    assert missing.headers["Access-Control-Allow-Origin"] == "*"  # a public 404 is public
    preflight = client.options(f"{API}/versions", headers={
        **origin, "Access-Control-Request-Method": "GET"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" not in preflight.headers["Access-Control-Allow-Methods"]

    closed = [
        client.get(f"{ADMIN}/draft", headers={**origin, **admin_headers}),
        client.get(f"{ADMIN}/draft", headers=origin),
        client.options(f"{ADMIN}/loads", headers={**origin,
                                                  "Access-Control-Request-Method": "POST"}),
        client.get(f"{ADMIN}", headers=origin),
        client.post(f"{API}/catalogue", headers=origin),
    ]
    for response in closed:
        assert "Access-Control-Allow-Origin" not in response.headers, response.request.path
    assert public.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert closed[0].headers["Cross-Origin-Resource-Policy"] == "same-origin"


def test_an_internal_error_shows_no_stack_trace_nor_sql(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    def broken_database(*_a: Any, **_k: Any) -> None:
        raise ProgrammingError("SELECT secret_column FROM api_token WHERE token_sha256 = ?",
                               {}, Exception('relation "api_token" is broken'))

    def broken_code(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("Traceback: /srv/isd/releases.py line 12 password=hunter2")

    assert post_gsp(client, admin_headers).status_code == 201
    for failure in (broken_database, broken_code):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(audit, "version_published", failure)
            response = client.post(f"{ADMIN}/publications", headers=admin_headers, json={})
        assert response.status_code == 500
        assert response.mimetype == "application/problem+json"
        body = response.get_data(as_text=True)
        assert json.loads(body)["detail"] == "internal error"
        for leak in ("SELECT", "secret_column", "api_token", "Traceback", "releases.py",
                     "hunter2", "File "):
            assert leak not in body
        check_security_headers(response)
    # ... and nothing was published
    assert client.get(f"{API}/versions/latest").status_code == 404


def test_request_logs_are_json_and_never_hold_a_token(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    token = token_for(app, "admin", org="EXDA")
    with caplog.at_level(logging.INFO, logger="isd_service.requests"):
        client.get(f"{ADMIN}/draft", headers={"Authorization": f"Bearer {token}"})
        client.get(f"{ADMIN}/draft", headers={"Authorization": f"Bearer {token}x"})
        client.get(f"{API}/catalogue?entity=x", headers={"X-Request-Id": "abc-123"})
    lines = [json.loads(r.getMessage()) for r in caplog.records
             if r.name == "isd_service.requests"]
    assert [(e["method"], e["path"], e["status"]) for e in lines] == [
        ("GET", f"{ADMIN}/draft", 200), ("GET", f"{ADMIN}/draft", 401),
        ("GET", f"{API}/catalogue", 400)]
    assert lines[0]["organisation"] == "EXDA" and isinstance(lines[0]["token_id"], int)
    assert lines[1]["token_id"] is None
    assert lines[2]["request_id"] == "abc-123"
    assert all(isinstance(e["duration_ms"], float) for e in lines)
    assert token not in caplog.text and token[4:20] not in caplog.text


def test_an_oversized_request_is_a_413_problem_and_changes_nothing(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 2000
    app.config["MAX_FORM_MEMORY_SIZE"] = 2000
    big = GSP + b"".join(b"_%s,%s\n" % (bytes([65 + i % 26]), b"x" * 40) for i in range(100))
    for response in (
        post_gsp(client, admin_headers, big),
        client.post(f"{ADMIN}/publications", headers=admin_headers,
                    data=json.dumps({"go_live_date": "2026-01-01", "pad": "x" * 5000}),
                    content_type="application/json"),
    ):
        assert response.status_code == 413
        assert response.mimetype == "application/problem+json"
        assert "2000 bytes" in response.get_json()["detail"]
    assert client.get(f"{ADMIN}/draft", headers=admin_headers).get_json()["entities"] == {}
    assert client.get(f"{API}/versions/latest").status_code == 404


# --- the database going away ----------------------------------------------------------------

class Proxy:
    """A TCP relay on a loopback port to the real database, that can be cut and restored."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.listener: socket.socket | None = None
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self.listener = listener
        self._spawn(self._accept, listener)

    def stop(self) -> None:
        """Close the port and cut every open connection, as a database restart does."""
        for s in [self.listener, *self.sockets]:
            if s is not None:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
        self.listener = None
        self.sockets = []
        for t in self.threads:
            t.join(timeout=5)
        self.threads = []

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target, timeout=10)
            self.sockets += [client, server]
            self._spawn(self._pump, client, server)
            self._spawn(self._pump, server, client)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def flaky_app(app: Flask, database_url: str, tmp_path: Path) -> Iterator[tuple[Flask, Any]]:
    """An app whose database can be taken away and brought back: (app, bring_back, take)."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
        flaky = create_app({"TESTING": True, "DATABASE_URL": url.set(
            host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)})
        yield flaky, proxy
        proxy.stop()
    else:
        # SQLite: the database file's folder does not exist until it is brought back.
        path = tmp_path / "away" / "isd.sqlite3"
        flaky = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{path}"})

        class Folder:
            def start(self) -> None:
                path.parent.mkdir(exist_ok=True)
                with flaky.app_context():
                    upgrade_database(flaky)
                    session().close()

            def stop(self) -> None:
                database_of(flaky).engine.dispose()
                path.parent.rename(tmp_path / f"gone-{len(list(tmp_path.iterdir()))}")

        yield flaky, Folder()
    database_of(flaky).engine.dispose()


def assert_unavailable(response: TestResponse) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 503 and "database" in body["detail"]
    for leak in ("psycopg", "sqlite", "127.0.0.1", "SELECT", "Traceback"):
        assert leak not in response.get_data(as_text=True)
    check_security_headers(response)


def test_the_database_away_is_a_503_and_the_service_recovers(
    flaky_app: tuple[Flask, Any]
) -> None:
    app, database = flaky_app
    client = app.test_client()
    assert_unavailable(client.get(f"{API}/catalogue"))
    assert_unavailable(client.get(f"{API}/versions/latest"))
    database.start()
    assert client.get(f"{API}/catalogue").status_code == 200
    assert client.get(f"{API}/catalogue").status_code == 200  # a pooled connection
    database.stop()
    assert_unavailable(client.get(f"{API}/catalogue"))
    assert_unavailable(client.get(f"{ADMIN}/draft", headers={"Authorization": "Bearer x"}))
    database.start()
    response = client.get(f"{API}/catalogue")
    assert response.status_code == 200
    assert "gsp_group" in [e["id"] for e in response.get_json()["entities"]]
