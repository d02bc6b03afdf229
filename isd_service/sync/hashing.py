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


def entity_sha256(field_ids: list[str], key_fields: list[str],
                  records: Iterable[dict[str, Any]]) -> tuple[int, str]:
    """Count and hash an entity's records: canonical lines in key order."""
    ordered = sorted(records, key=lambda r: key_text(key_fields, r))
    digest = hashlib.sha256()
    for record in ordered:
        digest.update((canonical(project(field_ids, record)) + "\n").encode("utf-8"))
    return len(ordered), digest.hexdigest()


def catalogue_sha256(catalogue: list[dict[str, Any]]) -> str:
    return hashlib.sha256(canonical(catalogue).encode("utf-8")).hexdigest()


def version_sha256(catalogue_sha: str, entity_hashes: dict[str, str]) -> str:
    text = f"catalogue {catalogue_sha}\n" + "".join(
        f"{eid} {entity_hashes[eid]}\n" for eid in sorted(entity_hashes))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
