"""Readers and writers of the file formats participants use (pure, no Flask or ORM).

Reading turns input files into raw rows per entity; validation then types and checks them.
"""

from __future__ import annotations

import codecs
import io
import itertools
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TextIO

from isd_service.domain import validation
from isd_service.domain.catalogue import Catalogue, EntityDef
from isd_service.domain.validation import Problem, RawRow, RowBatch

FORMATS = ("mdd-csv", "csv", "json")
# A zip's members, all together, may hold at most this much: the whole MDD with its largest
# file is well under a gigabyte; a small zip that would unpack to far more is refused.
MAX_UNZIPPED_BYTES = 4 * 1024**3
MAX_ZIP_MEMBERS = 1000
ZIP_MAGIC = b"PK\x03\x04"
# Bytes decoded at a time when a file's encoding is checked.
TEXT_CHUNK = 1 << 20
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MDD_NAME = re.compile(r"^(?P<stem>.+?)(?:_(?P<version>[0-9]+))?\.csv$", re.IGNORECASE)


@dataclass
class InputFile:
    """One uploaded or named file: its base name and its bytes, or the path to read them
    from as they are needed (a large file is then never held whole by a load)."""

    name: str
    data: bytes = b""
    path: Path | None = None

    def content(self) -> bytes:
        """The file's bytes, read whole."""
        return self.path.read_bytes() if self.path is not None else self.data

    def source(self) -> bytes | Path:
        """What ``text_stream`` reads: the path when there is one."""
        return self.path if self.path is not None else self.data

    def chunks(self) -> Iterator[bytes]:
        """The file's bytes a chunk at a time."""
        return _chunks(self.source())


