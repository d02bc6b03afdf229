"""The static tree: every immutable public download under a path with no query string, and
`isd mirror`, which copies that tree, byte for byte, into a folder or an object-store bucket.

The application answers each of these paths itself (entrypoints/api/paths.py) with the bytes
built here, so a web server, bucket or CDN that serves a mirror gives the same bytes for the
same path. A version's files are immutable; `versions/index.json` and `versions/latest.json`
move with each publication, and are written last.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.orm import Session

from isd_service.adapters import repository
from isd_service.adapters.download_files import Built
from isd_service.adapters.orm import Version
from isd_service.domain import delta_chain
from isd_service.domain.manifest import manifest
from isd_service.domain.records import KEY_RANGES_RULE
from isd_service.service_layer import hashes
from isd_service.service_layer.downloads import API, Downloads, Streamed, version_manifest

DELTA_NAME = re.compile(r"^(0|[1-9][0-9]{0,9})-([1-9][0-9]{0,9})\.(json|ndjson)$")
IMMUTABLE = "public, max-age=31536000, immutable"
# As the application sends them (text types with their charset, as Flask adds it).
CONTENT_TYPES = {".json": "application/json", ".ndjson": "application/x-ndjson",
                 ".zip": "application/zip", ".csv": "text/csv; charset=utf-8",
                 ".sig": "text/plain; charset=utf-8"}


def content_type(path: str) -> str:
    """The Content-Type the application answers a static path with."""
    return CONTENT_TYPES.get(Path(path).suffix, "text/plain; charset=utf-8")


def moving_cache(max_age: int) -> str:
    return f"public, max-age={max_age}"


def encode_json(body: Any) -> bytes:
    """JSON as every small answer of the API is encoded (compact, UTF-8, one line)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def manifest_bytes(downloads: Downloads, version: Version, loads: list[Any]) -> bytes:
    """versions/{n}/manifest.json: the bytes of /versions/{n}."""
    return encode_json(version_manifest(downloads, version, loads))


def catalogue_bytes(version: Version) -> bytes:
    """versions/{n}/catalogue.json: the catalogue version n was published with."""
    return encode_json({"version": version.number, "entities": version.catalogue})


def ranges_bytes(session: Session, version: Version, entity_id: str) -> bytes:
    """versions/{n}/ranges/{entity}.json: an entity's key ranges (hash rule 2)."""
    return encode_json(hashes.ranges(session, version, entity_id))


def ranges_files(session: Session, version: Version) -> list[StaticFile]:
    """Each entity's ranges file, for a version hashed by rule 2 (others have none)."""
    if version.hash_rule != KEY_RANGES_RULE:
        return []
    return [StaticFile.of_bytes(f"{API}/versions/{version.number}/ranges/{eid}.json",
                                ranges_bytes(session, version, eid))
            for eid in sorted(version.entities)]


def latest_bytes(version: Version) -> bytes:
    """versions/latest.json: the latest version's manifest, as /versions/latest gives it."""
    return encode_json(manifest(version))


def index_bytes(numbers: list[int]) -> bytes:
    """versions/index.json: every published version's number, oldest first. A version's
    place in this list is what the mirror's skip deltas are counted in."""
    return encode_json({"versions": sorted(numbers)})


def delta_path(old: int, new: int, fmt: str) -> str:
    return f"{API}/deltas/{old}-{new}.{fmt}"


@dataclass(frozen=True)
class StaticFile:
    """One file of the static tree: its path (no leading slash), bytes and HTTP headers."""

    path: str
    sha256: str
    size: int
    cache_control: str
    source: Path | bytes

    @property
    def content_type(self) -> str:
        return content_type(self.path)

    @classmethod
    def of_bytes(cls, path: str, data: bytes, cache_control: str = IMMUTABLE) -> StaticFile:
        return cls(path.lstrip("/"), hashlib.sha256(data).hexdigest(), len(data),
                   cache_control, data)

    @classmethod
    def of_built(cls, path: str, built: Built | Streamed) -> StaticFile:
        if isinstance(built, Streamed):
            # A mirror copies the built files; streaming gigabytes into memory is no way out.
            raise OSError(f"{path}: the downloads folder cannot be written ({built.cause}); "
                          "a mirror copies built download files: free the folder, run again")
        return cls(path.lstrip("/"), built.sha256, built.size, IMMUTABLE, built.path)


class Target(Protocol):
    """Where a mirror is written: a folder or a bucket."""

    def holds(self, file: StaticFile) -> bool:
        """Whether the target already has this path with these bytes (by hash)."""

    def put(self, file: StaticFile) -> None:
        """Write one file, whole or not at all."""


