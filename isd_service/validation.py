"""Technical validation of parsed rows against the catalogue (pure, no Flask or ORM).

Only technical checks, as the market asks: types, lengths, required fields, enumerations,
unique keys and effective-to not before effective-from. No business rules (a record may
name a participant that no other entity knows).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from isd_service.catalogue import EntityDef, FieldDef
from isd_service.records import key_text

MAX_REPORTED_VALUE = 100
INT_RANGE = 2**63
_INTEGER = re.compile(r"^-?[0-9]{1,19}$")
_MDD_DATE = re.compile(r"^([0-9]{2})/([0-9]{2})/([0-9]{4})$")
_ISO_DATE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$")
_TIME = re.compile(r"^([0-9]{2}):([0-9]{2})$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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


@dataclass
class RawRow:
    """A row as a format read it: its line (or record number) and raw values by field id."""

    line: int
    values: dict[str, Any]


@dataclass
class Validated:
    """Rows of one entity that passed, as typed records keyed by their key text."""

    entity: EntityDef
    file: str | None
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)


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


def validate_rows(
    entity: EntityDef,
    rows: Iterable[RawRow],
    *,
    dates: str = "iso",
    file: str | None = None,
    keys_only: bool = False,
) -> tuple[Validated, list[Problem]]:
    """Check every row of one entity; return the valid records and every problem found.

    With ``keys_only`` (delete loads) only the key fields are read and checked.
    """
    result = Validated(entity=entity, file=file)
    problems: list[Problem] = []
    checked = [entity.field(k) for k in entity.key] if keys_only else list(entity.fields)
    for row in rows:
        record: dict[str, Any] = {}
        row_ok = True
        for fdef in checked:
            assert fdef is not None
            raw = row.values.get(fdef.id)
            try:
                value = coerce(fdef, raw, dates=dates)
            except ValueError as exc:
                problems.append(Problem(str(exc), entity.id, file, row.line, fdef.id, raw))
                row_ok = False
                continue
            if value is None:
                if fdef.required:
                    problems.append(Problem("required value is missing", entity.id, file,
                                            row.line, fdef.id, raw))
                    row_ok = False
                continue
            record[fdef.id] = value
        if not row_ok:
            continue
        if not keys_only and entity.effective_from and entity.effective_to:
            start, end = record.get(entity.effective_from), record.get(entity.effective_to)
            if start is not None and end is not None and end < start:
                problems.append(Problem(
                    "effective-to date is before effective-from date "
                    f"({row.values.get(entity.effective_from)})",
                    entity.id, file, row.line, entity.effective_to,
                    row.values.get(entity.effective_to)))
                continue
        key = key_text(entity, record)
        if key in result.records:
            problems.append(Problem(
                f"duplicate key: the same {', '.join(entity.key)} is on line "
                f"{result.lines[key]}", entity.id, file, row.line, entity.key[0],
                record[entity.key[0]]))
            continue
        result.records[key] = record
        result.lines[key] = row.line
    return result, problems
