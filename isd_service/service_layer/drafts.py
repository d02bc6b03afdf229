"""Loads into the draft: parse, validate, then stage the net changes; and discarding it.

The draft holds, per key, what the next version changes (see domain/staging.py). A load is
all or nothing: one problem anywhere in its files and nothing changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from isd_service.adapters import repository
from isd_service.adapters.orm import Load, ReleaseLoad
from isd_service.domain import ownership
from isd_service.domain.catalogue import Catalogue
from isd_service.domain.delta import staged_changes
from isd_service.domain.formats import InputFile, parse_files, safe_name
from isd_service.domain.staging import MODES, TARGETS, Counts, StagedEntity, is_net, stage
from isd_service.domain.validation import LoadRejected, Problem, Validated, validate_rows
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
    with uow.transaction() as session:
        return load_in(session, files=files, fmt=fmt, mode=mode, entity_id=entity_id,
                       actor=actor, organisation=organisation, restricted_to=restricted_to,
                       ownership_fields=ownership_fields, progress=progress, target=target)


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
    validated, problems = read_files(catalogue, files, fmt, entity_id, mode, report)
    if restricted_to is not None and ownership_fields:
        problems += _ownership_problems(session, validated, restricted_to, mode,
                                        ownership_fields)
    if problems:
        raise LoadRejected(problems)
    staged_entities = []
    for i, v in enumerate(validated, start=1):
        base = (repository.live_rows(session, v.entity.id) if frozen_for is not None
                else repository.base_rows(session, v.entity.id))
        staged_entities.append(stage(v, mode, base,
                                     repository.staged(session, v.entity.id, frozen_for),
                                     problems))
        report(f"stage {v.entity.id}", i, len(validated))
    if problems:
        raise LoadRejected(problems)
    record = _record_load(session, files, fmt, mode, actor, organisation, staged_entities)
    for s in staged_entities:
        if s.changed:
            repository.replace_staged(session, s.entity.id, frozen_for, s.rows(record.id))
        if frozen_for is not None:
            _rebase_open_draft(session, s.entity.id)
    if release is not None:
        session.add(ReleaseLoad(load_id=record.id, release_id=release.id))
    report("write", len(staged_entities), len(staged_entities))
    audit.load_accepted(session, record)
    if any(s.changed for s in staged_entities):
        # Approvals were for the set as it stood: this load changed it.
        approvals.void_requests(session, frozen_for,
                                reason=f"load {record.id} changed the set after the request",
                                actor=actor, organisation=organisation)
    return record


def _ownership_problems(session: Session, validated: list[Validated], organisation: str,
                        mode: str, fields: Mapping[str, str]) -> list[Problem]:
    problems: list[Problem] = []
    for v in validated:
        owner = ownership.owner_field(fields, v)
        if owner is None:
            problems.append(ownership.not_owned(organisation, v))
            continue
        problems += ownership.check(v, owner, organisation, mode,
                                    repository.draft_rows(session, v.entity.id))
    return problems


def _record_load(
    session: Session, files: list[InputFile], fmt: str, mode: str, actor: str,
    organisation: str | None, staged: list[StagedEntity],
) -> Load:
    total = Counts()
    per_entity: dict[str, Any] = {}
    for s in staged:
        total.add(s.counts)
        per_entity[s.entity.id] = s.counts.to_dict()
    digest = hashlib.sha256()
    described = []
    for f in files:
        file_hash = hashlib.sha256(f.data).hexdigest()
        digest.update(f"{file_hash}  {safe_name(f.name)}\n".encode())
        described.append({"name": safe_name(f.name), "size": len(f.data), "sha256": file_hash})
    record = Load(
        created_at=datetime.now(UTC), actor=actor, organisation=organisation, format=fmt,
        mode=mode, files=described, sha256=digest.hexdigest(), entities=per_entity,
        **total.to_dict())
    session.add(record)
    session.flush()
    return record


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