def version_files(session: Session, downloads: Downloads, version: Version,
                  loads: list[Any]) -> list[StaticFile]:
    """Every immutable file of a version: its listed downloads, SHA256SUMS, the catalogue,
    its entities' key ranges and the manifest (last: it names the others)."""
    folder = f"{API}/versions/{version.number}"
    files = []
    for entry, built, name in downloads.listed(version):
        files.append(StaticFile.of_built(entry["url"], built))
        suffix = f"_{version.number}.csv"
        if entry["format"] == "mdd-csv" and name.endswith(suffix):
            # The application also answers an MDD file under its stem alone.
            files.append(StaticFile.of_built(f"{folder}/mdd/{name[:-len(suffix)]}.csv", built))
    files.append(StaticFile.of_built(f"{folder}/SHA256SUMS", downloads.sums(version)))
    files.append(StaticFile.of_bytes(f"{folder}/catalogue.json", catalogue_bytes(version)))
    files += ranges_files(session, version)
    files.append(StaticFile.of_bytes(f"{folder}/manifest.json",
                                     manifest_bytes(downloads, version, loads)))
    return files


def delta_files(downloads: Downloads, old: Version, new: Version) -> list[StaticFile]:
    """The delta from ``old`` to ``new`` in both formats."""
    return [StaticFile.of_built(delta_path(old.number, new.number, fmt),
                                downloads.delta(old, new, None, fmt)[0])
            for fmt in ("ndjson", "json")]


@dataclass
class MirrorReport:
    versions: list[int]
    deltas: int
    written: int
    kept: int
    bytes_written: int


def write_mirror(session: Session, downloads_root: Path, target: Target, *,
                 since: int | None = None, moving_max_age: int = 60,
                 progress: Callable[[str], None] | None = None) -> MirrorReport:
    """Copy the static tree of every published version (from ``since`` on) to ``target``.

    Each version's files first, then the deltas that end at it, then index.json and, last,
    latest.json: a reader who finds a version in latest.json finds all its files. Files the
    target already holds with the same hash are left alone.
    """
    downloads = Downloads(session, downloads_root)
    numbers = sorted(repository.version_numbers(session))
    if not numbers:
        raise LookupError("nothing has been published: there is nothing to mirror")
    start = 0
    if since is not None:
        if since not in numbers:
            raise LookupError(f"version {since} has not been published (published: "
                              f"{numbers[0]} to {numbers[-1]})")
        start = numbers.index(since)
    report = MirrorReport(numbers[start:], 0, 0, 0, 0)
    ends: dict[int, list[int]] = {}
    for a, b in delta_chain.pairs(len(numbers), start):
        ends.setdefault(b, []).append(a)

    def copy(files: list[StaticFile]) -> None:
        for file in files:
            if target.holds(file):
                report.kept += 1
                continue
            target.put(file)
            report.written += 1
            report.bytes_written += file.size

    versions = {}
    for position in range(start, len(numbers)):
        version = _version(session, numbers[position])
        versions[position] = version
        if progress:
            progress(f"version {version.number}")
        copy(version_files(session, downloads, version,
                           repository.loads_of(session, version.number)))
        for a in sorted(ends.get(position, [])):
            old = versions.get(a) or _version(session, numbers[a])
            copy(delta_files(downloads, old, version))
            report.deltas += 1
        # Older versions' rows are no longer needed: keep the session's memory flat.
        versions = {p: v for p, v in versions.items() if p in _bases(ends, position)}
    moving = moving_cache(moving_max_age)
    copy([StaticFile.of_bytes(f"{API}/versions/index.json", index_bytes(numbers), moving)])
    copy([StaticFile.of_bytes(f"{API}/versions/latest.json",
                              latest_bytes(_version(session, numbers[-1])), moving)])
    return report


def _bases(ends: dict[int, list[int]], done: int) -> set[int]:
    """Positions still needed as the base of a delta ending after ``done``."""
    return {a for b, starts in ends.items() if b > done for a in starts}


def _version(session: Session, number: int) -> Version:
    version = repository.get_version(session, number)
    if version is None:  # numbers come from the same session: only a concurrent delete
        raise LookupError(f"version {number} has gone")
    return version


def parse_delta_name(name: str) -> tuple[int, int, str] | None:
    """``M-N.json`` or ``M-N.ndjson`` as (M, N, format); None for any other name."""
    match = DELTA_NAME.match(name)
    if match is None:
        return None
    return int(match[1]), int(match[2]), match[3]

