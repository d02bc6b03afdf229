"""`isd mirror s3://bucket/prefix`: the same files as a folder mirror, each with the
Content-Type and Cache-Control the application sends, incremental by hash; and isd-sync
pulls from the bucket's plain HTTP URLs.

The bucket is moto's standalone server (from PyPI), started here on a free port: a stand-in
for an S3-compatible store, since no S3 server installs from Debian or PyPI here (MinIO,
Garage and SeaweedFS are not packaged for this Debian)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from flask import Flask
from flask.testing import FlaskClient

from isd_service.sync import client as sync_client
from isd_service.sync import local
from tests.integration.test_mirror import files_of, mirror, publish_versions

WAIT = 30  # seconds: a bound on waiting for the server to listen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    executable = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if executable is None:
        pytest.skip("moto's server is not installed (pip install 'moto[server]')")
    port = free_port()
    proc = subprocess.Popen([executable, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + WAIT
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not listen on port {port}")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(WAIT)


@pytest.fixture
def bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
           ) -> Iterator[str]:
    """A fresh bucket, with the AWS environment pointing at the server."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": s3_server}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    name = f"isd-{os.getpid()}-{request.node.name.replace('_', '-')[:30].lower()}"
    boto3.client("s3").create_bucket(Bucket=name)
    yield name


def objects(name: str, prefix: str) -> dict[str, dict[str, object]]:
    s3 = boto3.client("s3")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=name, Prefix=prefix) for o in page.get("Contents", [])]
    return {key: s3.get_object(Bucket=name, Key=key) for key in keys}


def test_a_bucket_mirror_holds_the_same_files_with_the_apps_headers(
        app: Flask, client: FlaskClient, bucket: str, tmp_path: Path) -> None:
    publish_versions(app, 3)
    result = mirror(app, f"s3://{bucket}/isd")
    assert result.exit_code == 0, result.output
    assert mirror(app, tmp_path / "folder").exit_code == 0
    folder = files_of(tmp_path / "folder")
    held = objects(bucket, "isd/")
    assert sorted(key.removeprefix("isd/") for key in held) == sorted(folder)
    for key, obj in held.items():
        path = key.removeprefix("isd/")
        body = obj["Body"].read()  # type: ignore[attr-defined]
        assert body == folder[path], path
        answer = client.get("/" + path)
        assert answer.get_data() == body, path
        assert obj["ContentType"] == answer.headers["Content-Type"], path
        assert obj["CacheControl"] == answer.headers["Cache-Control"], path

    again = mirror(app, f"s3://{bucket}/isd")
    assert again.exit_code == 0
    assert f"0 files written (0 bytes), {len(held)} already there" in again.output


def test_isd_sync_pulls_from_the_bucket(app: Flask, client: FlaskClient, bucket: str,
                                        s3_server: str, tmp_path: Path) -> None:
    publish_versions(app, 5)
    # Public data: anyone may read the bucket, as behind a CDN (docs/deployment.md).
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    boto3.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert mirror(app, f"s3://{bucket}").exit_code == 0
    root = tmp_path / "copy"
    first = sync_client.pull(f"{s3_server}/{bucket}", root, version=1)
    assert (first.mode, first.version) == ("snapshot", 1)
    result = sync_client.pull(f"{s3_server}/{bucket}", root)
    assert (result.mode, result.version, result.deltas) == ("delta", 5, 1)  # 1 -> 5: one skip
    state = local.read_state(root)
    assert state is not None
    assert local.read_records(root, state) == client.get(
        "/api/v1/versions/5/snapshot.json").get_json()["entities"]


def test_a_missing_bucket_is_a_clear_error(app: Flask, bucket: str) -> None:
    publish_versions(app, 1)
    result = mirror(app, f"s3://{bucket}-missing/x")
    assert result.exit_code == 1
    assert f"cannot use bucket '{bucket}-missing'" in result.output
