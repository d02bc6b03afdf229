"""Answers with HTTP caching: built download files and small in-memory bodies.

Every URL that names a version is immutable: a strong ETag (the SHA-256 of the bytes),
``Cache-Control: public, max-age=31536000, immutable``, 304 for a matching If-None-Match,
206 for a Range, and a stored gzip copy for clients that accept it. Answers that move
(latest, the version list, open-ended deltas) get a short max-age and an ETag too.

A download whose file cannot be written is streamed from the database with the very headers
its file would have had: the bytes are the same, so are their hashes.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Response, current_app, request
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.wsgi import wrap_file

from isd_service.adapters.download_files import Built, stream
from isd_service.adapters.orm import Version
from isd_service.entrypoints.errors import problem
from isd_service.entrypoints.flask_db import session
from isd_service.service_layer import download_builds
from isd_service.service_layer.downloads import Downloads, Streamed

IMMUTABLE_MAX_AGE = 31536000  # a year: the longest that caches are asked to honour


def downloads_root() -> Path:
    configured = current_app.config.get("DOWNLOADS_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / "downloads"


def downloads() -> Downloads:
    """The download files of the current request's database and folder: a file that a
    background build is making is answered 503 "being built", never built in the request."""
    db = session()
    config = dict(current_app.config)
    if config["DOWNLOAD_BUILDS"] != "background":  # jobs queued before then wait for no one
        return Downloads(db, downloads_root())
    return Downloads(db, downloads_root(),
                     pending=lambda number: download_builds.being_built(db, number, config))


def _accepts_gzip() -> bool:
    return request.accept_encodings.quality("gzip") > 0


class _SelfClosingFile(io.FileIO):
    """A file that closes itself once read to the end.

    A WSGI server closes a response when it is done; a client that only iterates it (a test
    client, some middleware) does not, and the file would be left open until collected.
    """

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        if not data and size != 0:
            self.close()
        return data


def _streamed(built: Streamed, gz: bool) -> Iterator[bytes]:
    """The bytes of a streamed download, read through the request's session after the
    request's teardown has closed it: the session is closed again once they are sent."""
    db = session()  # taken now: the bytes are sent after the request's context is gone

    def sent() -> Iterator[bytes]:
        try:
            yield from stream(built.chunks, gz=gz)
        finally:
            db.close()

    return sent()


def _cache(response: Response, immutable: bool) -> None:
    response.cache_control.public = True
    response.cache_control.max_age = (IMMUTABLE_MAX_AGE if immutable
                                      else current_app.config["MOVING_MAX_AGE"])
    if immutable:
        response.cache_control.immutable = True


def send(built: Built | Streamed, *, mimetype: str, download_name: str, version: Version,
         immutable: bool, attachment: bool = False) -> Response:
    """Serve a download: ETag, conditional GET, ranges, the gzip copy when accepted.

    Much as werkzeug's send_file does, with the validators of a published file: its SHA-256
    as a strong ETag and the version's publication time as Last-Modified (never a file's
    mtime, which differs from one machine to the next). A streamed download answers the same,
    its bytes made from the database as they are sent.
    """
    digest = built.digest
    gz = digest.gz_sha256 is not None and _accepts_gzip()
    etag, size = (digest.gz_sha256, digest.gz_size) if gz else (digest.sha256, digest.size)
    assert etag is not None and size is not None
    if isinstance(built, Streamed):
        body: Any = _streamed(built, gz)
    else:
        path = built.gz_path if gz else built.path
        assert path is not None
        body = wrap_file(request.environ, _SelfClosingFile(path, "rb"))
    response = current_app.response_class(body, mimetype=mimetype, direct_passthrough=True)
    response.content_length = size
    disposition = "attachment" if attachment else "inline"
    response.headers.set("Content-Disposition", disposition, filename=download_name)
    response.set_etag(etag)
    response.last_modified = version.published_at
    _cache(response, immutable)
    if gz:
        response.headers["Content-Encoding"] = "gzip"
    if digest.gz_sha256 is not None:
        response.vary.add("Accept-Encoding")
    try:
        response.make_conditional(request.environ, accept_ranges=True, complete_length=size)
    except RequestedRangeNotSatisfiable:
        body.close()
        refused = problem(416, f"the range asked for is outside the {size} bytes of "
                               f"{download_name}", slug="range-not-satisfiable")
        refused.headers["Content-Range"] = f"bytes */{size}"
        return refused
    if response.status_code == 304 or request.method == "HEAD":
        body.close()
        response.response = []
    return response


def json_bytes(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def json_response(body: Any, *, immutable: bool) -> Response:
    """A JSON answer with a strong ETag of its bytes; 304 when the client has them."""
    return bytes_response(json_bytes(body), "application/json", immutable=immutable)


def bytes_response(data: bytes, mimetype: str, *, immutable: bool) -> Response:
    """A small answer built in memory, with a strong ETag of its bytes."""
    response = current_app.response_class(data, mimetype=mimetype)
    response.set_etag(hashlib.sha256(data).hexdigest())
    _cache(response, immutable)
    response.make_conditional(request)
    return response
