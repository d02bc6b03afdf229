"""Elexon MDD CSV files: MDD column headers, every field quoted, dates as dd/mm/yyyy."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from isd_service.domain.catalogue import EntityDef, FieldDef
from isd_service.domain.formats import EntityRows
from isd_service.domain.formats.tabular import read_table, write_table
from isd_service.domain.validation import Problem


def read(
    data: bytes | Path, entity: EntityDef, file: str, *, keys_only: bool = False
) -> tuple[EntityRows | None, list[Problem]]:
    """Read one MDD file of an entity (header = the MDD column names)."""
    return read_table(data, entity, file, header_of=lambda f: f.name, dates="mdd",
                      keys_only=keys_only)


def render(fdef: FieldDef, value: Any) -> str:
    """Write a value as the MDD files do: dates dd/mm/yyyy, nothing for no value."""
    if value is None:
        return ""
    if fdef.type == "date":
        year, month, day = value.split("-")
        return f"{day}/{month}/{year}"
    return str(value)


def write(entity: EntityDef, records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Yield the entity as an MDD CSV file, in the given record order."""
    return write_table(entity, records, header_of=lambda f: f.name, render=render,
                       quote_all=True)
