"""Generic CSV: a header of field ids, ISO dates, an empty field for no value."""

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
    return read_table(data, entity, file, header_of=lambda f: f.id, dates="iso",
                      keys_only=keys_only)


def render(fdef: FieldDef, value: Any) -> str:
    return "" if value is None else str(value)


def write(entity: EntityDef, records: Iterable[dict[str, Any]]) -> Iterator[str]:
    return write_table(entity, records, header_of=lambda f: f.id, render=render,
                       quote_all=False)
