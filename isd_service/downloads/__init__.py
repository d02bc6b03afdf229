"""Downloads of published versions: built once into files, served with HTTP caching.

Every file is built once: by `isd downloads build`, by the publishing process just after a
publication (BUILD_DOWNLOADS), or else on its first request; publication itself stays one
quick transaction (see docs/deployment.md). Files are then served from disk by every web
process: a strong ETag from its SHA-256, ``Cache-Control: public,
max-age=31536000, immutable`` on every URL that names a version, 304 for a matching
If-None-Match, 206 for a Range, and a stored gzip copy for clients that accept it.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from flask import Response, current_app, request, url_for
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.wsgi import wrap_file

from isd_service import delta, snapshot
from isd_service.catalogue import Catalogue, EntityDef
from isd_service.downloads.files import Built, ensure, folder_key, safe_part
from isd_service.errors import problem
from isd_service.extensions import session
from isd_service.formats import csv_records
from isd_service.models import Version
from isd_service.releases import manifest

IMMUTABLE_MAX_AGE = 31536000  # a year: the longest that caches are asked to honour
MIMETYPES = {"json": "application/json", "ndjson": "application/x-ndjson",
             "csv": "application/zip", "mdd-csv": "text/csv", "sums": "text/plain"}
SUFFIXES = {"json": "json", "ndjson": "ndjson", "csv": "zip", "mdd-csv": "csv"}


def downloads_root() -> Path:
    configured = current_app.config.get("DOWNLOADS_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / "downloads"


def version_folder(version: Version) -> Path:
    return downloads_root() / f"{version.number}-{folder_key(manifest(version))}"


# --- writers: the bytes of each download ----------------------------------------------------

def _write_text(chunks: Iterator[str]) -> Callable[[BinaryIO], None]:
    def write(out: BinaryIO) -> None:
        buffer: list[str] = []
        size = 0
        for chunk in chunks:
            buffer.append(chunk)
            size += len(chunk)
            if size >= 256 * 1024:
                out.write("".join(buffer).encode("utf-8"))
                buffer, size = [], 0
        out.write("".join(buffer).encode("utf-8"))
    return write


def _write_csv_zip(version: Version, entity_id: str | None) -> Callable[[BinaryIO], None]:
    """The zip that snapshot.as_csv_zip builds, written straight to the file, not to memory."""
    def write(out: BinaryIO) -> None:
        db = session()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for entity in snapshot.entities_of(version, entity_id):
                info = zipfile.ZipInfo(f"{entity.id}.csv", date_time=snapshot.ZIP_TIMESTAMP)
                info.compress_type = zipfile.ZIP_DEFLATED
                with zf.open(info, "w") as member, io.BufferedWriter(
                        member, 256 * 1024) as buffered:
                    for chunk in csv_records.write(
                            entity, snapshot.iter_records(db, entity, version.number)):
                        buffered.write(chunk.encode("utf-8"))
    return write


# --- the files of a version ------------------------------------------------------------------

def snapshot_file(version: Version, fmt: str, entity_id: str | None) -> tuple[Built, str]:
    """Build (once) the snapshot of a version in a format; return it and its download name."""
    suffix = SUFFIXES[fmt]
    part = f".{safe_part(entity_id)}" if entity_id else ""
    path = version_folder(version) / f"snapshot{part}.{suffix}"
    if fmt == "csv":
        write = _write_csv_zip(version, entity_id)
    elif fmt == "ndjson":
        write = _write_text(snapshot.as_ndjson(session(), version, entity_id))
    else:
        write = _write_text(snapshot.as_json(session(), version, entity_id))
    name = f"isd_{version.number}{'_' + entity_id if entity_id else ''}.{suffix}"
    # A zip is compressed already: a gzip copy of it would only cost disk.
    return ensure(path, write, compress=fmt != "csv"), name


def mdd_file(version: Version, entity: EntityDef) -> tuple[Built, str]:
    assert entity.source is not None
    name = f"{entity.source}_{version.number}.csv"
    path = version_folder(version) / "mdd" / safe_part(name)
    write = _write_text(snapshot.as_mdd_csv(session(), version, entity))
    return ensure(path, write, compress=True), name


def delta_file(old: Version | None, new: Version, entity_id: str | None,
               fmt: str) -> tuple[Built, str]:
    """Build (once) delta(old, new); its file is named after both versions' folders."""
    base = f"{old.number}-{folder_key(manifest(old))}" if old else "0"
    part = f".{safe_part(entity_id)}" if entity_id else ""
    path = version_folder(new) / "deltas" / f"from-{base}{part}.{fmt}"
    chunks = (delta.as_ndjson if fmt == "ndjson" else delta.as_json)(
        session(), old, new, entity_id)
    name = (f"isd_delta_{old.number if old else 0}_{new.number}"
            f"{'_' + entity_id if entity_id else ''}.{fmt}")
    return ensure(path, _write_text(chunks), compress=True), name


