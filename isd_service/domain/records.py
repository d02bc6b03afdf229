"""Canonical forms of a record: its key text, its stored data and its hash (pure).

These forms are the contract that makes deltas exact and hashes checkable by anyone:

- key text: the key fields' values (dates ISO, integers in decimal) joined by U+001F, which
  sorts below every character a value may hold; records are ordered by key text in code-point
  order, field by field (so integer keys sort as text: "10" before "2");
- stored data: JSON of the record's non-null values, keys sorted, no whitespace, so that two
  records are equal exactly when their stored texts are;
- hashed line: JSON of the record projected on its version's catalogue (every field, null for
  no value), keys sorted, no whitespace, UTF-8, followed by a newline. An entity's sha256 is
  over its hashed lines in key order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from json.encoder import encode_basestring
from typing import Any

from isd_service.domain.catalogue import EntityDef

KEY_SEPARATOR = "\x1f"


def key_text(entity: EntityDef, record: dict[str, Any]) -> str:
    """Join the key fields' values into the text the store orders and matches by."""
    return KEY_SEPARATOR.join([str(record[k]) for k in entity.key])


def key_dict(entity: EntityDef, record: dict[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in entity.key}


def encode(record: dict[str, Any]) -> str:
    """Serialise a record's non-null values canonically for storage and comparison."""
    return json.dumps({k: v for k, v in record.items() if v is not None},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def encoder_for(entity: EntityDef) -> Callable[[dict[str, Any]], str]:
    """Return ``encode`` for records of one entity whose values are texts and integers.

    The same text as ``encode``, built from the entity's field ids sorted once rather than
    by the JSON encoder for every record: a load of a million records encodes each once.
    """
    order = [(fid, encode_basestring(fid) + ":") for fid in sorted(entity.field_ids)]

    def encode_record(record: dict[str, Any]) -> str:
        return "{" + ",".join([
            prefix + (encode_basestring(value) if type(value) is str else str(value))
            for fid, prefix in order if (value := record.get(fid)) is not None]) + "}"
    return encode_record


def decode(data: str) -> dict[str, Any]:
    return json.loads(data)


def project(entity: EntityDef, stored: dict[str, Any]) -> dict[str, Any]:
    """Give a stored record every field of the entity, in catalogue order, null where unset."""
    return {fid: stored.get(fid) for fid in entity.field_ids}


def projected_json(entity: EntityDef, *, sort_keys: bool = False) -> Callable[[str], str]:
    """Return stored data -> the JSON text of the record projected on ``entity``.

    That is ``json.dumps(project(entity, decode(data)), separators=(",", ":"),
    ensure_ascii=False)`` (with ``sort_keys`` if asked), written without building the
    projected dictionary: publication hashes and snapshot files write every record once.
    """
    order = sorted(entity.field_ids) if sort_keys else list(entity.field_ids)
    prefixes = [(fid, encode_basestring(fid) + ":") for fid in order]
    # The decoder's own scanner, without json.loads' checks around it: stored texts are
    # ours, one compact JSON object each.
    scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]

    def other(value: Any) -> str:
        return json.dumps(value, sort_keys=sort_keys, separators=(",", ":"),
                          ensure_ascii=False)

    def write(data: str) -> str:
        stored = scan(data, 0)[0]
        return "{" + ",".join([
            prefix + (encode_basestring(value) if type(value) is str
                      else "null" if value is None
                      else str(value) if type(value) is int
                      else other(value))
            for fid, prefix in prefixes for value in (stored.get(fid),)]) + "}"
    return write


def hashed_line(entity: EntityDef, data: str) -> bytes:
    """One record's canonical line, as an entity's sha256 takes it (see entity_hash)."""
    return (projected_json(entity, sort_keys=True)(data) + "\n").encode("utf-8")


def entity_hash(entity: EntityDef, data_in_key_order: Iterable[str]) -> tuple[int, str]:
    """Count and hash an entity's records (stored data texts, in key order)."""
    digest = hashlib.sha256()
    line = projected_json(entity, sort_keys=True)
    count = 0
    batch: list[str] = []
    for data in data_in_key_order:
        batch.append(line(data))
        count += 1
        if len(batch) == 1000:  # one update per thousand lines: the same bytes, fewer calls
            batch.append("")
            digest.update("\n".join(batch).encode("utf-8"))
            batch = []
    if batch:
        batch.append("")
        digest.update("\n".join(batch).encode("utf-8"))
    return count, digest.hexdigest()


def snapshot_hash(entity_hashes: dict[str, str], catalogue_sha256: str) -> str:
    """Hash a whole version: its catalogue and every entity's hash, entity ids sorted."""
    lines = [f"catalogue {catalogue_sha256}\n"]
    lines += [f"{eid} {entity_hashes[eid]}\n" for eid in sorted(entity_hashes)]
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()
