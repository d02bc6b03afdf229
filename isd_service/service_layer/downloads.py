"""Downloads of published versions: each built once into a file, then only read.

Every file is built once: by the background build that a publication queues (see
service_layer/download_builds.py: while it runs, a request for one of its files not yet built
is answered "being built", never made to wait), by `isd downloads build`, or else on its
first request; publication itself stays one quick transaction (see docs/deployment.md). A
version's files live in a folder named after the version and a hash of its manifest
(adapters/download_files.py), so a rebuilt database can never be served another database's
bytes under the same name.

The bytes of a download are a function of the database alone, so the folder is only a cache
of them: reading a manifest never builds a file (a download not yet built is hashed as it is
made, and the hash remembered), and a download whose file cannot be written (a full or
read-only folder, an I/O error) is sent from the database as it is made, with the same bytes
and hashes; the failure is logged once, with its cause.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from isd_service.adapters import repository
from isd_service.adapters.download_files import (
    Built,
    Chunks,
    Digest,
    FolderUnusable,
    digest_of,
    ensure,
    existing,
    folder_key,
    safe_part,
)
from isd_service.adapters.orm import Load, Version
from isd_service.domain import delta, snapshot
from isd_service.domain.catalogue import Catalogue, EntityDef
from isd_service.domain.errors import DomainError
from isd_service.domain.formats.datapackage import datapackage
from isd_service.domain.manifest import manifest

log = logging.getLogger(__name__)
MIMETYPES = {"json": "application/json", "ndjson": "application/x-ndjson",
             "csv": "application/zip", "mdd-csv": "text/csv", "mdd-zip": "application/zip",
             "sums": "text/plain", "datapackage": "application/json"}
SUFFIXES = {"json": "json", "ndjson": "ndjson", "csv": "zip", "mdd-csv": "csv"}
API = "/api/v1"
# What the service says of the data's terms: ISD reference data is public, without
# restriction (the same words in every version's data package and the DCAT catalogue).
LICENCE = {"name": "public-reference-data",
           "title": "Public reference data: no restriction on use; all ISD items are public"}
# A whole snapshot's path-only name by format (a static mirror holds it under that path).
SNAPSHOT_FILES = {"json": "snapshot.json", "ndjson": "snapshot.ndjson", "csv": "snapshot.csv.zip"}
KNOWN_DIGESTS = 4096  # how many downloads' hashes a process remembers


@dataclass(frozen=True)
class Streamed:
    """A download sent from the database as it is made, because its file cannot be
    written (``cause``): the digest its file would have, and its bytes."""

    digest: Digest
    chunks: Chunks
    cause: str


class DownloadUnavailable(DomainError):
    """Neither the download's file nor the database can give its bytes just now."""

    status = 503
    slug = "download-unavailable"

    def __init__(self, cause: str, name: str):
        self.cause = cause
        super().__init__(f"{name} cannot be sent just now: its file cannot be written "
                         f"({cause}) and the database could not make its bytes; try again "
                         "shortly")


@dataclass(frozen=True)
class _Spec:
    """What a download is: where its file goes, how its bytes are made, its name."""

    path: Path
    chunks: Chunks
    compress: bool
    name: str
    # The version whose background build makes this file (the listed downloads and
    # SHA256SUMS); None for files only ever built on request (deltas, one entity's snapshot).
    job: int | None = None


# What this process knows of downloads' bytes (by file path, which names the version's
# manifest): a manifest lists them without building files, and a file on disk that differs
# is found out. Remembered only here: anything else could be as broken as the folder.
_known: OrderedDict[Path, Digest] = OrderedDict()
# The failures already logged, (file, cause): logged once, and again after it recovered.
_reported: set[tuple[Path, str]] = set()


# Both are shared by a process's threads (gunicorn's gthread workers).
_lock = threading.Lock()


def _remember(path: Path, digest: Digest) -> None:
    with _lock:
        _known[path] = digest
        _known.move_to_end(path)
        while len(_known) > KNOWN_DIGESTS:
            _known.popitem(last=False)


def _recovered(path: Path) -> None:
    with _lock:
        causes = [c for p, c in _reported if p == path]
        _reported.difference_update((path, c) for c in causes)
    if causes:
        log.info("download %s can be written again", path)


