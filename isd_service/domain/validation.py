"""Technical validation of parsed rows against the catalogue (pure, no Flask or ORM).

Only technical checks, as the market asks: types, lengths, required fields, enumerations,
unique keys and effective-to not before effective-from. No business rules (a record may
name a participant that no other entity knows).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import chain, repeat
from json.encoder import encode_basestring
from typing import Any, cast

from isd_service.domain.catalogue import EntityDef, FieldDef
from isd_service.domain.errors import Invalid
from isd_service.domain.records import KEY_SEPARATOR, decode, encoder_for, key_text

MAX_REPORTED_VALUE = 100
INT_RANGE = 2**63
_INTEGER = re.compile(r"^-?[0-9]{1,19}$")
_MDD_DATE = re.compile(r"^([0-9]{2})/([0-9]{2})/([0-9]{4})$")
_ISO_DATE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$")
_TIME = re.compile(r"^([0-9]{2}):([0-9]{2})$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What JSON escapes in a text (ensure_ascii off): a text without these is written as it is.
_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f]')
# Dates, times and integers repeat across a file's rows: their typed values are remembered,
# up to this many distinct texts per field, instead of being parsed again.
CACHED_VALUES = 100_000
# Rows a text reader hands over at a time (RowBatch), checked column by column.
BATCH_ROWS = 10_000


@dataclass
class Problem:
    """One thing wrong with the input: where it is and why it is refused."""

    message: str
    entity: str | None = None
    file: str | None = None
    line: int | None = None
    field: str | None = None
    value: Any = None

    def to_dict(self) -> dict[str, Any]:
        value = self.value
        if isinstance(value, str) and len(value) > MAX_REPORTED_VALUE:
            value = value[:MAX_REPORTED_VALUE] + "..."
        return {"entity": self.entity, "file": self.file, "line": self.line,
                "field": self.field, "value": value, "message": self.message}


class LoadRejected(Invalid):
    """The input was refused; nothing was changed. ``problems`` lists every reason."""

    slug = "invalid-input"

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the input")

    @property
    def detail(self) -> str:
        return (f"the load was refused and nothing was changed: {len(self.problems)} "
                "problem(s) in the input")


@dataclass(slots=True)
class RawRow:
    """A row as a format read it: its line (or record number) and raw values by field id."""

    line: int
    values: dict[str, Any]


@dataclass(slots=True)
class RowBatch:
    """Rows of a text file read together: their lines, and their raw texts by position
    (``columns`` names the field of each position)."""

    columns: list[str]
    lines: list[int]
    rows: list[list[str]]

    def raw_rows(self) -> Iterator[RawRow]:
        columns = self.columns
        for line, row in zip(self.lines, self.rows, strict=True):
            yield RawRow(line, dict(zip(columns, row, strict=True)))


@dataclass(slots=True)
class CheckedRows:
    """Rows that passed their checks: key texts, stored data and lines, by position."""

    keys: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


@dataclass
class Validated:
    """Rows of one entity that passed, keyed by their key text.

    A record is kept only in its stored form (records.encode): a load of millions of
    records holds one string per record, not a dictionary.
    """

    entity: EntityDef
    file: str | None
    data: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)

    @property
    def records(self) -> dict[str, dict[str, Any]]:
        """The typed records by key (decoded afresh: for small loads and reports)."""
        return {key: decode(data) for key, data in self.data.items()}


def coerce(fdef: FieldDef, raw: Any, *, dates: str = "iso") -> Any:
    """Turn one raw value into its typed, canonical form; None is no value.

    Raises ValueError with a message meant for the person who sent the file.
    """
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise ValueError(f"expected a {fdef.type} as text, got {type(raw).__name__}")
    if fdef.type == "integer":
        if isinstance(raw, int):
            value = raw
        elif _INTEGER.match(raw):
            value = int(raw)
        else:
            raise ValueError("not an integer")
        if not -INT_RANGE < value < INT_RANGE:
            raise ValueError("integer out of range")
        return value
    if not isinstance(raw, str):
        raise ValueError(f"expected text for a {fdef.type} field, got a number")
    if _CONTROL.search(raw):
        raise ValueError("contains a control character (tab, newline, NUL ...)")
    if fdef.type == "string":
        if fdef.max_length is not None and len(raw) > fdef.max_length:
            raise ValueError(f"longer than {fdef.max_length} characters ({len(raw)})")
        return raw
    if fdef.type == "enum":
        assert fdef.values is not None
        if raw not in fdef.values:
            raise ValueError(f"not one of {', '.join(fdef.values)}")
        return raw
    if fdef.type == "date":
        return _coerce_date(raw, dates)
    if fdef.type == "time":
        m = _TIME.match(raw)
        if not m:
            raise ValueError("not a time of day as HH:MM")
        hours, minutes = int(m.group(1)), int(m.group(2))
        if not ((hours < 24 and minutes < 60) or (hours == 24 and minutes == 0)):
            raise ValueError("not a time of day (00:00 to 24:00)")
        return raw
    raise ValueError(f"unknown field type {fdef.type}")


def _coerce_date(raw: str, dates: str) -> str:
    if dates == "mdd":
        m = _MDD_DATE.match(raw)
        if not m:
            raise ValueError("not a date as dd/mm/yyyy")
        day, month, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
    else:
        m = _ISO_DATE.match(raw)
        if not m:
            raise ValueError("not a date as YYYY-MM-DD")
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    try:
        return date(year, month, day).isoformat()
    except ValueError as exc:
        raise ValueError(f"impossible date ({exc})") from None


Check = Callable[[Any], Any]


def checker(fdef: FieldDef, *, dates: str = "iso") -> Check:
    """Return ``coerce`` for one field, made fast for the text values files hold.

    The usual value takes a short path; anything unusual goes through ``coerce``, so the
    answers and the error messages are always coerce's.
    """
    def slow(raw: Any) -> Any:
        return coerce(fdef, raw, dates=dates)

    if fdef.type == "string":
        limit = fdef.max_length if fdef.max_length is not None else float("inf")
        control = _CONTROL.search

        def check_string(raw: Any) -> Any:
            if type(raw) is str and raw and len(raw) <= limit and not control(raw):
                return raw
            return slow(raw)
        return check_string
    if fdef.type == "enum":
        allowed = frozenset(fdef.values or ())

        def check_enum(raw: Any) -> Any:
            if type(raw) is str and raw in allowed:
                return raw
            return slow(raw)
        return check_enum
    cache: dict[str, Any] = {}

    def check_cached(raw: Any) -> Any:
        if type(raw) is not str:  # True == 1: only texts may share a remembered answer
            return slow(raw)
        try:
            return cache[raw]
        except KeyError:
            value = slow(raw)
            if len(cache) < CACHED_VALUES:
                cache[raw] = value
            return value
    return check_cached


def check_rows(
    entity: EntityDef,
    rows: Iterable[RawRow],
    problems: list[Problem],
    *,
    dates: str = "iso",
    file: str | None = None,
    keys_only: bool = False,
) -> Iterator[tuple[str, str, int]]:
    """Check every row of one entity on its own; yield (key text, stored data, line) of each
    row that passes, and add what is wrong with the others to ``problems``, in row order.

    The checks of a row alone: types, lengths, required values, enumerations and dates in
    order. A key met twice is the caller's to find (``duplicate_key`` words it), so that a
    load of millions of records need not hold their keys. With ``keys_only`` (delete loads)
    only the key fields are read and checked. ``rows`` may be a stream.
    """
    fields = [entity.field(k) for k in entity.key] if keys_only else list(entity.fields)
    checks = [(f.id, f.required, checker(f, dates=dates)) for f in fields if f is not None]
    encode = encoder_for(entity)
    eff_from, eff_to = entity.effective_from or "", entity.effective_to or ""
    dated = not keys_only and bool(eff_from and eff_to)
    for row in rows:
        values = row.values
        record: dict[str, Any] = {}
        row_ok = True
        for fid, required, check in checks:
            raw = values.get(fid)
            try:
                value = check(raw)
            except ValueError as exc:
                problems.append(Problem(str(exc), entity.id, file, row.line, fid, raw))
                row_ok = False
                continue
            if value is None:
                if required:
                    problems.append(Problem("required value is missing", entity.id, file,
                                            row.line, fid, raw))
                    row_ok = False
                continue
            record[fid] = value
        if not row_ok:
            continue
        if dated:
            start, end = record.get(eff_from), record.get(eff_to)
            if start is not None and end is not None and end < start:
                problems.append(Problem(
                    f"effective-to date is before effective-from date ({values.get(eff_from)})",
                    entity.id, file, row.line, eff_to, values.get(eff_to)))
                continue
        yield key_text(entity, record), encode(record), row.line


def check_batches(
    entity: EntityDef,
    batches: Iterable[RowBatch | list[RawRow]],
    problems: list[Problem],
    *,
    dates: str = "iso",
    file: str | None = None,
    keys_only: bool = False,
) -> Iterator[CheckedRows]:
    """``check_rows`` over rows read in batches: the same rows pass, with the same problems
    in the same order; yields what passed, a batch at a time.

    A text reader's batch is first checked column by column (``ColumnCheck``); a batch
    with anything unusual in it, and rows of other readers, go through ``check_rows``
    itself, which alone words the problems.
    """
    columns = ColumnCheck(entity, dates=dates, keys_only=keys_only)
    for batch in batches:
        checked = columns(batch) if isinstance(batch, RowBatch) else None
        if checked is None:
            checked = CheckedRows()
            rows = batch.raw_rows() if isinstance(batch, RowBatch) else batch
            for key, data, line in check_rows(entity, rows, problems, dates=dates, file=file,
                                              keys_only=keys_only):
                checked.keys.append(key)
                checked.data.append(data)
                checked.lines.append(line)
        if checked.keys:
            yield checked


class ColumnCheck:
    """The checks of ``check_rows`` on a batch of text rows, a column at a time.

    It accepts a batch only when every value passes the same test as ``checker``'s short
    path (texts and enumerations), or ``checker`` itself on each distinct value (dates,
    times, integers); with no value missing where one is required and no effective-to
    before its effective-from. Then it returns exactly the key texts and stored data that
    ``check_rows`` would; otherwise None, and the batch goes row by row. Column operations
    run in C: a million-row file is checked in a fraction of the time of a row loop.
    """

    def __init__(self, entity: EntityDef, *, dates: str, keys_only: bool):
        fields = [entity.field(k) for k in entity.key] if keys_only else list(entity.fields)
        self.fields = [f for f in fields if f is not None]
        self.key = list(entity.key)
        self.dated = (None if keys_only or not (entity.effective_from and entity.effective_to)
                      else (entity.effective_from, entity.effective_to))
        self.parsed = {f.id: checker(f, dates=dates) for f in self.fields
                       if f.type not in ("string", "enum")}
        self.caches: dict[str, dict[str, Any]] = {fid: {} for fid in self.parsed}
        # The stored data's fields in sorted order, with their JSON prefixes (records.encode).
        self.order = sorted(f.id for f in self.fields)
        self.prefixes = [encode_basestring(fid) + ":" for fid in self.order]
        self.integers = {f.id for f in self.fields if f.type == "integer"}
        # Fields whose checked values never need a JSON escape: no scan of their columns.
        self.plain = {f.id for f in self.fields if f.type in ("date", "time") or (
            f.type == "enum" and not any(_JSON_ESCAPED.search(v) for v in f.values or ()))}

    def __call__(self, batch: RowBatch) -> CheckedRows | None:
        if not batch.rows:
            return CheckedRows()
        by_field = dict(zip(batch.columns, zip(*batch.rows, strict=True), strict=True))
        typed: dict[str, Sequence[Any] | None] = {}
        for f in self.fields:
            column = by_field.get(f.id)
            if column is None:
                if f.required:
                    return None
                typed[f.id] = None
                continue
            values = self._typed(f, column)
            if values is None or (f.required and None in values):
                return None
            typed[f.id] = values
        if self.dated is not None:
            starts, ends = typed[self.dated[0]], typed[self.dated[1]]
            # No start or no end is no bound: such a row is never out of order.
            if starts is not None and ends is not None and any(map(
                    operator.lt, [e or "\uffff" for e in ends] if None in ends else ends,
                    [s or "" for s in starts] if None in starts else starts)):
                return None
        texts: list[Sequence[str]] = []
        for k in self.key:
            values = typed[k]
            if values is None:
                return None
            texts.append(values if k not in self.integers else [str(v) for v in values])
        key_texts = texts[0] if len(texts) == 1 else list(map(KEY_SEPARATOR.join,
                                                              zip(*texts, strict=True)))
        data = self._stored(typed)
        if data is None:
            return None
        return CheckedRows(keys=cast(list[str], key_texts), data=data, lines=batch.lines)

    def _typed(self, f: FieldDef, column: Sequence[str]) -> Sequence[Any] | None:
        """The column's typed values (None for no value), or None if any value fails."""
        has_empty = "" in column
        present = [v for v in column if v] if has_empty else column
        if f.type == "string":
            limit = f.max_length
            if present and ((limit is not None and max(map(len, present)) > limit)
                            or _CONTROL.search("".join(present))):
                return None
        elif f.type == "enum":
            if not set(present) <= set(f.values or ()):
                return None
        else:
            cache = self.caches[f.id]
            if len(cache) > CACHED_VALUES:
                cache.clear()
            check = self.parsed[f.id]
            for raw in set(column).difference(cache):
                try:
                    cache[raw] = check(raw)
                except ValueError:
                    return None
            return list(map(cache.__getitem__, column))
        return [v or None for v in column] if has_empty else column

    def _stored(self, typed: dict[str, Sequence[Any] | None]) -> list[str] | None:
        """Each row's stored data, as records.encode writes it, by one join per batch.

        A column with no value missing puts its values between constant texts; one with
        gaps gives each row its field's whole text, or nothing. Fields before the first
        column without gaps carry their comma after them, later ones before them, so the
        commas come right whatever is missing.
        """
        present = [(fid, prefix, values)
                   for fid, prefix in zip(self.order, self.prefixes, strict=True)
                   if (values := typed[fid]) is not None]
        anchor = next((i for i, (_, _, values) in enumerate(present) if None not in values),
                      None)
        if anchor is None:  # not met (a key field is required): the batch goes row by row
            return None
        # The batch's texts, in one pass: constant texts between the columns' values.
        constants, columns, pending = [], [], "{"
        for i, (fid, prefix, values) in enumerate(present):
            before, after = ("," if i > anchor else ""), ("," if i < anchor else "")
            gaps = None in values
            text = fid not in self.integers
            plain = fid in self.plain or (text and not _JSON_ESCAPED.search(
                "".join([v for v in values if v is not None] if gaps else values)))
            quote = '"' if plain else ""
            encode: Callable[[Any], str] = _same if plain else encode_basestring if text else str
            if not gaps:
                constants.append(pending + before + prefix + quote)
                columns.append(values if plain else list(map(encode, values)))
                pending = quote + after
                continue
            head, tail = before + prefix + quote, quote + after
            constants.append(pending)
            columns.append(["" if v is None else head + encode(v) + tail for v in values])
            pending = ""
        constants.append(pending + "}\n")  # stored data holds no newline: JSON escapes it
        pieces: list[Iterable[Any]] = [repeat(constants[0])]
        for column, constant in zip(columns, constants[1:], strict=True):
            pieces += [column, repeat(constant)]
        # strict=False: the repeats are endless, the columns all of the batch's length.
        return "".join(chain.from_iterable(zip(*pieces, strict=False))).split("\n")[:-1]


def _same(value: str) -> str:
    return value


def duplicate_key(entity: EntityDef, file: str | None, line: int, first_line: int,
                  data: str) -> Problem:
    """The problem of a row (at ``line``, stored ``data``) whose key an earlier row has."""
    return Problem(f"duplicate key: the same {', '.join(entity.key)} is on line {first_line}",
                   entity.id, file, line, entity.key[0], decode(data)[entity.key[0]])


def validate_rows(
    entity: EntityDef,
    rows: Iterable[RawRow],
    *,
    dates: str = "iso",
    file: str | None = None,
    keys_only: bool = False,
) -> tuple[Validated, list[Problem]]:
    """Check every row of one entity; return the valid records and every problem found.

    The rows' checks (``check_rows``) with the unique key checked on the records held: for
    the callers that want the records in memory (a load streams them instead).
    """
    result = Validated(entity=entity, file=file)
    data, lines = result.data, result.lines
    problems: list[Problem] = []
    for key, stored, line in check_rows(entity, rows, problems, dates=dates, file=file,
                                        keys_only=keys_only):
        if key in data:
            problems.append(duplicate_key(entity, file, line, lines[key], stored))
            continue
        data[key] = stored
        lines[key] = line
    return result, problems
