"""Full snapshots of a version in every format: JSON, NDJSON, a zip of CSVs, MDD CSV files.

The writers take the version's records as a function ``rows(entity id)`` that yields the
stored data of the entity's records in key order, and write them as they come, so memory
does not grow with the size of a version. (The store supplies ``rows``.)
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from isd_service.domain.catalogue import Catalogue, EntityDef
from isd_service.domain.formats import csv_records, mdd_csv
from isd_service.domain.manifest import PublishedVersion, manifest
from isd_service.domain.records import decode, project, projected_json

ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # fixed, so the same version always zips to the same bytes

Rows = Callable[[str], Iterable[str]]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def entities_of(version: PublishedVersion, entity_id: str | None) -> list[EntityDef]:
    """The entities of a version (or the one asked for); LookupError if it has none such."""
    catalogue = Catalogue.from_list(version.catalogue)
    if entity_id is None:
        return list(catalogue.entities.values())
    entity = catalogue.get(entity_id)
    if entity is None:
        raise LookupError(f"entity {entity_id!r} is not in version {version.number}")
    return [entity]


def records(entity: EntityDef, data: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Stored records as served: every field of the entity, in catalogue order."""
    for item in data:
        yield project(entity, decode(item))


def as_json(version: PublishedVersion, entity_id: str | None, rows: Rows) -> Iterator[str]:
    entities = entities_of(version, entity_id)
    yield f'{{"version":{version.number},"sha256":"{version.sha256}","entities":{{'
    for i, entity in enumerate(entities):
        yield ("," if i else "") + f"{dumps(entity.id)}:["
        line = projected_json(entity)
        first = True
        for data in rows(entity.id):
            yield ("" if first else ",") + line(data)
            first = False
        yield "]"
    yield "}}\n"


def as_ndjson(version: PublishedVersion, entity_id: str | None, rows: Rows) -> Iterator[str]:
    entities = entities_of(version, entity_id)
    yield dumps(manifest(version)) + "\n"
    for entity in entities:
        prefix = f'{{"entity":{dumps(entity.id)},"record":'
        line = projected_json(entity)
        batch = []
        for data in rows(entity.id):
            batch.append(prefix + line(data) + "}\n")
            if len(batch) >= 1000:
                yield "".join(batch)
                batch = []
        yield "".join(batch)


def csv_zip(version: PublishedVersion, entity_id: str | None, rows: Rows) -> Iterator[bytes]:
    """A zip with one `<entity id>.csv` per entity (header = field ids, ISO dates)."""
    return zip_chunks((f"{entity.id}.csv", _encoded(csv_records.write(
        entity, records(entity, rows(entity.id))))) for entity in entities_of(version, entity_id))


def _encoded(chunks: Iterable[str]) -> Iterator[bytes]:
    buffer: list[str] = []
    size = 0
    for chunk in chunks:
        buffer.append(chunk)
        size += len(chunk)
        if size >= 256 * 1024:
            yield "".join(buffer).encode("utf-8")
            buffer, size = [], 0
    yield "".join(buffer).encode("utf-8")


class _HeldBack(io.RawIOBase):
    """A seekable file to zipfile that hands its bytes on as soon as they are final.

    Written to a seekable file, zipfile goes back to complete each member's header once the
    member is written; to an unseekable one it writes another layout. Emulating a seekable
    file keeps the bytes those of a zip written to disk, holding back only the member being
    written.
    """

    def __init__(self) -> None:
        self.base = 0  # the offset of held[0]: everything before it has been handed on
        self.held = bytearray()
        self.pos = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        end = self.base + len(self.held)
        target = offset if whence == 0 else (self.pos + offset if whence == 1 else end + offset)
        if not self.base <= target <= end:
            raise OSError("cannot seek back into bytes already sent")
        self.pos = target
        return target

    def write(self, data: Any) -> int:
        data = bytes(data)
        start = self.pos - self.base
        self.held[start:start + len(data)] = data
        self.pos += len(data)
        return len(data)

    def take(self) -> bytes:
        """The bytes that are final: all but the member being written (zipfile only ever
        goes back to its header, and only while the position is not at the end)."""
        if self.pos != self.base + len(self.held):
            return b""
        data = bytes(self.held)
        self.base += len(data)
        self.held = bytearray()
        return data


def zip_chunks(members: Iterable[tuple[str, Iterable[bytes]]]) -> Iterator[bytes]:
    """A deflated zip of ``members`` (name, bytes), the same bytes whenever made, given as
    they are made: memory holds at most one member's compressed bytes."""
    out = _HeldBack()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w") as member:
                for chunk in content:
                    member.write(chunk)
            yield out.take()
    yield out.take()


def as_mdd_csv(entity: EntityDef, rows: Rows) -> Iterator[str]:
    return mdd_csv.write(entity, records(entity, rows(entity.id)))
