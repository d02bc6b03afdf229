"""Canonical forms of a record: its key text, its stored data and its hash (pure).

These forms are the contract that makes deltas exact and hashes checkable by anyone:

- key text: the key fields' values (dates ISO, integers in decimal) joined by U+001F, which
  sorts below every character a value may hold; records are ordered by key text in code-point
  order, field by field (so integer keys sort as text: "10" before "2");
- stored data: JSON of the record's non-null values, keys sorted, no whitespace, so that two
  records are equal exactly when their stored texts are;
- hashed line: JSON of the record projected on its version's catalogue (every field, null for
  no value), keys sorted, no whitespace, UTF-8, followed by a newline;
- key range: the first four hex digits of the SHA-256 of the key text (UTF-8), 0 to 65535.
  An entity's sha256 composes its ranges' (rule 2, ``ranges_hash``), so a publication
  re-hashes only the ranges its changes touch and a holder of a damaged copy can
  tell which range differs. Versions published before rule 2 keep their rule-1 hashes: over
  all hashed lines in key order (``entity_hash``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from json.encoder import encode_basestring
from typing import Any, NamedTuple

from isd_service.domain.catalogue import EntityDef

KEY_SEPARATOR = "\x1f"
# Hash rules a version may be published under (see the module's docstring).
KEY_ORDER_RULE = 1
KEY_RANGES_RULE = 2


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


# 65,536 ranges: a publication re-hashes the ranges its changes touch (under a hundred records
# each while an entity holds fewer than six million) and composes the ranges of each changed
# entity (at most 65,536 short rows).
RANGE_BITS = 16


def key_range(key: str) -> int:
    """The key range of a key text: the first four hex digits of its SHA-256, 0 to 65535."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:2], "big") >> (16 - RANGE_BITS)


def range_name(key_range_: int) -> str:
    return f"{key_range_:04x}"


class RangeHash(NamedTuple):
    """One key range of an entity: how many records it holds and the sha256 of their hashed
    lines in key order."""

    key_range: int
    records: int
    sha256: str


def range_hashes(entity: EntityDef,
                 rows_in_range_order: Iterable[tuple[int, str]]) -> Iterator[RangeHash]:
    """Hash ranges from (key range, stored data) rows ordered by range, then key."""
    line = projected_json(entity, sort_keys=True)
    current: int | None = None
    lines: list[str] = []
    for rng, data in rows_in_range_order:
        if rng != current:
            if current is not None:
                yield _range_hash(current, lines)
            current, lines = rng, []
        lines.append(line(data))
    if current is not None:
        yield _range_hash(current, lines)


def _range_hash(rng: int, lines: list[str]) -> RangeHash:
    lines.append("")
    return RangeHash(rng, len(lines) - 1,
                     hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest())


def ranges_hash(ranges: Iterable[RangeHash]) -> tuple[int, str]:
    """Count and hash an entity from its ranges (rule 2): sha256 over the text
    ``<range> <records> <range sha256>\\n`` of every range that holds a record, in range order.
    """
    count = 0
    text: list[str] = []
    for r in sorted(ranges, key=lambda r: r.key_range):
        if r.records:
            count += r.records
            text.append(f"{range_name(r.key_range)} {r.records} {r.sha256}\n")
    return count, hashlib.sha256("".join(text).encode("utf-8")).hexdigest()


def entity_hash_by_rule(entity: EntityDef, rule: int,
                        rows_in_key_order: Iterable[tuple[str, str]]) -> tuple[int, str]:
    """Count and hash an entity's (key text, stored data) rows, in key order, by ``rule``."""
    if rule == KEY_ORDER_RULE:
        return entity_hash(entity, (data for _key, data in rows_in_key_order))
    rows = sorted(((key_range(key), key, data) for key, data in rows_in_key_order),
                  key=lambda r: (r[0], r[1]))
    return ranges_hash(range_hashes(entity, ((rng, data) for rng, _key, data in rows)))


def snapshot_hash(entity_hashes: dict[str, str], catalogue_sha256: str) -> str:
    """Hash a whole version: its catalogue and every entity's hash, entity ids sorted."""
    lines = [f"catalogue {catalogue_sha256}\n"]
    lines += [f"{eid} {entity_hashes[eid]}\n" for eid in sorted(entity_hashes)]
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()
