"""Downloads of published versions: each built once into a file, then only read.

Every file is built once: by `isd downloads build`, by the publishing process just after a
publication (BUILD_DOWNLOADS), or else on its first request; publication itself stays one
quick transaction (see docs/deployment.md). A version's files live in a folder named after
the version and a hash of its manifest (adapters/download_files.py), so a rebuilt database
can never be served another database's bytes under the same name.
"""

from __future__ import annotations

import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from isd_service.adapters import repository
from isd_service.adapters.download_files import Built, ensure, folder_key, safe_part
from isd_service.adapters.orm import Load, Version
from isd_service.domain import delta, snapshot
from isd_service.domain.catalogue import Catalogue, EntityDef
from isd_service.domain.manifest import manifest

MIMETYPES = {"json": "application/json", "ndjson": "application/x-ndjson",
             "csv": "application/zip", "mdd-csv": "text/csv", "mdd-zip": "application/zip",
             "sums": "text/plain"}
SUFFIXES = {"json": "json", "ndjson": "ndjson", "csv": "zip", "mdd-csv": "csv"}
API = "/api/v1"

# The shape of a delta's changes, part of its built file's path: "changed-fields" (every
# update names its changed fields). Files of an earlier shape (directly under deltas/) are
# never served again; deleting them only frees disk.
DELTA_SHAPE = "changed-fields"


class Downloads:
    """The download files of published versions, under one folder."""

    def __init__(self, session: Session, root: Path):
        self.session = session
        self.root = root

    def folder(self, version: Version) -> Path:
        return self.root / f"{version.number}-{folder_key(manifest(version))}"

    def _rows(self, version: Version) -> snapshot.Rows:
        return lambda entity_id: repository.snapshot_data(self.session, entity_id,
                                                          version.number)

    def snapshot(self, version: Version, fmt: str, entity_id: str | None) -> tuple[Built, str]:
        """The snapshot of a version in a format (built once); and its download name."""
        suffix = SUFFIXES[fmt]
        part = f".{safe_part(entity_id)}" if entity_id else ""
        path = self.folder(version) / f"snapshot{part}.{suffix}"
        rows = self._rows(version)
        write: Callable[[BinaryIO], None]
        if fmt == "csv":
            def write(out: BinaryIO) -> None:
                snapshot.write_csv_zip(version, entity_id, rows, out)
        elif fmt == "ndjson":
            write = _write_text(snapshot.as_ndjson(version, entity_id, rows))
        else:
            write = _write_text(snapshot.as_json(version, entity_id, rows))
        name = f"isd_{version.number}{'_' + entity_id if entity_id else ''}.{suffix}"
        # A zip is compressed already: a gzip copy of it would only cost disk.
        return ensure(path, write, compress=fmt != "csv"), name

    def mdd_file(self, version: Version, entity: EntityDef) -> tuple[Built, str]:
        """One entity as an Elexon MDD CSV file (built once); and its download name."""
        name = f"{entity.source}_{version.number}.csv"
        path = self.folder(version) / "mdd" / safe_part(name)
        write = _write_text(snapshot.as_mdd_csv(entity, self._rows(version)))
        return ensure(path, write, compress=True), name

    def mdd_zip(self, version: Version) -> tuple[Built, str]:
        """The portal's zip: `<Stem>_<n>.csv` of every entity from an MDD file, each member
        the very bytes of that file's own download (built once); and its download name."""
        members = [self.mdd_file(version, entity) for entity in
                   Catalogue.from_list(version.catalogue).entities.values()
                   if entity.mdd_source is not None]

        def write(out: BinaryIO) -> None:
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
                for built, name in members:
                    info = zipfile.ZipInfo(name, date_time=snapshot.ZIP_TIMESTAMP)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    with archive.open(info, "w") as member, built.path.open("rb") as source:
                        shutil.copyfileobj(source, member, 1024 * 1024)

        name = f"MDD_{version.number}.zip"
        return ensure(self.folder(version) / name, write, compress=False), name

    def delta(self, old: Version | None, new: Version, entity_id: str | None,
              fmt: str, *, previous: bool = False) -> tuple[Built, str]:
        """delta(old, new) (built once; named after both versions' folders and the shape of
        its changes, so that files built in an older shape are never served)."""
        base = f"{old.number}-{folder_key(manifest(old))}" if old else "0"
        part = f".{safe_part(entity_id)}" if entity_id else ""
        detail = ".previous" if previous else ""
        path = (self.folder(new) / "deltas" / DELTA_SHAPE
                / f"from-{base}{part}{detail}.{fmt}")
        changes = delta.iter_changes(
            old, new, lambda eid, m, n: repository.rows_between(self.session, eid, m, n),
            entity_id, previous=previous)
        head = delta.header(old, new, entity_id)
        chunks = (delta.as_ndjson if fmt == "ndjson" else delta.as_json)(head, changes)
        name = (f"isd_delta_{old.number if old else 0}_{new.number}"
                f"{'_' + entity_id if entity_id else ''}.{fmt}")
        return ensure(path, _write_text(chunks), compress=True), name

    def listed(self, version: Version) -> list[tuple[dict[str, Any], Built, str]]:
        """Every download the manifest lists: the three full snapshots, one MDD file per
        entity, the MDD zip; each with its manifest entry (url, format, entity)."""
        out = []
        for fmt in ("json", "ndjson", "csv"):
            built, name = self.snapshot(version, fmt, None)
            url = f"{API}/versions/{version.number}/snapshot?format={fmt}"
            out.append(({"url": url, "format": fmt, "entity": None}, built, name))
        for entity in Catalogue.from_list(version.catalogue).entities.values():
            built, name = self.mdd_file(version, entity)
            url = f"{API}/versions/{version.number}/mdd/{name}"
            out.append(({"url": url, "format": "mdd-csv", "entity": entity.id}, built, name))
        built, name = self.mdd_zip(version)
        url = f"{API}/versions/{version.number}/mdd.zip"
        out.append(({"url": url, "format": "mdd-zip", "entity": None}, built, name))
        return out

    def entries(self, version: Version) -> list[dict[str, Any]]:
        """The manifest's ``downloads``: url, format, entity (None: all), name, size, sha256."""
        return [{**entry, "name": name, "size": built.size, "sha256": built.sha256}
                for entry, built, name in self.listed(version)]

    def sums(self, version: Version) -> Built:
        """SHA256SUMS: every listed download's hash and name, as `sha256sum -c` reads it."""
        lines = "".join(f"{built.sha256}  {name}\n" for _e, built, name in self.listed(version))

        def write(out: BinaryIO) -> None:
            out.write(lines.encode("ascii"))

        return ensure(self.folder(version) / "SHA256SUMS", write, compress=False)

    def build_all(self, version: Version) -> list[tuple[str, Built]]:
        """Build every download the manifest lists, and SHA256SUMS, so that no request
        waits; files already built are left as they are."""
        files = [(name, built) for _entry, built, name in self.listed(version)]
        files.append(("SHA256SUMS", self.sums(version)))
        return files


def version_manifest(downloads: Downloads, version: Version,
                     loads: list[Load]) -> dict[str, Any]:
    """/versions/{n}: the manifest with its provenance and the list of downloads."""
    return {**manifest(version, loads), "downloads": downloads.entries(version)}


def build_version(session: Session, root: Path, version: Version) -> tuple[int, int, float]:
    """Build every listed download of ``version``; return (files, bytes, seconds)."""
    started = time.perf_counter()
    files = Downloads(session, root).build_all(version)
    return len(files), sum(b.size for _n, b in files), time.perf_counter() - started


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
