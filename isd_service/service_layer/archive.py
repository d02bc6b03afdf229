"""Importing an archive of MDD versions: each version loaded and published under its own
number, in one transaction, so that an import stopped anywhere leaves whole versions only.

A version already published is compared with its files instead: the same content is
skipped (an import can be run again), a different one refused naming the entity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from isd_service.adapters import repository
from isd_service.adapters.orm import Version
from isd_service.domain.catalogue import Catalogue
from isd_service.domain.errors import Conflict
from isd_service.domain.formats import InputFile
from isd_service.domain.records import entity_hash_by_rule
from isd_service.domain.validation import LoadRejected
from isd_service.service_layer.drafts import Progress, load_in, read_files
from isd_service.service_layer.publishing import publish_in
from isd_service.service_layer.unit_of_work import UnitOfWork

PUBLISHED, SKIPPED = "published", "skipped"


class ImportRefused(Conflict):
    """A version of the archive cannot be imported; nothing of it was."""

    slug = "import-refused"


@dataclass(frozen=True)
class Imported:
    """What importing one version did."""

    version: int
    outcome: str  # published, or skipped (already published with the same content)
    records: int  # records in its files
    changes: int  # records inserted, updated or deleted


def import_version(uow: UnitOfWork, number: int, files: list[InputFile], *, actor: str,
                   organisation: str | None, go_live_date: date | None = None,
                   progress: Progress | None = None) -> Imported:
    """Load a version's portal files (replace mode: an entity whose file is absent keeps
    its records) and publish them as version ``number``, even if nothing changed."""
    with uow.transaction() as session:
        published = repository.get_version(session, number)
        if published is not None:
            return _compare(session, published, files)
        latest = repository.latest_version(session)
        if latest is not None and number < latest.number:
            raise ImportRefused(f"version {number} is not published and is older than the "
                                f"latest ({latest.number}): versions are imported in order")
        if repository.frozen_release(session) is not None or repository.has_staged(session):
            raise ImportRefused(f"version {number}: the draft holds staged changes; publish "
                                "or discard them before importing an archive")
        loaded = load_in(session, files=files, fmt="mdd-csv", mode="replace", entity_id=None,
                         actor=actor, organisation=organisation, progress=progress)
        publish_in(uow, session, actor=actor, organisation=organisation, version=number,
                   go_live_date=go_live_date, force=True, release=None)
        changes = loaded.inserted + loaded.updated + loaded.deleted
        return Imported(number, PUBLISHED, changes + loaded.unchanged, changes)


def _compare(session: Session, version: Version, files: list[InputFile]) -> Imported:
    """Skip a published version whose files hold what it holds; refuse one that differs."""
    catalogue = Catalogue.from_list(version.catalogue)
    validated, problems = read_files(catalogue, files, "mdd-csv", None, "replace",
                                     lambda _step, _done, _total: None)
    if problems:
        raise LoadRejected(problems)
    records = 0
    for v in validated:
        count, digest = entity_hash_by_rule(v.entity, version.hash_rule,
                                            ((key, v.data[key]) for key in sorted(v.data)))
        records += count
        if digest != version.entities[v.entity.id]["sha256"]:
            raise ImportRefused(
                f"version {version.number} is already published and its {v.entity.id} "
                f"differs from {v.file} ({count} records in the file, "
                f"{version.entities[v.entity.id]['records']} published)")
    return Imported(version.number, SKIPPED, records, 0)
