"""Loads into the draft: parse, validate, then stage the net changes; and discarding it.

The draft holds, per key, what the next version changes (see domain/staging.py). A load is
all or nothing: one problem anywhere in its files and nothing changes.
"""

from __future__ import annotations

import gc
import hashlib
import heapq
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from isd_service.adapters import repository
from isd_service.adapters.orm import Load, ReleaseLoad
from isd_service.domain import ownership
from isd_service.domain.catalogue import Catalogue, EntityDef
from isd_service.domain.delta import staged_changes
from isd_service.domain.formats import EntityRows, InputFile, parse_files, safe_name
from isd_service.domain.records import decode
from isd_service.domain.staging import MODES, TARGETS, Counts, is_net
from isd_service.domain.validation import (
    CheckedRows,
    LoadRejected,
    Problem,
    Validated,
    check_batches,
    duplicate_key,
    validate_rows,
)
from isd_service.service_layer import approvals, audit
from isd_service.service_layer.unit_of_work import UnitOfWork

Progress = Callable[[str, int, int], None]


def load(
    uow: UnitOfWork,
    *,
    files: list[InputFile],
    fmt: str = "mdd-csv",
    mode: str = "replace",
    entity_id: str | None = None,
    actor: str,
    organisation: str | None,
    restricted_to: str | None = None,
    ownership_fields: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    target: str = "open",
) -> Load:
    """Validate the files and stage their changes in the draft, all or nothing.

    ``target`` "frozen" stages into the frozen release's set instead (an override after the
    change deadline); the open draft is then rebased onto the new frozen set.
    ``restricted_to``: the organisation whose own records alone the load may change, under
    the ownership policy ``ownership_fields`` (entity id -> owner field).
    """
    with uow.transaction() as session, cyclic_gc_paused():
        return load_in(session, files=files, fmt=fmt, mode=mode, entity_id=entity_id,
                       actor=actor, organisation=organisation, restricted_to=restricted_to,
                       ownership_fields=ownership_fields, progress=progress, target=target)


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a load.

    A load makes millions of short-lived rows and texts, none in a reference cycle; the
    collector's passes over them took an eighth of a million-row load and freed nothing.
    Memory is still freed as the rows go (reference counting); only cycles wait.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_files(catalogue: Catalogue, files: list[InputFile], fmt: str,
               entity_id: str | None, mode: str, report: Progress
               ) -> tuple[list[Validated], list[Problem]]:
    """Parse and validate the files: the valid records of each entity, and every problem."""
    groups, problems = parse_files(catalogue, files, fmt, entity_id,
                                   keys_only=mode == "delete")
    validated: list[Validated] = []
    for i, g in enumerate(groups, start=1):
        v, found = validate_rows(g.entity, g.rows, dates=g.dates, file=g.file,
                                 keys_only=mode == "delete")
        g.rows = []  # the file's rows were read as a stream: let the reader go
        validated.append(v)
        problems += g.problems + found
        report(f"validate {g.entity.id}", i, len(groups))
    return validated, problems