@dataclass
class EntityRows:
    """The raw rows a file holds for one entity, and how its dates are written.

    ``rows`` may be a stream read as it is consumed; ``problems`` then holds, once it has
    been consumed, what was wrong with the rows' shape.
    """

    entity: EntityDef
    file: str
    dates: str
    rows: Iterable[RawRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # A text reader's stream of the same rows, read in batches (consume one or the other).
    batches: Iterable[RowBatch] | None = None
    # The file the rows were read from (to read them again).
    input: InputFile | None = None

    def in_batches(self) -> Iterator[RowBatch | list[RawRow]]:
        """The rows in batches: the reader's own, or ``rows`` taken BATCH_ROWS at a time."""
        if self.batches is not None:
            yield from self.batches
            return
        rows = iter(self.rows)
        while batch := list(itertools.islice(rows, validation.BATCH_ROWS)):
            yield batch


def safe_name(name: str) -> str:
    """Keep only a file's base name, without control characters, so that a name never
    reaches outside its folder nor puts terminal escapes into the load log."""
    base = PurePath(name.replace("\\", "/")).name
    return _CONTROL.sub("?", base)[:255] or "upload"


def decode_text(data: bytes, file: str) -> tuple[str | None, list[Problem]]:
    """Decode UTF-8 input (a leading BOM is dropped); refuse NULs and other encodings."""
    if not data.strip():
        return None, [Problem("the file is empty", file=file, line=1)]
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        return None, [Problem("NUL byte in the file: it is not a text file", file=file,
                              line=line)]
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = data[exc.start : exc.start + 1].hex().upper()
        return None, [Problem(
            f"not valid UTF-8 (byte 0x{byte}); files must be UTF-8 encoded",
            file=file, line=line)]


def _chunks(source: bytes | Path) -> Iterator[bytes]:
    if isinstance(source, bytes):
        for start in range(0, len(source), TEXT_CHUNK):
            yield source[start : start + TEXT_CHUNK]
        return
    with source.open("rb") as stream:
        while chunk := stream.read(TEXT_CHUNK):
            yield chunk


def text_stream(source: bytes | Path, file: str) -> tuple[TextIO | None, list[Problem]]:
    """``decode_text``'s checks and problems, but the text as a stream read from ``source``
    (bytes, or a file's path): a file of hundreds of megabytes is never held as one string,
    nor, from a path, as bytes."""
    blank, lines = True, 0
    for chunk in _chunks(source):
        at = chunk.find(b"\x00")
        if at >= 0:
            return None, [Problem("NUL byte in the file: it is not a text file", file=file,
                                  line=lines + chunk.count(b"\n", 0, at) + 1)]
        blank = blank and not chunk.strip()
        lines += chunk.count(b"\n")
    if blank:
        return None, [Problem("the file is empty", file=file, line=1)]
    pending, lines = b"", 0
    for chunk in itertools.chain(_chunks(source), [b""]):  # b"": the end
        pending += chunk
        try:  # check the encoding a chunk at a time, keeping nothing of the text
            _, used = codecs.utf_8_decode(pending, "strict", chunk == b"")
        except UnicodeDecodeError as exc:
            byte = pending[exc.start : exc.start + 1].hex().upper()
            return None, [Problem(
                f"not valid UTF-8 (byte 0x{byte}); files must be UTF-8 encoded",
                file=file, line=lines + pending.count(b"\n", 0, exc.start) + 1)]
        lines += pending.count(b"\n", 0, used)
        pending = pending[used:]
    raw = io.BytesIO(source) if isinstance(source, bytes) else source.open("rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""), []


def entity_for_file(catalogue: Catalogue, fmt: str, name: str) -> EntityDef | None:
    """Find the entity a file is for from its name: `<Stem>_<NNN>.csv` or `<entity id>.csv`."""
    if fmt == "mdd-csv":
        m = _MDD_NAME.match(name)
        if m:
            entity = catalogue.by_source(m.group("stem"))
            if entity is None and m.group("version"):
                entity = catalogue.by_source(f"{m.group('stem')}_{m.group('version')}")
            return entity
        return None
    stem = PurePath(name).stem
    return catalogue.get(stem) or catalogue.by_source(stem)


def parse_files(
    catalogue: Catalogue, files: list[InputFile], fmt: str, entity_id: str | None,
    *, keys_only: bool = False,
) -> tuple[list[EntityRows], list[Problem]]:
    """Read each file into the raw rows of the entity it is for (rows stream as consumed)."""
    from isd_service.domain.formats import csv_records, json_records, mdd_csv

    if fmt not in FORMATS:
        return [], [Problem(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")]
    if not files:
        return [], [Problem("no file given")]
    files, problems = unzip(files, fmt)
    forced = None
    if entity_id is not None:
        forced = catalogue.get(entity_id) or catalogue.by_source(entity_id)
        if forced is None:
            return [], [Problem(f"unknown entity {entity_id!r}", entity=entity_id)]
    groups: list[EntityRows] = []
    for f in files:
        name = safe_name(f.name)
        if fmt == "json":
            rows, found = json_records.read(f.content(), catalogue, name, forced)
            for group in rows:
                group.input = f
            groups += rows
            problems += found
            continue
        entity = forced or entity_for_file(catalogue, fmt, name)
        if entity is None:
            problems.append(Problem(
                f"cannot tell which entity {name!r} is for: name it <Stem>_<NNN>.csv "
                "(MDD) or <entity id>.csv, or give the entity", file=name))
            continue
        reader = mdd_csv.read if fmt == "mdd-csv" else csv_records.read
        table, found = reader(f.source(), entity, name, keys_only=keys_only)
        problems += found
        if table is not None:
            table.input = f
            groups.append(table)
    seen: dict[str, str] = {}
    for g in groups:
        if g.entity.id in seen:
            problems.append(Problem(
                f"{g.entity.id} is in two files of one load ({seen[g.entity.id]} and {g.file})",
                g.entity.id, g.file))
        seen[g.entity.id] = g.file
    return groups, problems


def is_zip(f: InputFile) -> bool:
    return f.name.lower().endswith(".zip") or next(f.chunks(), b"")[:4] == ZIP_MAGIC


def unzip(files: list[InputFile], fmt: str) -> tuple[list[InputFile], list[Problem]]:
    """Put the members of each zip (a portal download, say) in its place among the files.

    Members are named by their base name; folders, and the hidden files some archivers add,
    are passed over; any other member must be a file of the format (.csv, or .json).
    """
    suffix = ".json" if fmt == "json" else ".csv"
    out: list[InputFile] = []
    problems: list[Problem] = []
    for f in files:
        if not is_zip(f):
            out.append(f)
            continue
        name = safe_name(f.name)
        try:
            with zipfile.ZipFile(io.BytesIO(f.content())) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()
                           and not _hidden(m.filename)]
                if len(members) > MAX_ZIP_MEMBERS:
                    problems.append(Problem(f"the zip holds {len(members)} files, more than "
                                            f"{MAX_ZIP_MEMBERS}", file=name))
                    continue
                size = sum(m.file_size for m in members)
                if size > MAX_UNZIPPED_BYTES:
                    problems.append(Problem(f"the zip would unpack to {size} bytes, more "
                                            f"than {MAX_UNZIPPED_BYTES}", file=name))
                    continue
                if not members:
                    problems.append(Problem("the zip holds no file", file=name))
                for member in members:
                    base = safe_name(member.filename)
                    if not base.lower().endswith(suffix):
                        problems.append(Problem(f"{member.filename!r} in the zip is not a "
                                                f"{suffix} file", file=name))
                        continue
                    out.append(InputFile(base, archive.read(member)))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError,
                EOFError, ValueError) as exc:
            problems.append(Problem(f"not a readable zip file: {exc}", file=name))
    return out, problems


def _hidden(member: str) -> bool:
    parts = member.replace("\\", "/").split("/")
    return parts[0] == "__MACOSX" or parts[-1].startswith(".")
