"""Webhooks: the admin API, one signed notice per publication and subscriber, retries,
every attempt recorded; against a real receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from isd_service.entrypoints import webhook_worker
from isd_service.service_layer import webhooks

WAIT = 30  # seconds: a bound on waits, never a sleep


class Receiver:
    """An HTTP endpoint that records every POST and answers ``fail_first`` times with 500."""

    def __init__(self, fail_first: int = 0, status: int = 500) -> None:
        self.fail_first = fail_first
        self.status = status
        self.received: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.changed:
                    failing = len(receiver.received) < receiver.fail_first
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.received.append({"path": self.path, "body": body,
                                              "headers": headers,
                                              "answered": receiver.status if failing else 200})
                    receiver.changed.notify_all()
                self.send_response(receiver.status if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.received) >= count, WAIT), (
                f"got {len(self.received)} of {count} notices")
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(WAIT)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def fast(app: Flask) -> Iterator[Flask]:
    """Retries after 10 ms, 20 ms, ...: the tests wait on events, not on the clock."""
    app.config.update(WEBHOOK_BACKOFF_SECONDS=0.01, WEBHOOK_MAX_ATTEMPTS=4,
                      WEBHOOK_TIMEOUT_SECONDS=5, PUBLIC_URL="https://isd.example/")
    yield app
    assert webhook_worker.wait_idle(app, WAIT)


def subscribe(client: FlaskClient, headers: dict[str, str], url: str,
              **extra: Any) -> dict[str, Any]:
    response = client.post("/api/v1/admin/webhooks", headers=headers, json={"url": url, **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def publish(client: FlaskClient, headers: dict[str, str]) -> int:
    response = client.post("/api/v1/admin/publications", headers=headers, json={"force": True})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["version"]


def deliveries(client: FlaskClient, headers: dict[str, str], sub: int) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/admin/webhooks/{sub}/deliveries", headers=headers)
    assert response.status_code == 200
    return response.get_json()["deliveries"]


def test_subscriptions_are_for_admins_and_show_the_secret_once(
        client: FlaskClient, admin_headers: dict[str, str],
        publisher_headers: dict[str, str]) -> None:
    assert client.get("/api/v1/admin/webhooks").status_code == 401
    assert client.get("/api/v1/admin/webhooks", headers=publisher_headers).status_code == 403
    refused = client.post("/api/v1/admin/webhooks", headers=publisher_headers,
                          json={"url": "http://127.0.0.1:1/x"})
    assert refused.status_code == 403
    for body, field in [({"url": "ftp://x/y"}, "url"), ({"url": "http://u:p@h/"}, "url"),
                        ({}, "url"), ({"url": "http://h/", "envelope": "soap"}, "envelope"),
                        ({"url": "http://h/", "colour": 1}, "colour")]:
        bad = client.post("/api/v1/admin/webhooks", headers=admin_headers, json=body)
        assert bad.status_code == 422, body
        assert bad.mimetype == "application/problem+json"
        assert field in [e["field"] for e in bad.get_json()["errors"]], body
    assert client.post("/api/v1/admin/webhooks", headers=admin_headers,
                       data="x").status_code == 415
    one = subscribe(client, admin_headers, "https://participant.example/isd", description="A")
    two = subscribe(client, admin_headers, "https://other.example/isd")
    assert one["secret"].startswith("whsec_") and one["secret"] != two["secret"]
    listed = client.get("/api/v1/admin/webhooks", headers=admin_headers).get_json()["webhooks"]
    assert [w["id"] for w in listed] == [one["id"], two["id"]]
    assert all("secret" not in w for w in listed)
    assert client.delete(f"/api/v1/admin/webhooks/{one['id']}",
                         headers=admin_headers).status_code == 204
    listed = client.get("/api/v1/admin/webhooks", headers=admin_headers).get_json()["webhooks"]
    assert [w["id"] for w in listed] == [two["id"]]
    gone = client.get(f"/api/v1/admin/webhooks/{one['id']}", headers=admin_headers).get_json()
    assert gone["deleted_at"] is not None
    missing = client.get("/api/v1/admin/webhooks/999/deliveries", headers=admin_headers)
    assert missing.status_code == 404
    assert missing.mimetype == "application/problem+json"


def test_one_signed_notice_per_publication_and_subscriber(
        fast: Flask, client: FlaskClient, admin_headers: dict[str, str],
        receiver: Receiver) -> None:
    first = subscribe(client, admin_headers, receiver.url("/one"))
    second = subscribe(client, admin_headers, receiver.url("/two"))
    secrets = {"/one": first["secret"], "/two": second["secret"]}
    assert fast.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    later = publish(client, admin_headers)
    got = receiver.wait_for(4)
    assert webhook_worker.wait_idle(fast, WAIT)
    # Nothing more is due: running the sender again sends nothing.
    result = fast.test_cli_runner().invoke(args=["webhooks", "deliver"])
    assert result.output.strip() == "nothing pending"
    assert len(receiver.received) == 4
    seen = set()
    for notice in got:
        secret = secrets[notice["path"]]
        expected = "sha256=" + hmac.new(secret.encode(), notice["body"],
                                        hashlib.sha256).hexdigest()
        assert notice["headers"]["x-isd-signature"] == expected
        other = secrets["/two" if notice["path"] == "/one" else "/one"]
        assert notice["headers"]["x-isd-signature"] != "sha256=" + hmac.new(
            other.encode(), notice["body"], hashlib.sha256).hexdigest()
        body = json.loads(notice["body"])
        assert notice["headers"]["x-isd-event"] == body["event"] == "version.published"
        seen.add((notice["path"], body["version"]))
        manifest = client.get(f"/api/v1/versions/{body['version']}").get_json()
        for field in ("sha256", "catalogue_sha256", "record_count", "go_live_date",
                      "previous_version", "entities"):
            assert body[field] == manifest[field]
        assert body["links"]["manifest"] == (
            f"https://isd.example/api/v1/versions/{body['version']}")
        assert "records" not in body and len(notice["body"]) < 10_000  # never the data
    assert seen == {("/one", 1), ("/one", later), ("/two", 1), ("/two", later)}
    for sub in (first, second):
        rows = deliveries(client, admin_headers, sub["id"])
        assert [(d["version"], d["state"], d["attempts"]) for d in rows] == [
            (later, "delivered", 1), (1, "delivered", 1)]
        assert [t["status_code"] for t in rows[0]["tries"]] == [200]


def test_a_failing_receiver_gets_the_same_notice_again_until_it_answers(
        fast: Flask, client: FlaskClient, admin_headers: dict[str, str]) -> None:
    flaky = Receiver(fail_first=2)
    try:
        sub = subscribe(client, admin_headers, flaky.url())
        assert fast.test_cli_runner().invoke(args=["seed"]).exit_code == 0
        got = flaky.wait_for(3)
        assert webhook_worker.wait_idle(fast, WAIT)
    finally:
        flaky.close()
    assert [n["answered"] for n in got] == [500, 500, 200]
    assert len({n["body"] for n in got}) == 1  # the same notice, the same signature
    assert len({n["headers"]["x-isd-signature"] for n in got}) == 1
    assert len({n["headers"]["x-isd-delivery"] for n in got}) == 1
    [row] = deliveries(client, admin_headers, sub["id"])
    assert row["state"] == "delivered" and row["attempts"] == 3
    assert [(t["number"], t["status_code"], t["error"]) for t in row["tries"]] == [
        (1, 500, "HTTP 500"), (2, 500, "HTTP 500"), (3, 200, None)]


def test_the_sender_gives_up_after_the_last_attempt(
        fast: Flask, client: FlaskClient, admin_headers: dict[str, str]) -> None:
    fast.config["WEBHOOK_MAX_ATTEMPTS"] = 2
    broken = Receiver(fail_first=100, status=503)
    closed = Receiver()
    nowhere = closed.url()
    closed.close()  # nothing listens there any more
    try:
        sub = subscribe(client, admin_headers, broken.url())
        lost = subscribe(client, admin_headers, nowhere)
        assert fast.test_cli_runner().invoke(args=["seed"]).exit_code == 0
        broken.wait_for(2)
        assert webhook_worker.wait_idle(fast, WAIT)
    finally:
        broken.close()
    assert len(broken.received) == 2
    [row] = deliveries(client, admin_headers, sub["id"])
    assert (row["state"], row["attempts"]) == ("failed", 2)
    assert [t["status_code"] for t in row["tries"]] == [503, 503]
    [row] = deliveries(client, admin_headers, lost["id"])
    assert (row["state"], row["attempts"]) == ("failed", 2)
    assert all(t["status_code"] is None and t["error"] for t in row["tries"])


def test_queue_mode_sends_only_from_the_command_and_dip_envelopes_are_small(
        app: Flask, client: FlaskClient, admin_headers: dict[str, str],
        receiver: Receiver) -> None:
    app.config["WEBHOOK_DELIVERY"] = "queue"
    sub = subscribe(client, admin_headers, receiver.url(), envelope="dip")
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    [row] = deliveries(client, admin_headers, sub["id"])
    assert (row["state"], row["attempts"]) == ("pending", 0)
    assert receiver.received == []
    result = app.test_cli_runner().invoke(args=["webhooks", "deliver"])
    assert result.exit_code == 0 and result.output.strip() == "nothing pending"
    [notice] = receiver.received
    assert len(notice["body"]) < webhooks.MAX_DIP_BYTES
    payload = json.loads(notice["body"])["payload"]
    common = payload["CommonBlock"]
    assert set(common) == {"S0", "S1", "D0"}
    assert common["S0"]["eventCode"] == "ISD_VERSION_PUBLISHED"
    assert common["D0"]["publicationID"] == "ISD-1"
    assert common["D0"]["replayIndicator"] is False
    assert common["S1"]["senderCorrelationID"] == common["D0"]["initialCorrelationID"]
    assert payload["CustomBlock"]["version"] == 1
    assert payload["CustomBlock"]["sha256"] == client.get("/api/v1/versions/1").get_json()[
        "sha256"]
