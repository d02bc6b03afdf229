"""The service's public hash rule (README "Hashes"), re-implemented so a client can check it.

Deliberately independent of isd_service.records: a participant checks the published hashes
with their own code, and so does this client.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

KEY_SEPARATOR = "\x1f"


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def key_text(key_fields: list[str], record: dict[str, Any]) -> str:
    """The record's key as text: key values joined by U+001F (it sorts below any value)."""
    return KEY_SEPARATOR.join(str(record[k]) for k in key_fields)


def project(field_ids: list[str], record: dict[str, Any]) -> dict[str, Any]:
    return {f: record.get(f) for f in field_ids}


def key_range(key: str) -> str:
    """A key's range (rule 2): the first four hex digits of the SHA-256 of its key text."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:4]


def _lines_sha256(field_ids: list[str], key_fields: list[str],
                  records: list[dict[str, Any]]) -> str:
    digest = hashlib.sha256()
    for record in sorted(records, key=lambda r: key_text(key_fields, r)):
        digest.update((canonical(project(field_ids, record)) + "\n").encode("utf-8"))
    return digest.hexdigest()


def range_sha256s(field_ids: list[str], key_fields: list[str],
                  records: Iterable[dict[str, Any]]) -> dict[str, tuple[int, str]]:
    """Each range that holds a record -> (count, sha256 of its canonical lines in key order)."""
    by_range: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_range.setdefault(key_range(key_text(key_fields, record)), []).append(record)
    return {rng: (len(held), _lines_sha256(field_ids, key_fields, held))
            for rng, held in sorted(by_range.items())}


def entity_sha256(field_ids: list[str], key_fields: list[str],
                  records: Iterable[dict[str, Any]], rule: int = 1) -> tuple[int, str]:
    """Count and hash an entity's records by the version's hash rule.

    Rule 1: canonical lines in key order. Rule 2: the text ``<range> <count> <sha256>\\n`` of
    every range that holds a record, in range order.
    """
    if rule == 1:
        records = list(records)
        return len(records), _lines_sha256(field_ids, key_fields, records)
    if rule != 2:
        raise ValueError(f"hash rule {rule} is not one this client knows (1 or 2)")
    ranges = range_sha256s(field_ids, key_fields, records)
    text = "".join(f"{rng} {count} {sha}\n" for rng, (count, sha) in ranges.items())
    return (sum(count for count, _sha in ranges.values()),
            hashlib.sha256(text.encode("utf-8")).hexdigest())


def catalogue_sha256(catalogue: list[dict[str, Any]]) -> str:
    return hashlib.sha256(canonical(catalogue).encode("utf-8")).hexdigest()


def version_sha256(catalogue_sha: str, entity_hashes: dict[str, str]) -> str:
    text = f"catalogue {catalogue_sha}\n" + "".join(
        f"{eid} {entity_hashes[eid]}\n" for eid in sorted(entity_hashes))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
