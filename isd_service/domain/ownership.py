"""Ownership: a participant may only change the records under its own participant id (pure).

The policy maps an entity id to the field that names a record's owner, e.g.
``{"line_loss_factor_class": "market_participant_id"}``; empty (the default) turns it off.
When it is on, a caller is *restricted* when it loads through the API with the `loader` role
only (neither `publisher` nor `admin`) and its organisation is not the ISD agent's. A
restricted load:

- may only touch entities that have an owner field configured;
- may only insert, update or delete records whose owner field is its organisation, and may
  not change a record that someone else owns under the same key;
- in `replace` mode replaces only its own records of the entity: other owners' records are
  kept as they are (and counted as unchanged).

Anything else refuses the whole load (422) with every offending line. CLI loads and callers
holding `publisher` or `admin` are the ISD agent's own and are not restricted.
"""

from __future__ import annotations

from collections.abc import Mapping

from isd_service.domain.access import Caller
from isd_service.domain.records import decode, encode
from isd_service.domain.validation import Problem, Validated

TRUSTED_ROLES = frozenset({"publisher", "admin"})


def restricted_organisation(caller: Caller | None, admin_org: str) -> str | None:
    """The organisation a caller's loads are limited to, or None for an unrestricted one."""
    if caller is None or caller.roles & TRUSTED_ROLES:
        return None
    if caller.organisation == admin_org:
        return None
    return caller.organisation


def owner_field(ownership: Mapping[str, str], validated: Validated) -> str | None:
    """The entity's owner field, if the policy names one the entity has."""
    name = ownership.get(validated.entity.id)
    return name if name is not None and validated.entity.field(name) is not None else None


def not_owned(organisation: str, validated: Validated) -> Problem:
    return Problem(f"organisation {organisation} may not load {validated.entity.id}: its "
                   "records have no owner field, so only the ISD agent may change them",
                   validated.entity.id, validated.file)


def check(validated: Validated, owner: str, organisation: str, mode: str,
          current: Mapping[str, str]) -> list[Problem]:
    """The problems of a restricted load of one entity against the draft as it stands
    (``current``: key -> stored data). A replace load that passes gets everybody else's
    records added, so that it replaces only the organisation's own."""
    problems = []
    for key, data in validated.data.items():
        rec = decode(data)
        sent = rec.get(owner)
        existing = current.get(key)
        held = decode(existing).get(owner) if existing is not None else None
        if owner in rec and sent != organisation:
            why = f"the record is owned by {sent!r}" if sent else "the record has no owner"
        elif existing is not None and held != organisation:
            why = f"the record under this key is owned by {held!r}"
        else:
            continue
        problems.append(Problem(f"{why}; organisation {organisation} may only change its "
                                "own records", validated.entity.id, validated.file,
                                validated.lines.get(key), owner,
                                sent if owner in rec else held))
    if mode == "replace" and not problems:
        # The file is the whole of this organisation's records: keep everybody else's.
        for key, data in current.items():
            rec = decode(data)
            if rec.get(owner) != organisation and key not in validated.data:
                validated.data[key] = encode(rec)
    return problems