def listed_files(version: Version) -> list[tuple[dict[str, Any], Built, str]]:
    """Every download the manifest lists: the three full snapshots, one MDD file per entity."""
    out = []
    for fmt in ("json", "ndjson", "csv"):
        built, name = snapshot_file(version, fmt, None)
        url = url_for("public.get_snapshot", number=version.number, format=fmt)
        out.append(({"url": url, "format": fmt, "entity": None}, built, name))
    for entity in Catalogue.from_list(version.catalogue).entities.values():
        if entity.source is None:
            continue
        built, name = mdd_file(version, entity)
        url = url_for("public.get_mdd_file", number=version.number, name=name)
        out.append(({"url": url, "format": "mdd-csv", "entity": entity.id}, built, name))
    return out


def downloads(version: Version) -> list[dict[str, Any]]:
    """The manifest's ``downloads``: url, format, entity (None: all), name, size, sha256."""
    return [{**entry, "name": name, "size": built.size, "sha256": built.sha256}
            for entry, built, name in listed_files(version)]


def build_all(version: Version) -> list[tuple[str, Built]]:
    """Build every download the manifest lists, and SHA256SUMS, so that no request waits.

    Needs a request context (the manifest's URLs); files already built are left as they are.
    """
    files = [(name, built) for _entry, built, name in listed_files(version)]
    files.append(("SHA256SUMS", sums_file(version)))
    return files


def sums_file(version: Version) -> Built:
    """SHA256SUMS: every listed download's hash and name, as `sha256sum -c` reads it."""
    lines = "".join(f"{built.sha256}  {name}\n" for _e, built, name in listed_files(version))

    def write(out: BinaryIO) -> None:
        out.write(lines.encode("ascii"))

    return ensure(version_folder(version) / "SHA256SUMS", write, compress=False)


# --- HTTP ------------------------------------------------------------------------------------

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


def send(built: Built, *, mimetype: str, download_name: str, version: Version,
         immutable: bool, attachment: bool = False) -> Response:
    """Serve a built file: ETag, conditional GET, ranges, the gzip copy when accepted.

    Much as werkzeug's send_file does, with the validators of a published file: its SHA-256
    as a strong ETag and the version's publication time as Last-Modified (never a file's
    mtime, which differs from one machine to the next).
    """
    gz = built.gz_path is not None and _accepts_gzip()
    path, etag, size = ((built.gz_path, built.gz_sha256, built.gz_size) if gz
                        else (built.path, built.sha256, built.size))
    assert path is not None and etag is not None and size is not None
    file = _SelfClosingFile(path, "rb")
    response = current_app.response_class(wrap_file(request.environ, file), mimetype=mimetype,
                                          direct_passthrough=True)
    response.content_length = size
    disposition = "attachment" if attachment else "inline"
    response.headers.set("Content-Disposition", disposition, filename=download_name)
    response.set_etag(etag)
    response.last_modified = version.published_at
    response.cache_control.public = True
    response.cache_control.max_age = (IMMUTABLE_MAX_AGE if immutable
                                      else current_app.config["MOVING_MAX_AGE"])
    if immutable:
        response.cache_control.immutable = True
    if gz:
        response.headers["Content-Encoding"] = "gzip"
    if built.gz_path is not None:
        response.vary.add("Accept-Encoding")
    try:
        response.make_conditional(request.environ, accept_ranges=True, complete_length=size)
    except RequestedRangeNotSatisfiable:
        file.close()
        refused = problem(416, f"the range asked for is outside the {size} bytes of "
                               f"{download_name}", slug="range-not-satisfiable")
        refused.headers["Content-Range"] = f"bytes */{size}"
        return refused
    if response.status_code == 304 or request.method == "HEAD":
        file.close()
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
    response.cache_control.public = True
    response.cache_control.max_age = (IMMUTABLE_MAX_AGE if immutable
                                      else current_app.config["MOVING_MAX_AGE"])
    if immutable:
        response.cache_control.immutable = True
    response.make_conditional(request)
    return response


def version_manifest(version: Version, loads: Any) -> dict[str, Any]:
    """/versions/{n}: the manifest with its provenance and the list of downloads."""
    return {**manifest(version, loads), "downloads": downloads(version)}
