"""What a record query asks for: values of fields and a validity date (pure).

A field given once matches records holding that value; given several times (repeated
parameters: ``?market_participant_id=EELC&market_participant_id=EMEB``) it matches records
holding any of them. Values are not split on commas: a value may hold one. An empty value
matches records that have no value in that field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from isd_service.domain.catalogue import EntityDef
from isd_service.domain.errors import DomainError
from isd_service.domain.validation import coerce

# Values one field may list in one query: enough for any participant's set of ids.
MAX_VALUES = 100


@dataclass(frozen=True)
class RecordQuery:
    """Field id -> accepted values (None: no value), and the day records must be in force."""

    equals: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    effective_on: date | None = None


def parse_filters(entity: EntityDef, params: Iterable[tuple[str, str]]
                  ) -> tuple[dict[str, tuple[Any, ...]], list[dict[str, str]]]:
    """Typed values by field from (name, text) pairs, and what is wrong with them."""
    values: dict[str, list[Any]] = {}
    errors: list[dict[str, str]] = []
    for name, text in params:
        fdef = entity.field(name)
        if fdef is None:
            errors.append({"field": name,
                           "message": f"unknown parameter: not a field of {entity.id}"})
            continue
        try:
            value = coerce(fdef, text, dates="iso")
        except ValueError as exc:
            errors.append({"field": name, "message": str(exc)})
            continue
        listed = values.setdefault(name, [])
        if value not in listed:
            listed.append(value)
    for name, listed in values.items():
        if len(listed) > MAX_VALUES:
            errors.append({"field": name, "message": f"at most {MAX_VALUES} values may be "
                                                     f"given, not {len(listed)}"})
    return {name: tuple(listed) for name, listed in values.items()}, errors


class QueryTooExpensive(DomainError):
    """A record query ran past the time this service gives one request."""

    status = 503
    slug = "query-too-expensive"

    def __init__(self, entity: EntityDef, budget_ms: int):
        first = entity.key[0] if entity.key else (entity.field_ids or ["field"])[0]
        super().__init__(
            f"the query on {entity.id} took longer than the {budget_ms} ms this service "
            f"gives one request and was stopped; ask for less: add an equality filter on a "
            f"field (for example ?{first}=...), give fewer values per field, or a smaller "
            f"limit")
