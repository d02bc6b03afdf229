"""CSV reading and writing shared by the MDD CSV and the generic CSV formats."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from isd_service.domain import validation
from isd_service.domain.catalogue import EntityDef, FieldDef
from isd_service.domain.formats import EntityRows, text_stream
from isd_service.domain.validation import Problem, RawRow, RowBatch

MAX_FIELD_SIZE = 100_000


def read_table(
    data: bytes | Path,
    entity: EntityDef,
    file: str,
    *,
    header_of: Callable[[FieldDef], str],
    dates: str,
    keys_only: bool = False,
) -> tuple[EntityRows | None, list[Problem]]:
    """Read a CSV file whose header names the entity's fields.

    Problems of the whole file (encoding, header) are returned at once, with no rows. The
    rows are read as they are consumed, so that a file of millions of lines is never held
    as rows; problems of a row's shape (field count, quoting) are added to the result's
    ``problems`` as they are met. With ``keys_only`` (a delete load) only the key columns
    are required.
    """
    text, problems = text_stream(data, file)
    if text is None:
        return None, [_at(p, entity) for p in problems]
    csv.field_size_limit(MAX_FIELD_SIZE)
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        text.close()
        return None, [Problem(f"malformed CSV: {exc}", entity.id, file, 1)]
    if not header or not any(h.strip() for h in header):
        text.close()
        return None, [Problem("no header line", entity.id, file, 1)]
    columns, problems = _map_header(header, entity, file, header_of, keys_only)
    if problems:
        text.close()
        return None, problems
    out = EntityRows(entity=entity, file=file, dates=dates)
    out.batches = _batches(reader, text, columns, out)
    out.rows = _rows(out.batches)
    return out, []


def _batches(reader: Any, text: TextIO, columns: list[str], out: EntityRows
             ) -> Iterator[RowBatch]:
    """The rows as read, BATCH_ROWS at a time; the file is closed once they have all been
    read."""
    width, size = len(columns), validation.BATCH_ROWS
    line = reader.line_num + 1
    lines: list[int] = []
    rows: list[list[str]] = []
    # The loop runs once per row of files of millions: what it calls is bound once.
    add_row, add_line = rows.append, lines.append
    try:
        for row in reader:
            if len(row) == width:
                add_row(row)
                add_line(line)
                if len(rows) == size:
                    yield RowBatch(columns, lines, rows)
                    lines, rows = [], []
                    add_row, add_line = rows.append, lines.append
            elif row:
                out.problems.append(Problem(f"expected {width} fields, found {len(row)}",
                                            out.entity.id, out.file, line))
            line = reader.line_num + 1
    except csv.Error as exc:
        out.problems.append(Problem(f"malformed CSV: {exc}", out.entity.id, out.file, line))
    finally:
        text.close()
    if rows:
        yield RowBatch(columns, lines, rows)


def _rows(batches: Iterable[RowBatch]) -> Iterator[RawRow]:
    """The same rows one at a time, for the readers of rows."""
    for batch in batches:
        yield from batch.raw_rows()


def _map_header(
    header: list[str], entity: EntityDef, file: str, header_of: Callable[[FieldDef], str],
    keys_only: bool,
) -> tuple[list[str], list[Problem]]:
    names = {header_of(f): f.id for f in entity.fields}
    folded = {name.strip().lower(): fid for name, fid in names.items()}
    columns: list[str] = []
    problems: list[Problem] = []
    for position, name in enumerate(header, start=1):
        fid = names.get(name) or folded.get(name.strip().lower())
        if fid is None:
            problems.append(Problem(
                f"unknown column {name!r} (column {position}) for entity {entity.id}",
                entity.id, file, 1, None, name))
        elif fid in columns:
            problems.append(Problem(f"column {name!r} appears twice", entity.id, file, 1,
                                    fid, name))
        columns.append(fid or "")
    for f in entity.fields:
        needed = f.id in entity.key if keys_only else f.required
        if needed and f.id not in columns:
            problems.append(Problem(f"required column {header_of(f)!r} is missing",
                                    entity.id, file, 1, f.id))
    return columns, problems


def _at(problem: Problem, entity: EntityDef) -> Problem:
    problem.entity = entity.id
    return problem


def write_table(
    entity: EntityDef,
    records: Iterable[dict[str, Any]],
    *,
    header_of: Callable[[FieldDef], str],
    render: Callable[[FieldDef, Any], str],
    quote_all: bool,
) -> Iterator[str]:
    """Yield CSV text chunks: the header, then one line per record (LF line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n",
                        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    writer.writerow([header_of(f) for f in entity.fields])
    for count, record in enumerate(records, start=1):
        writer.writerow([render(f, record.get(f.id)) for f in entity.fields])
        if count % 2000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
