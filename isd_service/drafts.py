"""Loads into the draft: parse, validate, then stage the net changes against the latest version.

The draft holds, per key, what the next version changes: an upsert (with the new data) or a
delete. A key whose staged data equals the latest version's is not staged at all, so the
draft is always the exact difference between the latest version and the next one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from isd_service import events
from isd_service.catalogue import Catalogue, EntityDef
from isd_service.catalogue_db import working_catalogue
from isd_service.formats import (
    FORMATS,
    EntityRows,
    InputFile,
    csv_records,
    entity_for_file,
    json_records,
    mdd_csv,
    safe_name,
)
from isd_service.models import Draft, DraftChange, FrozenChange, Load, Record, ReleaseLoad
from isd_service.records import decode
from isd_service.store import base_rows, bulk_insert, frozen_release, live_rows, open_release
from isd_service.validation import Problem, Validated, validate_rows

MODES = ("replace", "upsert", "delete")
# Where a load goes: the open draft (of the next planned release), or, by override, the
# frozen set of the release that passed its change deadline.
TARGETS = ("open", "frozen")

Progress = Callable[[str, int, int], None]


class LoadRejected(Exception):
    """The input was refused; nothing was changed. ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the input")


@dataclass
class Counts:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0

    def add(self, other: Counts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.deleted += other.deleted
        self.unchanged += other.unchanged

    def to_dict(self) -> dict[str, int]:
        return {"inserted": self.inserted, "updated": self.updated,
                "deleted": self.deleted, "unchanged": self.unchanged}


@dataclass
class StagedEntity:
    """What one entity's draft looks like after a load, and what the load changed."""

    entity: EntityDef
    counts: Counts = field(default_factory=Counts)
    # key -> (op, data): the entity's whole draft after this load, and before it (with the
    # load that staged each change)
    draft: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    before: dict[str, tuple[str, str | None, int | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """The staged changes a load goes into: the open draft, or a release's frozen set."""

    release_id: int | None = None  # None: the open draft

    @property
    def table(self) -> type[DraftChange] | type[FrozenChange]:
        return DraftChange if self.release_id is None else FrozenChange

    def only(self) -> list[Any]:
        """The condition selecting this target's rows of its table."""
        return [] if self.release_id is None else [FrozenChange.release_id == self.release_id]

    def base(self, session: Session, entity_id: str) -> dict[str, str]:
        """What this target's changes are the net difference against."""
        if self.release_id is None:
            return base_rows(session, entity_id)
        return live_rows(session, entity_id)


def lock_draft(session: Session) -> None:
    """Take the draft's write lock: the first statement of every writing transaction.

    On PostgreSQL the row lock queues writers; on SQLite the write starts the write
    transaction before anything is read, so a writer never works from a stale snapshot.
    """
    session.execute(update(Draft).where(Draft.id == 1)
                    .values(revision=Draft.revision + 1, updated_at=datetime.now(UTC)))


@contextmanager
def locked(session: Session) -> Iterator[None]:
    """A writer's transaction: the draft's lock first, then commit, or roll back on any error."""
    try:
        lock_draft(session)
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise


def parse_files(
    catalogue: Catalogue, files: list[InputFile], fmt: str, entity_id: str | None,
    *, keys_only: bool = False,
) -> tuple[list[EntityRows], list[Problem]]:
    """Read each file into raw rows of the entity it is for."""
    problems: list[Problem] = []
    if fmt not in FORMATS:
        return [], [Problem(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")]
    if not files:
        return [], [Problem("no file given")]
    forced = None
    if entity_id is not None:
        forced = catalogue.get(entity_id) or catalogue.by_source(entity_id)
        if forced is None:
            return [], [Problem(f"unknown entity {entity_id!r}", entity=entity_id)]
    groups: list[EntityRows] = []
    for f in files:
        name = safe_name(f.name)
        if fmt == "json":
            rows, found = json_records.read(f.data, catalogue, name, forced)
            groups += rows
            problems += found
            continue
        entity = forced or entity_for_file(catalogue, fmt, name)
        if entity is None:
            problems.append(Problem(
                f"cannot tell which entity {name!r} is for: name it <Stem>_<NNN>.csv "
                "(MDD) or <entity id>.csv, or give the entity", file=name))
            continue
        reader = mdd_csv.read if fmt == "mdd-csv" else csv_records.read
        table, found = reader(f.data, entity, name, keys_only=keys_only)
        problems += found
        if table is not None:
            groups.append(table)
    seen: dict[str, str] = {}
    for g in groups:
        if g.entity.id in seen:
            problems.append(Problem(
                f"{g.entity.id} is in two files of one load ({seen[g.entity.id]} and {g.file})",
                g.entity.id, g.file))
        seen[g.entity.id] = g.file
    return groups, problems


def stage(
    session: Session, validated: Validated, mode: str, problems: list[Problem],
    target: Target | None = None,
) -> StagedEntity:
    """Work out an entity's draft after this load, against the latest version.

    With a release frozen, the open draft is worked out against the latest version with the
    frozen set on top (what the frozen release will publish).
    """
    target = target or Target()
    entity = validated.entity
    published = target.base(session, entity.id)
    table = target.table
    before = {key: (op, data, load_id) for key, op, data, load_id in session.execute(
        select(table.key, table.op, table.data, table.load_id)
        .where(table.entity_id == entity.id, *target.only()))}
    # The records as they stand in the draft: the latest version with staged changes on top.
    view = dict(published)
    for key, (op, data, _) in before.items():
        if op == "delete":
            view.pop(key, None)
        else:
            view[key] = data  # type: ignore[assignment]
    staged = StagedEntity(entity=entity, before=before,
                          draft={key: (op, data) for key, (op, data, _) in before.items()})
    counts = staged.counts
    incoming = validated.data

    def set_draft(key: str, data: str | None) -> None:
        before = published.get(key)
        if data == before:
            staged.draft.pop(key, None)
        else:
            staged.draft[key] = ("delete", None) if data is None else ("upsert", data)

    if mode == "delete":
        for key in incoming:
            if key not in view:
                problems.append(Problem("no record with this key in the draft to delete",
                                        entity.id, validated.file, validated.lines[key],
                                        entity.key[0], decode(incoming[key])[entity.key[0]]))
                continue
            counts.deleted += 1
            set_draft(key, None)
        return staged
    for key, data in incoming.items():
        old = view.get(key)
        if old is None:
            counts.inserted += 1
        elif old == data:
            counts.unchanged += 1
            continue
        else:
            counts.updated += 1
        set_draft(key, data)
    if mode == "replace":
        for key in view.keys() - incoming.keys():
            counts.deleted += 1
            set_draft(key, None)
    return staged


def load(
    session: Session,
    *,
    files: list[InputFile],
    fmt: str = "mdd-csv",
    mode: str = "replace",
    entity_id: str | None = None,
    actor: str,
    organisation: str | None,
    progress: Progress | None = None,
    target: str = "open",
) -> Load:
    """Validate the files and stage their changes in the draft, all or nothing; commit.

    ``target`` "frozen" stages into the frozen release's set instead (an override after the
    change deadline); the open draft is then rebased onto the new frozen set.
    """
    report = progress or (lambda _step, _done, _total: None)
    try:
        lock_draft(session)
        catalogue = working_catalogue(session)
        if mode not in MODES:
            raise LoadRejected([Problem(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")])
        if target not in TARGETS:
            raise LoadRejected([Problem(
                f"unknown target {target!r}; use one of {', '.join(TARGETS)}")])
        frozen = frozen_release(session)
        release = open_release(session)
        into = Target()
        if target == "frozen":
            if frozen is None:
                raise LoadRejected([Problem("no release is frozen: load into the open draft")])
            into, release = Target(frozen.id), frozen
        report("read", 0, len(files))
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
        for _receiver, found in events.load_validated.send(
                validated, session=session, organisation=organisation, mode=mode):
            problems += found or []
        if problems:
            raise LoadRejected(problems)
        staged_entities = []
        for i, v in enumerate(validated, start=1):
            staged_entities.append(stage(session, v, mode, problems, into))
            report(f"stage {v.entity.id}", i, len(validated))
        if problems:
            raise LoadRejected(problems)
        record = _record_load(session, files, fmt, mode, entity_id, actor, organisation,
                              staged_entities)
        for s in staged_entities:
            _write_draft(session, s, record.id, into)
            if into.release_id is not None:
                _rebase_open_draft(session, s.entity.id)
        if release is not None:
            session.add(ReleaseLoad(load_id=record.id, release_id=release.id))
        report("write", len(staged_entities), len(staged_entities))
        events.load_accepting.send(record, session=session)
        session.commit()
        return record
    except BaseException:
        session.rollback()
        raise


def _record_load(
    session: Session, files: list[InputFile], fmt: str, mode: str, entity_id: str | None,
    actor: str, organisation: str | None, staged: list[StagedEntity],
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


def _write_draft(
    session: Session, staged: StagedEntity, load_id: int, target: Target | None = None
) -> None:
    """Replace the entity's staged rows by its new draft, keeping unchanged rows' origin."""
    target = target or Target()
    table = target.table
    eid = staged.entity.id
    old = staged.before
    if {key: (op, data) for key, (op, data, _) in old.items()} == staged.draft:
        return
    session.execute(delete(table).where(table.entity_id == eid, *target.only()))
    columns = ["entity_id", "key", "op", "data", "load_id"]
    extra: tuple[int, ...] = ()
    if target.release_id is not None:
        columns.append("release_id")
        extra = (target.release_id,)

    def rows() -> Iterator[tuple[Any, ...]]:
        for key, (op, data) in staged.draft.items():
            prior = old.get(key)
            kept = prior is not None and prior[0] == op and prior[1] == data
            yield (eid, key, op, data, prior[2] if kept and prior else load_id, *extra)
    bulk_insert(session, table, columns, rows())


def _rebase_open_draft(session: Session, entity_id: str) -> None:
    """Drop the open draft's changes that the frozen set now already makes.

    Staged rows are whole final states, so the others stay exact against the new base.
    """
    base = base_rows(session, entity_id)
    for key, op, data in session.execute(
            select(DraftChange.key, DraftChange.op, DraftChange.data)
            .where(DraftChange.entity_id == entity_id)).all():
        if (op == "delete" and key not in base) or (op == "upsert" and base.get(key) == data):
            session.execute(delete(DraftChange).where(DraftChange.entity_id == entity_id,
                                                      DraftChange.key == key))


def draft_summary(session: Session) -> dict[str, dict[str, int]]:
    """Count the staged inserts, updates and deletes per entity."""
    summary: dict[str, dict[str, int]] = {}
    live = (select(Record.id).where(Record.entity_id == DraftChange.entity_id,
                                    Record.key == DraftChange.key,
                                    Record.valid_to.is_(None)).exists())
    stmt = (select(DraftChange.entity_id, DraftChange.op, live.label("live"),
                   func.count()).group_by(DraftChange.entity_id, DraftChange.op, "live"))
    for eid, op, is_live, n in session.execute(stmt):
        entry = summary.setdefault(eid, {"inserts": 0, "updates": 0, "deletes": 0})
        if op == "delete":
            entry["deletes"] += n
        elif is_live:
            entry["updates"] += n
        else:
            entry["inserts"] += n
    return summary


def discard(session: Session) -> int:
    """Drop every staged record change (loads stay recorded); return how many; commit."""
    with locked(session):
        n = session.execute(delete(DraftChange)).rowcount or 0  # type: ignore[attr-defined]
    return n
