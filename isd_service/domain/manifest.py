"""A version's manifest: the public description of a published version (pure).

Record counts and SHA-256 hashes per entity and of the whole version (see records.py for
the hash rule), with the version's neighbours and dates; ``/versions/{n}`` adds the loads
the version carries (its provenance).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, Protocol

from isd_service.domain.moments import iso_utc
from isd_service.domain.records import KEY_ORDER_RULE


class PublishedVersion(Protocol):
    number: int
    published_at: datetime
    go_live_date: date | None
    previous_version: int | None
    sha256: str
    catalogue_sha256: str
    record_count: int
    entities: dict[str, Any]
    catalogue: list[dict[str, Any]]
    hash_rule: int


class LoadRecord(Protocol):
    id: int
    created_at: datetime
    actor: str
    organisation: str | None
    sha256: str
    files: list[dict[str, Any]]


def manifest(version: PublishedVersion,
             loads: Iterable[LoadRecord] | None = None) -> dict[str, Any]:
    """The public description of a version: counts and hashes per entity and of the whole."""
    out: dict[str, Any] = {
        "version": version.number,
        "published_at": iso_utc(version.published_at),
        "go_live_date": version.go_live_date.isoformat() if version.go_live_date else None,
        "previous_version": version.previous_version,
        "sha256": version.sha256,
        "catalogue_sha256": version.catalogue_sha256,
        "record_count": version.record_count,
        "entities": version.entities,
    }
    if version.hash_rule != KEY_ORDER_RULE:
        # Said only when it is not rule 1, so that the manifests published before rule 2
        # existed keep their bytes (and their downloads' hashes).
        out["hash_rule"] = version.hash_rule
    if loads is not None:
        out["loads"] = [{"id": ld.id, "created_at": iso_utc(ld.created_at),
                         "actor": ld.actor, "organisation": ld.organisation,
                         "sha256": ld.sha256, "files": [f["name"] for f in ld.files]}
                        for ld in loads]
    return out
