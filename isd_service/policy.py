"""Ownership: a participant may only change the records under its own participant id.

``OWNERSHIP`` (environment ``ISD_OWNERSHIP``, JSON) maps an entity id to the field that names
a record's owner, e.g. ``{"line_loss_factor_class": "market_participant_id"}``; empty (the
default) turns the policy off. When it is set, a caller is
*restricted* when it loads through the API with the `loader` role only (neither `publisher`
nor `admin`) and its organisation is not the ISD agent's (``ADMIN_ORG``). A restricted load:

- may only touch entities that have an owner field configured;
- may only insert, update or delete records whose owner field is its organisation, and may
  not change a record that someone else owns under the same key;
- in `replace` mode replaces only its own records of the entity: other owners' records are
  kept as they are (and counted as unchanged).

Anything else refuses the whole load (422) with every offending line. CLI loads and callers
holding `publisher` or `admin` are the ISD agent's own and are not restricted.
"""

from __future__ import annotations

import json
import os
from typing import Any

from flask import Flask, current_app, g, has_app_context
from sqlalchemy import select
from sqlalchemy.orm import Session

from isd_service import events
from isd_service.models import DraftChange
from isd_service.records import decode, encode
from isd_service.store import live_rows
from isd_service.validation import Problem, Validated

TRUSTED_ROLES = frozenset({"publisher", "admin"})


def ownership_from_environment() -> dict[str, str]:
    """Read ISD_OWNERSHIP (a JSON object of entity id -> owner field id)."""
    raw = os.environ.get("ISD_OWNERSHIP")
    if not raw:
        return {}
    return check_ownership(json.loads(raw))


def check_ownership(value: Any) -> dict[str, str]:
    """The configured mapping, or ValueError saying what is wrong with it."""
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and v for k, v in value.items()):
        raise ValueError("OWNERSHIP must map entity ids to owner field ids (both text)")
    return dict(value)


def init_app(app: Flask) -> None:
    if "OWNERSHIP" not in app.config:
        app.config["OWNERSHIP"] = ownership_from_environment()
    app.config["OWNERSHIP"] = check_ownership(app.config["OWNERSHIP"])
    events.load_validated.connect(_on_load_validated)


def restricted_organisation() -> str | None:
    """The organisation the current load is limited to, or None for an unrestricted one."""
    if not has_app_context():
        return None
    caller = g.get("caller")
    if caller is None or caller.roles & TRUSTED_ROLES:
        return None
    if caller.organisation == current_app.config["ADMIN_ORG"]:
        return None
    return caller.organisation


def _on_load_validated(validated: list[Validated], *, session: Session, mode: str,
                       **_: Any) -> list[Problem]:
    organisation = restricted_organisation()
    if organisation is None:
        return []
    ownership: dict[str, str] = current_app.config["OWNERSHIP"]
    if not ownership:
        return []
    problems: list[Problem] = []
    for v in validated:
        owner_field = ownership.get(v.entity.id)
        if owner_field is None or v.entity.field(owner_field) is None:
            problems.append(Problem(
                f"organisation {organisation} may not load {v.entity.id}: its records "
                "have no owner field, so only the ISD agent may change them",
                v.entity.id, v.file))
            continue
        problems += _check_entity(session, v, owner_field, organisation, mode)
    return problems


def _check_entity(session: Session, v: Validated, owner_field: str, organisation: str,
                  mode: str) -> list[Problem]:
    current = _draft_view(session, v.entity.id)
    problems = []
    for key, data in v.data.items():
        rec = decode(data)
        sent = rec.get(owner_field)
        existing = current.get(key)
        held = existing.get(owner_field) if existing is not None else None
        if owner_field in rec and sent != organisation:
            why = f"the record is owned by {sent!r}" if sent else "the record has no owner"
        elif existing is not None and held != organisation:
            why = f"the record under this key is owned by {held!r}"
        else:
            continue
        problems.append(Problem(f"{why}; organisation {organisation} may only change its "
                                "own records", v.entity.id, v.file, v.lines.get(key),
                                owner_field, sent if owner_field in rec else held))
    if mode == "replace" and not problems:
        # The file is the whole of this organisation's records: keep everybody else's.
        for key, rec in current.items():
            if rec.get(owner_field) != organisation and key not in v.data:
                v.data[key] = encode(rec)
    return problems


def _draft_view(session: Session, entity_id: str) -> dict[str, dict[str, Any]]:
    """The entity's records as the draft stands: the latest version with staged changes."""
    view = dict(live_rows(session, entity_id))
    for key, op, data in session.execute(
            select(DraftChange.key, DraftChange.op, DraftChange.data)
            .where(DraftChange.entity_id == entity_id)):
        if op == "delete" or data is None:
            view.pop(key, None)
        else:
            view[key] = data
    return {key: json.loads(data) for key, data in view.items()}