def _report(exc: FolderUnusable) -> None:
    with _lock:
        first = (exc.path, exc.cause) not in _reported
        _reported.add((exc.path, exc.cause))
    if first:
        log.warning("download %s cannot be written (%s: %s): sending it from the database "
                    "instead", exc.path, exc.cause, exc.reason)

# The shape of a delta's changes, part of its built file's path: "changed-fields" (every
# update names its changed fields). Files of an earlier shape (directly under deltas/) are
# never served again; deleting them only frees disk.
DELTA_SHAPE = "changed-fields"


# What a request is told of a version whose files a builder is building: the error to raise
# (503), or None when no builder has them in hand (service_layer/download_builds.py).
Pending = Callable[[int], DomainError | None]


class Downloads:
    """The download files of published versions, under one folder.

    ``pending`` (for requests): a file of a version whose background build is under way, not
    built yet, is refused with the error it gives rather than built (or hashed) here.
    """

    def __init__(self, session: Session, root: Path, *, pending: Pending | None = None):
        self.session = session
        self.root = root
        self.pending = pending
        self._pending: dict[int, DomainError | None] = {}
        self._folders: dict[int, Path] = {}

    def folder(self, version: Version) -> Path:
        # Every file of a version names it: its manifest is hashed once per instance.
        if version.number not in self._folders:
            self._folders[version.number] = (
                self.root / f"{version.number}-{folder_key(manifest(version))}")
        return self._folders[version.number]

    def _rows(self, version: Version) -> snapshot.Rows:
        return lambda entity_id: repository.snapshot_data(self.session, entity_id,
                                                          version.number)

    def _snapshot(self, version: Version, fmt: str, entity_id: str | None) -> _Spec:
        suffix = SUFFIXES[fmt]
        part = f".{safe_part(entity_id)}" if entity_id else ""
        rows = self._rows(version)
        chunks: Chunks
        if fmt == "csv":
            def chunks() -> Iterator[bytes]:
                return snapshot.csv_zip(version, entity_id, rows)
        elif fmt == "ndjson":
            chunks = _text(lambda: snapshot.as_ndjson(version, entity_id, rows))
        else:
            chunks = _text(lambda: snapshot.as_json(version, entity_id, rows))
        name = f"isd_{version.number}{'_' + entity_id if entity_id else ''}.{suffix}"
        # A zip is compressed already: a gzip copy of it would only cost disk.
        return _Spec(self.folder(version) / f"snapshot{part}.{suffix}", chunks,
                     fmt != "csv", name, None if entity_id else version.number)

    def _mdd_file(self, version: Version, entity: EntityDef) -> _Spec:
        name = f"{entity.source}_{version.number}.csv"
        chunks = _text(lambda: snapshot.as_mdd_csv(entity, self._rows(version)))
        return _Spec(self.folder(version) / "mdd" / safe_part(name), chunks, True, name,
                     version.number)

    def _mdd_zip(self, version: Version) -> _Spec:
        members = [self._mdd_file(version, entity) for entity in
                   Catalogue.from_list(version.catalogue).entities.values()
                   if entity.mdd_source is not None]

        def chunks() -> Iterator[bytes]:
            # Each member the very bytes of that MDD file's own download.
            return snapshot.zip_chunks((m.name, m.chunks()) for m in members)

        name = f"MDD_{version.number}.zip"
        return _Spec(self.folder(version) / name, chunks, False, name, version.number)

    def _datapackage(self, version: Version) -> _Spec:
        def chunks() -> list[bytes]:
            # It holds the MDD files' sizes and hashes: known without building them (and
            # only looked up when it is made, so that a build lists it without making the
            # MDD files' bytes a second time).
            catalogue = Catalogue.from_list(version.catalogue)
            files = {}
            for entity in catalogue.entities.values():
                spec = self._mdd_file(version, entity)
                digest = self._digest(spec)
                files[entity.id] = (f"mdd/{spec.name}", digest.size, digest.sha256)
            package = datapackage(version.number, version.published_at, catalogue, files,
                                  licence=LICENCE)
            return [json.dumps(package, indent=1, ensure_ascii=False).encode("utf-8")]

        name = "datapackage.json"
        return _Spec(self.folder(version) / name, chunks, True, name, version.number)

    def _delta(self, old: Version | None, new: Version, entity_id: str | None,
               fmt: str, previous: bool) -> _Spec:
        # Named after both versions' folders and the shape of its changes, so that files
        # built in an older shape are never served.
        base = f"{old.number}-{folder_key(manifest(old))}" if old else "0"
        part = f".{safe_part(entity_id)}" if entity_id else ""
        detail = ".previous" if previous else ""

        def chunks() -> Iterator[str]:
            changes = delta.iter_changes(
                old, new, lambda eid, m, n: repository.rows_between(self.session, eid, m, n),
                entity_id, previous=previous)
            head = delta.header(old, new, entity_id)
            return (delta.as_ndjson if fmt == "ndjson" else delta.as_json)(head, changes)

        name = (f"isd_delta_{old.number if old else 0}_{new.number}"
                f"{'_' + entity_id if entity_id else ''}.{fmt}")
        path = self.folder(new) / "deltas" / DELTA_SHAPE / f"from-{base}{part}{detail}.{fmt}"
        return _Spec(path,
                     _text(chunks), True, name)

    def snapshot(self, version: Version, fmt: str,
                 entity_id: str | None) -> tuple[Built | Streamed, str]:
        """The snapshot of a version in a format (built once); and its download name."""
        spec = self._snapshot(version, fmt, entity_id)
        return self._serve(spec), spec.name

    def mdd_file(self, version: Version, entity: EntityDef) -> tuple[Built | Streamed, str]:
        """One entity as an Elexon MDD CSV file (built once); and its download name."""
        spec = self._mdd_file(version, entity)
        return self._serve(spec), spec.name

    def mdd_zip(self, version: Version) -> tuple[Built | Streamed, str]:
        """The portal's zip: `<Stem>_<n>.csv` of every entity from an MDD file, each member
        the very bytes of that file's own download (built once); and its download name."""
        spec = self._mdd_zip(version)
        return self._serve(spec), spec.name

    def datapackage(self, version: Version) -> tuple[Built | Streamed, str]:
        """The version as a Frictionless Data Package over its MDD CSV downloads (built
        once); and its download name."""
        spec = self._datapackage(version)
        return self._serve(spec), spec.name

    def delta(self, old: Version | None, new: Version, entity_id: str | None,
              fmt: str, *, previous: bool = False) -> tuple[Built | Streamed, str]:
        """delta(old, new) (built once); ``previous``: each update with the record as it
        was."""
        spec = self._delta(old, new, entity_id, fmt, previous)
        return self._serve(spec), spec.name

    def _listed(self, version: Version) -> list[tuple[dict[str, Any], _Spec]]:
        """Every download the manifest lists: the three full snapshots, one MDD file per
        entity, the MDD zip; each with its manifest entry (url, format, entity)."""
        out = []
        for fmt in ("json", "ndjson", "csv"):
            # The path-only URL: a static mirror holds the same bytes under the same path.
            url = f"{API}/versions/{version.number}/{SNAPSHOT_FILES[fmt]}"
            out.append(({"url": url, "format": fmt, "entity": None},
                        self._snapshot(version, fmt, None)))
        for entity in Catalogue.from_list(version.catalogue).entities.values():
            spec = self._mdd_file(version, entity)
            url = f"{API}/versions/{version.number}/mdd/{spec.name}"
            out.append(({"url": url, "format": "mdd-csv", "entity": entity.id}, spec))
        url = f"{API}/versions/{version.number}/mdd.zip"
        out.append(({"url": url, "format": "mdd-zip", "entity": None}, self._mdd_zip(version)))
        spec = self._datapackage(version)
        url = f"{API}/versions/{version.number}/{spec.name}"
        out.append(({"url": url, "format": "datapackage", "entity": None}, spec))
        return out

    def listed(self, version: Version) -> list[tuple[dict[str, Any], Built | Streamed, str]]:
        """Every download the manifest lists, served (built, or streamed when the folder
        fails), with its manifest entry and download name."""
        return [(entry, self._serve(spec), spec.name) for entry, spec in self._listed(version)]

    def entries(self, version: Version) -> list[dict[str, Any]]:
        """The manifest's ``downloads``: url, format, entity (None: all), name, size, sha256.

        Builds no file: a download not built yet is hashed as its bytes are made."""
        out = []
        for entry, spec in self._listed(version):
            digest = self._digest(spec)
            out.append({**entry, "name": spec.name, "size": digest.size,
                        "sha256": digest.sha256})
        return out

    def _sums(self, version: Version) -> _Spec:
        lines = "".join(f"{e['sha256']}  {e['name']}\n" for e in self.entries(version))
        return _Spec(self.folder(version) / "SHA256SUMS",
                     lambda: [lines.encode("ascii")], False, "SHA256SUMS", version.number)

    def sums(self, version: Version) -> Built | Streamed:
        """SHA256SUMS: every listed download's hash and name, as `sha256sum -c` reads it."""
        return self._serve(self._sums(version))

    def build_all(self, version: Version, *,
                  tick: Callable[[], None] | None = None) -> list[tuple[str, Built]]:
        """Build every download the manifest lists, and SHA256SUMS, so that no request
        waits; files already built (and sound) are left as they are. Raises FolderUnusable
        when the folder fails. ``tick`` is called before each file and each piece of one (a
        builder renews its lease there, or stops by raising)."""
        files = []
        for spec in [s for _e, s in self._listed(version)]:
            files.append((spec.name, self._build(spec, tick)))
        # Last, and only then: it lists every other file's hash.
        files.append(("SHA256SUMS", self._build(self._sums(version), tick)))
        return files

    def _build(self, spec: _Spec, tick: Callable[[], None] | None) -> Built:
        chunks = spec.chunks
        if tick is not None:
            tick()

            def chunks() -> Iterator[bytes]:
                for chunk in spec.chunks():
                    tick()
                    yield chunk
        built = ensure(spec.path, chunks, compress=spec.compress,
                       expected=_known.get(spec.path))
        _remember(spec.path, built.digest)
        return built

    def _wait_for_build(self, spec: _Spec) -> None:
        """Raise what ``pending`` says while the background build of ``spec``'s version is
        under way and ``spec``'s file is not built yet."""
        if self.pending is None or spec.job is None or existing(spec.path) is not None:
            return
        if spec.job not in self._pending:
            self._pending[spec.job] = self.pending(spec.job)
        refusal = self._pending[spec.job]
        if refusal is not None:
            raise refusal

    def _digest(self, spec: _Spec) -> Digest:
        """What the download's bytes are, without building its file: as remembered, as a
        complete file of the right size says, or else by hashing them as they are made."""
        digest = _known.get(spec.path)
        if digest is None:
            found = existing(spec.path)
            try:
                sized = found is not None and found.path.stat().st_size == found.size
            except OSError:
                sized = False
            if found is None or not sized:
                self._wait_for_build(spec)  # hashing it would cost a request its build
            digest = found.digest if found is not None and sized else digest_of(
                spec.chunks, compress=spec.compress)
            _remember(spec.path, digest)
        return digest

    def _serve(self, spec: _Spec) -> Built | Streamed:
        """The download's file, built if need be; or, when the folder cannot give it, the
        download streamed from the database with the digest its file would have; or (a
        background build under way, the file not built yet) the ``pending`` refusal."""
        self._wait_for_build(spec)
        try:
            built = ensure(spec.path, spec.chunks, compress=spec.compress,
                           expected=_known.get(spec.path))
        except FolderUnusable as exc:
            _report(exc)
            try:
                return Streamed(self._digest(spec), spec.chunks, exc.cause)
            except (OSError, OperationalError, InterfaceError) as err:  # the database lost
                log.error("download %s: the database could not make its bytes either "
                          "(%s)", spec.path, err.__class__.__name__)
                raise DownloadUnavailable(exc.cause, spec.name) from err
        _remember(spec.path, built.digest)
        _recovered(spec.path)
        return built


def version_manifest(downloads: Downloads, version: Version,
                     loads: list[Load]) -> dict[str, Any]:
    """/versions/{n}: the manifest with its provenance and the list of downloads."""
    return {**manifest(version, loads), "downloads": downloads.entries(version)}


def build_version(session: Session, root: Path, version: Version) -> tuple[int, int, float]:
    """Build every listed download of ``version``; return (files, bytes, seconds)."""
    started = time.perf_counter()
    files = Downloads(session, root).build_all(version)
    return len(files), sum(b.size for _n, b in files), time.perf_counter() - started


def _text(chunks: Callable[[], Iterable[str]]) -> Chunks:
    """The bytes (UTF-8) of text made in small pieces, in pieces of about 256 KiB."""
    def encoded() -> Iterator[bytes]:
        buffer: list[str] = []
        size = 0
        for chunk in chunks():
            buffer.append(chunk)
            size += len(chunk)
            if size >= 256 * 1024:
                yield "".join(buffer).encode("utf-8")
                buffer, size = [], 0
        yield "".join(buffer).encode("utf-8")
    return encoded
