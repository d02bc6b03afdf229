"""The README's hash rules ("Hashes"), written out again from the README alone, so that the
tests check what the service serves against the documented rule, not against its own code."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def line(record: dict[str, Any]) -> bytes:
    """A served record's canonical line."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8") + b"\n"


def key_text(record: dict[str, Any], key: list[str]) -> str:
    return "\x1f".join(str(record[k]) for k in key)


def ranges(records: list[dict[str, Any]], key: list[str]) -> dict[str, tuple[int, str]]:
    """Rule 2's ranges: range (four hex digits of the key text's SHA-256) -> (count, sha256
    of the range's lines in key order)."""
    held: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        text = key_text(record, key)
        held.setdefault(hashlib.sha256(text.encode("utf-8")).hexdigest()[:4], []).append(record)
    out = {}
    for rng in sorted(held):
        ordered = sorted(held[rng], key=lambda r: key_text(r, key))
        out[rng] = (len(ordered), hashlib.sha256(b"".join(map(line, ordered))).hexdigest())
    return out


def entity_hash(records: list[dict[str, Any]], key: list[str], rule: int) -> dict[str, Any]:
    """{"records", "sha256"} of an entity's served records (in key order) by ``rule``."""
    if rule == 1:
        digest = hashlib.sha256(b"".join(map(line, records))).hexdigest()
    else:
        text = "".join(f"{rng} {n} {sha}\n" for rng, (n, sha) in ranges(records, key).items())
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return {"records": len(records), "sha256": digest}


def version_hash(catalogue: list[dict[str, Any]], entity_hashes: dict[str, str]) -> str:
    catalogue_sha = hashlib.sha256(json.dumps(
        catalogue, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()
    text = f"catalogue {catalogue_sha}\n" + "".join(
        f"{eid} {entity_hashes[eid]}\n" for eid in sorted(entity_hashes))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