def load_in(
    session: Session,
    *,
    files: list[InputFile],
    fmt: str,
    mode: str,
    entity_id: str | None,
    actor: str,
    organisation: str | None,
    restricted_to: str | None = None,
    ownership_fields: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    target: str = "open",
) -> Load:
    """The load itself, inside a unit of work's open transaction."""
    report = progress or (lambda _step, _done, _total: None)
    catalogue = repository.working_catalogue(session)
    if mode not in MODES:
        raise LoadRejected([Problem(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")])
    if target not in TARGETS:
        raise LoadRejected([Problem(
            f"unknown target {target!r}; use one of {', '.join(TARGETS)}")])
    frozen = repository.frozen_release(session)
    release = repository.open_release(session)
    frozen_for = None
    if target == "frozen":
        if frozen is None:
            raise LoadRejected([Problem("no release is frozen: load into the open draft")])
        frozen_for, release = frozen.id, frozen
    report("read", 0, len(files))
    groups, problems = parse_files(catalogue, files, fmt, entity_id, keys_only=mode == "delete")
    # Recorded first, so that the rows written as they are read can name it; a refused
    # load takes it back with everything else.
    record = _start_load(session, files, fmt, mode, actor, organisation)
    base_frozen = frozen.id if frozen is not None and frozen_for is None else None
    # Each file's checked rows go to the database as they are read: straight into the set
    # when it and its base hold nothing of the entity (a first load), else to a temporary
    # table where duplicate keys and the comparison with the records are worked out. A
    # version is never held here.
    repository.start_incoming(session)
    parts: list[Part] = []
    found_in: list[list[Problem]] = []
    for i, g in enumerate(groups, start=1):
        part = Part(i, g.entity, g.file)
        found: list[Problem] = []
        if (mode != "delete" and restricted_to is None
                and repository.holds_nothing(session, g.entity.id, frozen_for, base_frozen)):
            part.staged = repository.stage_new(session, g.entity.id, frozen_for, record.id,
                                               check_batches(g.entity, g.in_batches(), found,
                                                             dates=g.dates, file=g.file))
            if part.staged is None:  # a key met twice: read again, to name each duplicate
                g, found = _read_again(catalogue, g, fmt, entity_id), []
                groups[i - 1] = g
        if part.staged is None:
            repository.add_incoming(session, i, check_batches(
                g.entity, g.in_batches(), found, dates=g.dates, file=g.file,
                keys_only=mode == "delete"))
        g.rows, g.batches = [], []
        parts.append(part)
        found_in.append(found)
        report(f"validate {g.entity.id}", i, len(groups))
    repository.index_incoming(session)
    for g, p, found in zip(groups, parts, found_in, strict=True):
        duplicates = [] if p.staged is not None else [
            duplicate_key(p.entity, p.file, line, first, data)
            for line, first, data in repository.incoming_duplicates(session, p.part)]
        problems += g.problems + list(heapq.merge(found, duplicates,
                                                  key=lambda q: q.line or 0))
    if restricted_to is not None and ownership_fields:
        problems += _ownership_problems(session, parts, restricted_to, mode,
                                        ownership_fields, add=not problems)
    if problems:
        raise LoadRejected(problems)
    counted: list[tuple[Part, Counts]] = []
    for i, p in enumerate(parts, start=1):
        if p.staged is not None:
            counted.append((p, Counts(inserted=p.staged)))
            continue
        counts, missing = repository.incoming_counts(session, p.entity.id, p.part, mode,
                                                     frozen_for, base_frozen)
        key0 = p.entity.key[0]
        problems += [Problem("no record with this key in the draft to delete", p.entity.id,
                             p.file, line, key0, decode(data)[key0]) for line, data in missing]
        counted.append((p, counts))
        report(f"stage {p.entity.id}", i, len(parts))
    if problems:
        raise LoadRejected(problems)
    _count_load(record, [(p.entity.id, counts) for p, counts in counted])
    changed = any(p.staged for p, _ in counted)
    for p, _ in counted:
        if p.staged is None and repository.stage_incoming(
                session, p.entity.id, p.part, mode, frozen_for, base_frozen, record.id):
            changed = True
        if frozen_for is not None:
            _rebase_open_draft(session, p.entity.id)
    repository.end_incoming(session)
    if release is not None:
        session.add(ReleaseLoad(load_id=record.id, release_id=release.id))
    report("write", len(parts), len(parts))
    audit.load_accepted(session, record)
    if changed:
        # Approvals were for the set as it stood: this load changed it.
        approvals.void_requests(session, frozen_for,
                                reason=f"load {record.id} changed the set after the request",
                                actor=actor, organisation=organisation)
    return record


@dataclass
class Part:
    """One file's rows of an entity in a load, as written to the incoming rows."""

    part: int
    entity: EntityDef
    file: str
    # Rows written straight into the set (a first load of the entity), or None.
    staged: int | None = None


def _read_again(catalogue: Catalogue, g: EntityRows, fmt: str, entity_id: str | None
                ) -> EntityRows:
    """A file's rows of one entity, read again from the start."""
    assert g.input is not None
    groups, _ = parse_files(catalogue, [g.input], fmt, entity_id)
    return next(again for again in groups if again.entity.id == g.entity.id)


def _ownership_problems(session: Session, parts: list[Part], organisation: str, mode: str,
                        fields: Mapping[str, str], *, add: bool) -> list[Problem]:
    """The problems of a restricted load (a participant's: small), checked on its records
    held here; with ``add``, a replace load that passes gets everybody else's records."""
    problems: list[Problem] = []
    for p in parts:
        v = Validated(entity=p.entity, file=p.file)
        for key, data, line in repository.incoming_rows(session, p.part):
            if key not in v.data:
                v.data[key] = data
                v.lines[key] = line or 0
        owner = ownership.owner_field(fields, v)
        if owner is None:
            problems.append(ownership.not_owned(organisation, v))
            continue
        sent = set(v.data)
        found = ownership.check(v, owner, organisation, mode,
                                repository.draft_rows(session, p.entity.id))
        problems += found
        if add and not found:
            others = [(key, data) for key, data in v.data.items() if key not in sent]
            repository.add_incoming(session, p.part, [CheckedRows(
                keys=[key for key, _ in others], data=[data for _, data in others])],
                lines=False)
    return problems


def _start_load(session: Session, files: list[InputFile], fmt: str, mode: str, actor: str,
                organisation: str | None) -> Load:
    """The load's record, with its input described and nothing counted yet."""
    digest = hashlib.sha256()
    described = []
    for f in files:
        file_digest, size = hashlib.sha256(), 0
        for chunk in f.chunks():
            file_digest.update(chunk)
            size += len(chunk)
        file_hash = file_digest.hexdigest()
        digest.update(f"{file_hash}  {safe_name(f.name)}\n".encode())
        described.append({"name": safe_name(f.name), "size": size, "sha256": file_hash})
    record = Load(
        created_at=datetime.now(UTC), actor=actor, organisation=organisation, format=fmt,
        mode=mode, files=described, sha256=digest.hexdigest(), entities={},
        **Counts().to_dict())
    session.add(record)
    session.flush()
    return record


def _count_load(record: Load, staged: list[tuple[str, Counts]]) -> None:
    """Set what the load changed, per entity and in all."""
    total = Counts()
    per_entity: dict[str, Any] = {}
    for eid, counts in staged:
        total.add(counts)
        per_entity[eid] = counts.to_dict()
    record.entities = per_entity
    for name, value in total.to_dict().items():
        setattr(record, name, value)


def _rebase_open_draft(session: Session, entity_id: str) -> None:
    """Drop the open draft's changes that the frozen set now already makes.

    Staged rows are whole final states, so the others stay exact against the new base.
    """
    base = repository.base_rows(session, entity_id)
    repository.drop_staged(session, entity_id, [
        key for key, (op, data, _) in repository.staged(session, entity_id).items()
        if not is_net(base, key, op, data)])


def discard(uow: UnitOfWork, *, actor: str, organisation: str | None) -> int:
    """Drop every change of the open draft (loads stay recorded), recorded in the audit log;
    return how many changes went."""
    with uow.transaction() as session:
        n = repository.discard_staged(session)
        audit.record(session, action="draft.discard", actor=actor, organisation=organisation,
                     subject="draft", details={"discarded": n})
        approvals.void_requests(session, None, reason="the draft was discarded", actor=actor,
                                organisation=organisation)
    return n


def draft_changes(session: Session, *, entity_id: str | None = None, limit: int = 500
                  ) -> tuple[dict[str, dict[str, int]], list[dict[str, Any]]]:
    """The open draft as delta changes against what the next release leaves (the latest
    version with any frozen set), field by field with the previous records: counts per
    entity (insert, update, delete) and the first ``limit`` changes."""
    catalogue = repository.working_catalogue(session)
    counts: dict[str, dict[str, int]] = {}
    changes: list[dict[str, Any]] = []
    for eid, entity in catalogue.entities.items():
        if entity_id is not None and eid != entity_id:
            continue
        rows = repository.staged_in_key_order(session, eid, None)
        if not rows:
            continue
        per = counts.setdefault(eid, {"insert": 0, "update": 0, "delete": 0})
        for change in staged_changes(entity, rows, repository.base_rows(session, eid),
                                     previous=True):
            per[change["op"]] += 1
            if len(changes) < limit:
                changes.append(change)
    return counts, changes
