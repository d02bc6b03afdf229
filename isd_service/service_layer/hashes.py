"""What a version's hashes are made of, for anyone who checks them: an entity's key ranges
(hash rule 2), each with its count and sha256, from which the entity's sha256 composes."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from isd_service.adapters import key_ranges
from isd_service.adapters.orm import Version
from isd_service.domain.errors import NotFound
from isd_service.domain.records import KEY_RANGES_RULE, range_name, ranges_hash


def ranges(session: Session, version: Version, entity_id: str) -> dict[str, Any]:
    """An entity's ranges in ``version``: a holder whose copy does not verify compares them
    with its own and re-fetches only the records of the ranges that differ."""
    if entity_id not in version.entities:
        raise NotFound(f"version {version.number} has no entity {entity_id!r}",
                       slug="no-such-entity")
    if version.hash_rule != KEY_RANGES_RULE:
        raise NotFound(f"version {version.number} was published under hash rule "
                       f"{version.hash_rule} (one sha256 over all of an entity's lines in key "
                       "order), which has no ranges", slug="no-ranges")
    listed = key_ranges.ranges_at(session, entity_id, version.number)
    count, digest = ranges_hash(listed)
    expected = version.entities[entity_id]
    if (count, digest) != (expected["records"], expected["sha256"]):
        # The stored ranges must compose to the published hash; serving ones that do not
        # would send a client hunting for a difference that is the service's own.
        raise RuntimeError(f"the ranges of {entity_id} in version {version.number} do not "
                           "compose to its published sha256")
    return {"version": version.number, "entity": entity_id, "hash_rule": KEY_RANGES_RULE,
            "records": count, "sha256": digest,
            "ranges": [{"range": range_name(r.key_range), "records": r.records,
                        "sha256": r.sha256} for r in listed]}
